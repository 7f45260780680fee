// libFuzzer target: the SentencePiece tokenizer.model protobuf reader used by `spider convert`. A model that parses
// must have pieces and special ids inside them.
// fuzz-links: spider_io spider_core
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/hf_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    spider::sp_model m;
    std::string err;
    if (!spider::sentencepiece_model_parse(data, size, &m, &err)) {
        if (err.empty()) __builtin_trap();  // every refusal must say why
        return 0;
    }
    const int32_t n = static_cast<int32_t>(m.pieces.size());
    if (n == 0 || m.unk_id >= n || m.bos_id >= n || m.eos_id >= n || m.pad_id >= n) __builtin_trap();
    for (const spider::sp_piece & p : m.pieces) {
        if (p.type < spider::SP_PIECE_NORMAL || p.type > spider::SP_PIECE_BYTE) __builtin_trap();
    }
    return 0;
}

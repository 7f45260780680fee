// Conversion of Hugging Face checkpoints (config.json + safetensors + tokenizer files) to GGUF, following the
// names, metadata and tensor transforms of llama.cpp's convert_hf_to_gguf.py (facts: docs/FORMATS.md).
// Supported: LlamaForCausalLM and Gemma3ForCausalLM; tokenizers from tokenizer.model (SentencePiece protobuf ->
// tokenizer.ggml.model "llama") or tokenizer.json (byte-level BPE -> "gpt2").
//
//   std::string err;
//   spider::hf_convert_params p;          // p.out_type = DTYPE_F16 by default
//   if (!spider::hf_convert("hf_dir", "out.gguf", p, &err)) fprintf(stderr, "%s\n", err.c_str());
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace spider {

// ---- SentencePiece model (tokenizer.model), the subset of sentencepiece_model.proto a converter needs ----

enum sp_piece_type : int32_t {
    SP_PIECE_NORMAL = 1,
    SP_PIECE_UNKNOWN = 2,
    SP_PIECE_CONTROL = 3,
    SP_PIECE_USER_DEFINED = 4,
    SP_PIECE_UNUSED = 5,
    SP_PIECE_BYTE = 6,
};

struct sp_piece {
    std::string piece;
    float score = 0;
    sp_piece_type type = SP_PIECE_NORMAL;
};

struct sp_model {
    std::vector<sp_piece> pieces;
    int32_t model_type = 1;  // TrainerSpec.model_type: 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
    int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // TrainerSpec defaults
    bool byte_fallback = false;
    bool add_dummy_prefix = true;  // NormalizerSpec
    bool remove_extra_whitespaces = true;
    std::string normalizer_name;
};

// Parses a serialized ModelProto. Validates wire types, lengths and piece types; never reads out of bounds.
bool sentencepiece_model_parse(const uint8_t * data, size_t size, sp_model * out, std::string * err);
bool sentencepiece_model_load(const std::string & path, sp_model * out, std::string * err);

// ---- HF -> GGUF ----

struct hf_convert_params {
    dtype out_type = DTYPE_F16;  // 2-D weights: F32, F16 or BF16; 1-D tensors (norms) are always F32
    std::string name;            // general.name (default: the directory name)
    std::function<void(const std::string & line)> log;  // progress lines (nullptr: silent)
};

bool hf_convert(const std::string & hf_dir, const std::string & out_path, const hf_convert_params & params,
                std::string * err);

}  // namespace spider

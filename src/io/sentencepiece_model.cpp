// A minimal protobuf reader for SentencePiece's tokenizer.model (ModelProto in sentencepiece_model.proto):
// pieces (1: piece, 2: score, 3: type), trainer_spec (3: model_type, 35: byte_fallback, 40-43: unk/bos/eos/pad
// ids) and normalizer_spec (1: name, 3: add_dummy_prefix, 4: remove_extra_whitespaces). Unknown fields are
// skipped by wire type, as protobuf requires. Every length is checked against the bytes left.
#include <cstring>
#include <fstream>
#include <iterator>

#include "io/hf_convert.h"

namespace spider {

namespace {

struct pb_reader {
    const uint8_t * p;
    const uint8_t * end;
    std::string * err;
    const char * where;

    bool fail(const std::string & m) {
        *err = std::string("sentencepiece model: ") + where + ": " + m;
        return false;
    }
    bool varint(uint64_t * out) {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p >= end) return fail("truncated varint");
            const uint8_t b = *p++;
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) {
                *out = v;
                return true;
            }
        }
        return fail("varint longer than 10 bytes");
    }
    bool tag(uint32_t * field, uint32_t * wire) {
        uint64_t t = 0;
        if (!varint(&t)) return false;
        *field = static_cast<uint32_t>(t >> 3);
        *wire = static_cast<uint32_t>(t & 7);
        if (*field == 0) return fail("field number 0");
        return true;
    }
    bool bytes(const uint8_t ** b, size_t * n) {
        uint64_t len = 0;
        if (!varint(&len)) return false;
        if (len > static_cast<uint64_t>(end - p)) {
            return fail("length " + std::to_string(len) + " goes beyond the end of the data (" +
                        std::to_string(end - p) + " bytes left)");
        }
        *b = p;
        *n = static_cast<size_t>(len);
        p += len;
        return true;
    }
    bool fixed32(uint32_t * out) {
        if (end - p < 4) return fail("truncated fixed32");
        std::memcpy(out, p, 4);
        p += 4;
        return true;
    }
    bool skip(uint32_t wire) {
        uint64_t v = 0;
        const uint8_t * b;
        size_t n;
        switch (wire) {
            case 0:
                return varint(&v);
            case 1:
                if (end - p < 8) return fail("truncated fixed64");
                p += 8;
                return true;
            case 2:
                return bytes(&b, &n);
            case 5:
                if (end - p < 4) return fail("truncated fixed32");
                p += 4;
                return true;
            default:
                return fail("unsupported wire type " + std::to_string(wire));
        }
    }
};

bool expect_wire(pb_reader & r, uint32_t field, uint32_t wire, uint32_t want) {
    if (wire != want) {
        return r.fail("field " + std::to_string(field) + " has wire type " + std::to_string(wire) + ", expected " +
                      std::to_string(want));
    }
    return true;
}

bool parse_piece(const uint8_t * b, size_t n, sp_piece * out, std::string * err) {
    pb_reader r{b, b + n, err, "piece"};
    while (r.p < r.end) {
        uint32_t f, w;
        if (!r.tag(&f, &w)) return false;
        if (f == 1) {
            const uint8_t * s = nullptr;
            size_t len = 0;
            if (!expect_wire(r, f, w, 2) || !r.bytes(&s, &len)) return false;
            out->piece.assign(reinterpret_cast<const char *>(s), len);
        } else if (f == 2) {
            uint32_t bits = 0;
            if (!expect_wire(r, f, w, 5) || !r.fixed32(&bits)) return false;
            std::memcpy(&out->score, &bits, 4);
        } else if (f == 3) {
            uint64_t v = 0;
            if (!expect_wire(r, f, w, 0) || !r.varint(&v)) return false;
            if (v < SP_PIECE_NORMAL || v > SP_PIECE_BYTE) return r.fail("unknown piece type " + std::to_string(v));
            out->type = static_cast<sp_piece_type>(v);
        } else if (!r.skip(w)) {
            return false;
        }
    }
    return true;
}

bool parse_trainer(const uint8_t * b, size_t n, sp_model * m, std::string * err) {
    pb_reader r{b, b + n, err, "trainer_spec"};
    while (r.p < r.end) {
        uint32_t f, w;
        if (!r.tag(&f, &w)) return false;
        if (f == 3 || f == 35 || (f >= 40 && f <= 43)) {
            uint64_t v = 0;
            if (!expect_wire(r, f, w, 0) || !r.varint(&v)) return false;
            const int32_t iv = static_cast<int32_t>(static_cast<uint32_t>(v));  // int32 negatives use 10 bytes
            switch (f) {
                case 3:
                    m->model_type = iv;
                    break;
                case 35:
                    m->byte_fallback = v != 0;
                    break;
                case 40:
                    m->unk_id = iv;
                    break;
                case 41:
                    m->bos_id = iv;
                    break;
                case 42:
                    m->eos_id = iv;
                    break;
                case 43:
                    m->pad_id = iv;
                    break;
            }
        } else if (!r.skip(w)) {
            return false;
        }
    }
    return true;
}

bool parse_normalizer(const uint8_t * b, size_t n, sp_model * m, std::string * err) {
    pb_reader r{b, b + n, err, "normalizer_spec"};
    while (r.p < r.end) {
        uint32_t f, w;
        if (!r.tag(&f, &w)) return false;
        if (f == 1) {
            const uint8_t * s = nullptr;
            size_t len = 0;
            if (!expect_wire(r, f, w, 2) || !r.bytes(&s, &len)) return false;
            m->normalizer_name.assign(reinterpret_cast<const char *>(s), len);
        } else if (f == 3 || f == 4) {
            uint64_t v = 0;
            if (!expect_wire(r, f, w, 0) || !r.varint(&v)) return false;
            (f == 3 ? m->add_dummy_prefix : m->remove_extra_whitespaces) = v != 0;
        } else if (!r.skip(w)) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool sentencepiece_model_parse(const uint8_t * data, size_t size, sp_model * out, std::string * err) {
    std::string local;
    if (!err) err = &local;
    *out = sp_model();
    static const uint8_t empty = 0;
    pb_reader r{data ? data : &empty, (data ? data : &empty) + (data ? size : 0), err, "model"};
    while (r.p < r.end) {
        uint32_t f, w;
        if (!r.tag(&f, &w)) return false;
        if (f == 1 || f == 2 || f == 3) {
            const uint8_t * b;
            size_t n;
            if (!expect_wire(r, f, w, 2) || !r.bytes(&b, &n)) return false;
            if (f == 1) {
                sp_piece piece;
                if (!parse_piece(b, n, &piece, err)) {
                    *err += " (piece " + std::to_string(out->pieces.size()) + ")";
                    return false;
                }
                out->pieces.push_back(std::move(piece));
            } else if (f == 2) {
                if (!parse_trainer(b, n, out, err)) return false;
            } else if (!parse_normalizer(b, n, out, err)) {
                return false;
            }
        } else if (!r.skip(w)) {
            return false;
        }
    }
    if (out->pieces.empty()) {
        *err = "sentencepiece model: no pieces (not a tokenizer.model file?)";
        return false;
    }
    const int32_t n = static_cast<int32_t>(out->pieces.size());
    for (int32_t id : {out->unk_id, out->bos_id, out->eos_id, out->pad_id}) {
        if (id >= n) {
            *err = "sentencepiece model: special token id " + std::to_string(id) + " is outside the " +
                   std::to_string(n) + " pieces";
            return false;
        }
    }
    return true;
}

bool sentencepiece_model_load(const std::string & path, sp_model * out, std::string * err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (err) *err = "cannot open '" + path + "'";
        return false;
    }
    const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!sentencepiece_model_parse(b.data(), b.size(), out, err)) {
        if (err) *err = path + ": " + *err;
        return false;
    }
    return true;
}

}  // namespace spider

// GGUF v2/v3 reader (mmap or caller's buffer, every metadata type, full validation) and atomic writer.
// Layout and the checks llama.cpp applies: shared/reference/formats-and-baselines.md and docs/FORMATS.md.
// The reader works through a bounds-checked cursor: every read first checks the bytes left, so a truncated or
// hostile file yields an error naming the field and the offset, never an out-of-bounds read.
#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/quants.h"
#include "core/threadpool.h"

namespace spider {

namespace {

constexpr uint32_t GGUF_DEFAULT_ALIGNMENT = 32;
constexpr size_t GGUF_MAX_NAME = 64;  // ggml's GGML_MAX_NAME: names must be shorter (room for the NUL)

std::string fmt(const char * f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char * f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return buf;
}

// Bytes of one scalar element of a metadata type; 0 for STRING/ARRAY/unknown.
size_t scalar_size(int32_t t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_BOOL:
            return 1;
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_INT16:
            return 2;
        case GGUF_TYPE_UINT32:
        case GGUF_TYPE_INT32:
        case GGUF_TYPE_FLOAT32:
            return 4;
        case GGUF_TYPE_UINT64:
        case GGUF_TYPE_INT64:
        case GGUF_TYPE_FLOAT64:
            return 8;
        default:
            return 0;
    }
}

bool is_valid_type(int32_t t) {
    return t >= GGUF_TYPE_UINT8 && t <= GGUF_TYPE_FLOAT64;
}
bool is_int_type(int32_t t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_INT16 ||
           t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}
bool is_unsigned_type(int32_t t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}
bool is_float_type(int32_t t) {
    return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64;
}

// Bounds-checked little-endian cursor over the file bytes.
struct cursor {
    const uint8_t * base;
    size_t size;
    size_t pos = 0;
    std::string * err;

    size_t left() const { return size - pos; }
    bool need(size_t n, const char * what) {
        if (n > left()) {
            *err = fmt("truncated file: %s needs %zu bytes at offset %zu but only %zu remain (file size %zu)", what, n,
                       pos, left(), size);
            return false;
        }
        return true;
    }
    template <typename T>
    bool read(T * out, const char * what) {
        if (!need(sizeof(T), what)) return false;
        std::memcpy(out, base + pos, sizeof(T));
        pos += sizeof(T);
        return true;
    }
    bool read_string(std::string * out, const char * what) {
        const size_t at = pos;
        uint64_t len = 0;
        if (!read(&len, what)) return false;
        if (len > left()) {
            *err = fmt("%s: string length %" PRIu64 " at offset %zu goes beyond the end of the file (%zu bytes remain)",
                       what, len, at, left());
            return false;
        }
        out->assign(reinterpret_cast<const char *>(base + pos), static_cast<size_t>(len));
        pos += static_cast<size_t>(len);
        return true;
    }
};

// Reads one scalar of type t into v (v->type already set by the caller).
bool read_scalar(cursor & c, int32_t t, gguf_value * v, const std::string & key) {
    const std::string what = "value of key '" + key + "'";
    switch (t) {
        case GGUF_TYPE_UINT8: {
            uint8_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->u = x;
            v->i = x;
            return true;
        }
        case GGUF_TYPE_INT8: {
            int8_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->i = x;
            v->u = static_cast<uint64_t>(static_cast<int64_t>(x));
            return true;
        }
        case GGUF_TYPE_UINT16: {
            uint16_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->u = x;
            v->i = x;
            return true;
        }
        case GGUF_TYPE_INT16: {
            int16_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->i = x;
            v->u = static_cast<uint64_t>(static_cast<int64_t>(x));
            return true;
        }
        case GGUF_TYPE_UINT32: {
            uint32_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->u = x;
            v->i = x;
            return true;
        }
        case GGUF_TYPE_INT32: {
            int32_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->i = x;
            v->u = static_cast<uint64_t>(static_cast<int64_t>(x));
            return true;
        }
        case GGUF_TYPE_UINT64: {
            uint64_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->u = x;
            v->i = static_cast<int64_t>(x);
            return true;
        }
        case GGUF_TYPE_INT64: {
            int64_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->i = x;
            v->u = static_cast<uint64_t>(x);
            return true;
        }
        case GGUF_TYPE_FLOAT32: {
            float x;
            if (!c.read(&x, what.c_str())) return false;
            v->f = x;
            return true;
        }
        case GGUF_TYPE_FLOAT64: {
            double x;
            if (!c.read(&x, what.c_str())) return false;
            v->f = x;
            return true;
        }
        case GGUF_TYPE_BOOL: {
            int8_t x;
            if (!c.read(&x, what.c_str())) return false;
            v->b = x != 0;
            v->i = v->b;
            v->u = v->b;
            return true;
        }
        case GGUF_TYPE_STRING:
            return c.read_string(&v->str, what.c_str());
        default:
            return false;
    }
}

bool read_array(cursor & c, gguf_value * v, const std::string & key) {
    const size_t at = c.pos;
    int32_t et = 0;
    uint64_t n = 0;
    if (!c.read(&et, ("array element type of key '" + key + "'").c_str())) return false;
    if (et == GGUF_TYPE_ARRAY) {
        *c.err = fmt("key '%s': nested arrays are not supported (offset %zu)", key.c_str(), at);
        return false;
    }
    if (!is_valid_type(et)) {
        *c.err = fmt("key '%s': unknown array element type %d at offset %zu", key.c_str(), et, at);
        return false;
    }
    if (!c.read(&n, ("array length of key '" + key + "'").c_str())) return false;
    v->arr_type = static_cast<gguf_type>(et);
    // Smallest possible encoding of one element: its scalar size, or 8 (the length) for a string. Checking the
    // count against the bytes left keeps a hostile count from allocating before the data runs out.
    const size_t min_elem = et == GGUF_TYPE_STRING ? 8 : scalar_size(et);
    if (n > c.left() / min_elem) {
        *c.err = fmt("key '%s': array of %" PRIu64
                     " %s elements at offset %zu goes beyond the end of the file "
                     "(%zu bytes remain)",
                     key.c_str(), n, gguf_type_name(static_cast<gguf_type>(et)), at, c.left());
        return false;
    }
    const size_t count = static_cast<size_t>(n);
    if (et == GGUF_TYPE_STRING) {
        v->arr_str.resize(count);
        for (size_t i = 0; i < count; ++i) {
            if (!c.read_string(&v->arr_str[i], ("string element of array '" + key + "'").c_str())) return false;
        }
        return true;
    }
    const uint8_t * p = c.base + c.pos;
    const size_t es = scalar_size(et);
    if (is_float_type(et)) {
        v->arr_float.resize(count);
        for (size_t i = 0; i < count; ++i) {
            if (et == GGUF_TYPE_FLOAT32) {
                float x;
                std::memcpy(&x, p + i * 4, 4);
                v->arr_float[i] = x;
            } else {
                std::memcpy(&v->arr_float[i], p + i * 8, 8);
            }
        }
    } else {
        v->arr_int.resize(count);
        for (size_t i = 0; i < count; ++i) {
            const uint8_t * e = p + i * es;
            int64_t x = 0;
            switch (et) {
                case GGUF_TYPE_UINT8:
                    x = e[0];
                    break;
                case GGUF_TYPE_INT8:
                    x = static_cast<int8_t>(e[0]);
                    break;
                case GGUF_TYPE_BOOL:
                    x = e[0] != 0;
                    break;
                case GGUF_TYPE_UINT16: {
                    uint16_t y;
                    std::memcpy(&y, e, 2);
                    x = y;
                    break;
                }
                case GGUF_TYPE_INT16: {
                    int16_t y;
                    std::memcpy(&y, e, 2);
                    x = y;
                    break;
                }
                case GGUF_TYPE_UINT32: {
                    uint32_t y;
                    std::memcpy(&y, e, 4);
                    x = y;
                    break;
                }
                case GGUF_TYPE_INT32: {
                    int32_t y;
                    std::memcpy(&y, e, 4);
                    x = y;
                    break;
                }
                default:
                    std::memcpy(&x, e, 8);
                    break;  // int64, uint64 (bit pattern kept)
            }
            v->arr_int[i] = x;
        }
    }
    c.pos += count * es;
    return true;
}

}  // namespace

const char * gguf_type_name(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
            return "u8";
        case GGUF_TYPE_INT8:
            return "i8";
        case GGUF_TYPE_UINT16:
            return "u16";
        case GGUF_TYPE_INT16:
            return "i16";
        case GGUF_TYPE_UINT32:
            return "u32";
        case GGUF_TYPE_INT32:
            return "i32";
        case GGUF_TYPE_FLOAT32:
            return "f32";
        case GGUF_TYPE_BOOL:
            return "bool";
        case GGUF_TYPE_STRING:
            return "str";
        case GGUF_TYPE_ARRAY:
            return "arr";
        case GGUF_TYPE_UINT64:
            return "u64";
        case GGUF_TYPE_INT64:
            return "i64";
        case GGUF_TYPE_FLOAT64:
            return "f64";
    }
    return "unknown";
}

size_t gguf_value::arr_size() const {
    if (type != GGUF_TYPE_ARRAY) return 0;
    if (arr_type == GGUF_TYPE_STRING) return arr_str.size();
    if (is_float_type(arr_type)) return arr_float.size();
    return arr_int.size();
}

std::string gguf_value_to_string(const gguf_value & v, size_t max_elems) {
    auto scalar = [](int32_t t, int64_t i, uint64_t u, double f, bool b, const std::string & s) -> std::string {
        if (t == GGUF_TYPE_STRING) {
            std::string out = "\"";
            for (char ch : s) {
                if (ch == '\n') {
                    out += "\\n";
                } else if (ch == '"' || ch == '\\') {
                    out += '\\';
                    out += ch;
                } else {
                    out += ch;
                }
            }
            return out + "\"";
        }
        if (t == GGUF_TYPE_BOOL) return b ? "true" : "false";
        if (is_float_type(t)) return fmt("%.9g", f);
        if (is_unsigned_type(t)) return fmt("%" PRIu64, u);
        return fmt("%" PRId64, i);
    };
    if (v.type != GGUF_TYPE_ARRAY) return scalar(v.type, v.i, v.u, v.f, v.b, v.str);
    const size_t n = v.arr_size();
    std::string out = "[";
    for (size_t k = 0; k < n && k < max_elems; ++k) {
        if (k) out += ", ";
        if (v.arr_type == GGUF_TYPE_STRING) {
            out += scalar(GGUF_TYPE_STRING, 0, 0, 0, false, v.arr_str[k]);
        } else if (is_float_type(v.arr_type)) {
            out += scalar(v.arr_type, 0, 0, v.arr_float[k], false, "");
        } else {
            const int64_t x = v.arr_int[k];
            out += scalar(v.arr_type, x, static_cast<uint64_t>(x), 0, x != 0, "");
        }
    }
    if (n > max_elems) out += fmt(", ... (%zu total)", n);
    return out + "]";
}

struct gguf_file::impl {
    // Exactly one of: a mapping we own, or a caller's buffer.
    void * map = nullptr;
    size_t map_size = 0;
    const uint8_t * base = nullptr;
    size_t size = 0;

    uint32_t version = 0;
    size_t alignment = GGUF_DEFAULT_ALIGNMENT;
    size_t data_offset = 0;
    std::vector<std::string> keys;
    std::unordered_map<std::string, gguf_value> kv;
    std::vector<gguf_tensor_info> tensors;
    std::unordered_map<std::string, size_t> tensor_index;

    ~impl() {
        if (map) munmap(map, map_size);
    }
    bool parse(std::string * err);
};

bool gguf_file::impl::parse(std::string * err) {
    cursor c{base, size, 0, err};
    if (size < 4) {
        *err = fmt("truncated header: file is %zu bytes, too small for the magic", size);
        return false;
    }
    if (std::memcmp(base, "GGUF", 4) != 0) {
        *err = fmt("wrong magic: expected \"GGUF\" (47 47 55 46), got %02x %02x %02x %02x — not a GGUF file", base[0],
                   base[1], base[2], base[3]);
        return false;
    }
    c.pos = 4;
    if (!c.read(&version, "version")) return false;
    if ((version & 0xFFFF) == 0) {
        *err = fmt("big-endian GGUF file (version field 0x%08x) is not supported on this little-endian host", version);
        return false;
    }
    if (version == 1) {
        *err = "unsupported GGUF version 1 (obsolete format; re-convert the model to v3)";
        return false;
    }
    if (version != 2 && version != 3) {
        *err = fmt("unsupported GGUF version %u (this reader handles 2 and 3)", version);
        return false;
    }
    int64_t n_tensors = 0, n_kv = 0;
    if (!c.read(&n_tensors, "tensor count")) return false;
    if (!c.read(&n_kv, "metadata KV count")) return false;
    // Smallest encodings: a KV is a key length (8) + type (4) + 1 byte; a tensor info is name length (8) +
    // n_dims (4) + type (4) + offset (8).
    if (n_tensors < 0 || static_cast<uint64_t>(n_tensors) > c.left() / 24) {
        *err = fmt("tensor count %" PRId64 " is impossible for a file of %zu bytes (truncated or corrupt header)",
                   n_tensors, size);
        return false;
    }
    if (n_kv < 0 || static_cast<uint64_t>(n_kv) > c.left() / 13) {
        *err = fmt("metadata KV count %" PRId64 " is impossible for a file of %zu bytes (truncated or corrupt header)",
                   n_kv, size);
        return false;
    }

    keys.reserve(static_cast<size_t>(n_kv));
    for (int64_t k = 0; k < n_kv; ++k) {
        const size_t at = c.pos;
        std::string key;
        if (!c.read_string(&key, "metadata key")) return false;
        if (kv.count(key)) {
            *err = fmt("duplicate metadata key '%s' at offset %zu", key.c_str(), at);
            return false;
        }
        int32_t t = 0;
        if (!c.read(&t, ("value type of key '" + key + "'").c_str())) return false;
        if (!is_valid_type(t)) {
            *err = fmt("key '%s': unknown metadata value type %d at offset %zu", key.c_str(), t, c.pos - 4);
            return false;
        }
        gguf_value v;
        v.type = static_cast<gguf_type>(t);
        if (t == GGUF_TYPE_ARRAY) {
            if (!read_array(c, &v, key)) return false;
        } else if (!read_scalar(c, t, &v, key)) {
            return false;
        }
        keys.push_back(key);
        kv.emplace(std::move(key), std::move(v));
    }

    auto al = kv.find("general.alignment");
    if (al != kv.end()) {
        const gguf_value & v = al->second;
        if (v.type != GGUF_TYPE_UINT32) {
            *err = fmt("general.alignment must be of type u32, got %s", gguf_type_name(v.type));
            return false;
        }
        if (v.u == 0 || (v.u & (v.u - 1)) != 0) {
            *err = fmt("general.alignment %" PRIu64 " is not a power of two", v.u);
            return false;
        }
        alignment = static_cast<size_t>(v.u);
    }

    tensors.reserve(static_cast<size_t>(n_tensors));
    uint64_t expected_offset = 0;
    for (int64_t ti = 0; ti < n_tensors; ++ti) {
        const size_t at = c.pos;
        gguf_tensor_info info;
        if (!c.read_string(&info.name, "tensor name")) return false;
        const char * nm = info.name.c_str();
        if (info.name.size() >= GGUF_MAX_NAME) {
            *err = fmt("tensor name at offset %zu is %zu bytes long (limit %zu): '%.80s'", at, info.name.size(),
                       GGUF_MAX_NAME - 1, nm);
            return false;
        }
        if (tensor_index.count(info.name)) {
            *err = fmt("duplicate tensor name '%s' at offset %zu", nm, at);
            return false;
        }
        uint32_t n_dims = 0;
        if (!c.read(&n_dims, "tensor n_dims")) return false;
        if (n_dims > static_cast<uint32_t>(MAX_DIMS)) {
            *err = fmt("tensor '%s': n_dims %u exceeds the maximum of %d", nm, n_dims, MAX_DIMS);
            return false;
        }
        info.n_dims = static_cast<int>(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            if (!c.read(&info.ne[d], "tensor dimension")) return false;
            if (info.ne[d] < 0) {
                *err = fmt("tensor '%s': dimension %u is negative (%" PRId64 ")", nm, d, info.ne[d]);
                return false;
            }
        }
        // The element count must fit in int64 (ggml's own limit), and so must its byte size in size_t.
        int64_t nel = 1;
        for (int d = 0; d < MAX_DIMS; ++d) {
            if (info.ne[d] != 0 && nel > std::numeric_limits<int64_t>::max() / info.ne[d]) {
                *err = fmt("tensor '%s': element count overflows (ne = %" PRId64 " x %" PRId64 " x %" PRId64
                           " x %" PRId64 ")",
                           nm, info.ne[0], info.ne[1], info.ne[2], info.ne[3]);
                return false;
            }
            nel *= info.ne[d];
        }
        int32_t type = 0;
        if (!c.read(&type, "tensor type")) return false;
        const dtype_traits * tr = dtype_get_traits(type);
        if (!tr) {
            *err = fmt("tensor '%s': unknown or unsupported tensor type %d", nm, type);
            return false;
        }
        info.type = static_cast<dtype>(type);
        if (info.ne[0] % tr->block_size != 0) {
            *err = fmt("tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64, nm,
                       info.ne[0], tr->name, tr->block_size);
            return false;
        }
        if (!c.read(&info.offset, "tensor data offset")) return false;
        const uint64_t row_bytes = static_cast<uint64_t>(info.ne[0] / tr->block_size) * tr->block_bytes;
        const uint64_t rows = static_cast<uint64_t>(info.ne[1]) * info.ne[2] * info.ne[3];
        if (rows != 0 && row_bytes > std::numeric_limits<uint64_t>::max() / 2 / rows) {
            *err = fmt("tensor '%s': byte size overflows", nm);
            return false;
        }
        const uint64_t nbytes = row_bytes * rows;
        if (nbytes > size) {
            *err = fmt("tensor '%s': data size %" PRIu64 " bytes is larger than the whole file (%zu bytes)", nm, nbytes,
                       size);
            return false;
        }
        info.nbytes = static_cast<size_t>(nbytes);
        if (info.offset % alignment != 0) {
            *err = fmt("tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %zu", nm, info.offset,
                       alignment);
            return false;
        }
        if (info.offset != expected_offset) {
            *err = fmt("tensor '%s': data offset %" PRIu64 " does not match the expected %" PRIu64
                       " (tensor data must be contiguous, in order, each padded to %zu bytes)",
                       nm, info.offset, expected_offset, alignment);
            return false;
        }
        expected_offset += (nbytes + alignment - 1) / alignment * alignment;
        tensor_index.emplace(info.name, tensors.size());
        tensors.push_back(std::move(info));
    }

    // Data section: padding to the alignment, then the blob.
    data_offset = (c.pos + alignment - 1) / alignment * alignment;
    for (const gguf_tensor_info & info : tensors) {
        if (info.nbytes == 0) continue;
        if (data_offset > size || info.offset > size - data_offset || info.nbytes > size - data_offset - info.offset) {
            *err = fmt("truncated tensor data: tensor '%s' occupies bytes [%zu, %zu) but the file is %zu bytes",
                       info.name.c_str(), data_offset + static_cast<size_t>(info.offset),
                       data_offset + static_cast<size_t>(info.offset) + info.nbytes, size);
            return false;
        }
    }
    return true;
}

gguf_file::gguf_file() : p_(new impl) {}
gguf_file::~gguf_file() = default;

std::unique_ptr<gguf_file> gguf_file::open(const std::string & path, std::string * err) {
    std::string local;
    if (!err) err = &local;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = "gguf: cannot open '" + path + "': " + std::strerror(errno);
        return nullptr;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *err = "gguf: '" + path + "' is not a regular file";
        ::close(fd);
        return nullptr;
    }
    std::unique_ptr<gguf_file> f(new gguf_file);
    const size_t size = static_cast<size_t>(st.st_size);
    if (size > 0) {
        void * m = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            *err = "gguf: cannot mmap '" + path + "': " + std::strerror(errno);
            ::close(fd);
            return nullptr;
        }
        f->p_->map = m;
        f->p_->map_size = size;
        f->p_->base = static_cast<const uint8_t *>(m);
    } else {
        static const uint8_t empty = 0;
        f->p_->base = &empty;
    }
    ::close(fd);
    f->p_->size = size;
    if (!f->p_->parse(err)) {
        *err = "gguf '" + path + "': " + *err;
        return nullptr;
    }
    return f;
}

std::unique_ptr<gguf_file> gguf_file::open_buffer(const void * data, size_t size, std::string * err) {
    std::string local;
    if (!err) err = &local;
    static const uint8_t empty = 0;
    std::unique_ptr<gguf_file> f(new gguf_file);
    f->p_->base = data ? static_cast<const uint8_t *>(data) : &empty;
    f->p_->size = data ? size : 0;
    if (!f->p_->parse(err)) {
        *err = "gguf: " + *err;
        return nullptr;
    }
    return f;
}

uint32_t gguf_file::version() const {
    return p_->version;
}
size_t gguf_file::alignment() const {
    return p_->alignment;
}
size_t gguf_file::data_offset() const {
    return p_->data_offset;
}
size_t gguf_file::file_size() const {
    return p_->size;
}
const std::vector<std::string> & gguf_file::keys() const {
    return p_->keys;
}

const gguf_value * gguf_file::find(const std::string & key) const {
    auto it = p_->kv.find(key);
    return it == p_->kv.end() ? nullptr : &it->second;
}

bool gguf_file::get_string(const std::string & key, std::string * out) const {
    const gguf_value * v = find(key);
    if (!v || v->type != GGUF_TYPE_STRING) return false;
    *out = v->str;
    return true;
}

bool gguf_file::get_int(const std::string & key, int64_t * out) const {
    const gguf_value * v = find(key);
    if (!v) return false;
    if (v->type == GGUF_TYPE_BOOL) {
        *out = v->b ? 1 : 0;
        return true;
    }
    if (!is_int_type(v->type)) return false;
    if (v->type == GGUF_TYPE_UINT64 && v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = v->i;
    return true;
}

bool gguf_file::get_float(const std::string & key, double * out) const {
    const gguf_value * v = find(key);
    if (!v) return false;
    if (is_float_type(v->type)) {
        *out = v->f;
        return true;
    }
    if (is_int_type(v->type)) {
        *out = is_unsigned_type(v->type) ? static_cast<double>(v->u) : static_cast<double>(v->i);
        return true;
    }
    return false;
}

bool gguf_file::get_bool(const std::string & key, bool * out) const {
    const gguf_value * v = find(key);
    if (!v || v->type != GGUF_TYPE_BOOL) return false;
    *out = v->b;
    return true;
}

const std::vector<gguf_tensor_info> & gguf_file::tensors() const {
    return p_->tensors;
}

const gguf_tensor_info * gguf_file::find_tensor(const std::string & name) const {
    auto it = p_->tensor_index.find(name);
    return it == p_->tensor_index.end() ? nullptr : &p_->tensors[it->second];
}

tensor gguf_file::view(const gguf_tensor_info & info) const {
    // The mapping is read-only; the view's pointer is non-const only because tensor is a general view type.
    void * d = const_cast<uint8_t *>(p_->base + p_->data_offset + info.offset);
    tensor t = make_tensor(info.type, d, info.ne[0], info.ne[1], info.ne[2], info.ne[3]);
    t.name = info.name;
    return t;
}

const uint8_t * gguf_file::data_section() const {
    return p_->base + p_->data_offset;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

namespace {
struct pending_tensor {
    gguf_tensor_info info;
    std::vector<uint8_t> owned;  // copied data, or empty when `ref` is used
    const void * ref = nullptr;  // caller-owned data (add_tensor_ref)
    const void * data() const { return ref ? ref : owned.data(); }
};
}  // namespace

struct gguf_writer::impl {
    uint32_t alignment = GGUF_DEFAULT_ALIGNMENT;
    std::vector<std::pair<std::string, gguf_value>> kv;
    std::vector<pending_tensor> tensors;
    std::unordered_set<std::string> tensor_names;

    void set(const std::string & key, gguf_value v) {
        for (auto & e : kv) {
            if (e.first == key) {
                e.second = std::move(v);
                return;
            }
        }
        kv.emplace_back(key, std::move(v));
    }
};

gguf_writer::gguf_writer() : p_(new impl) {}
gguf_writer::~gguf_writer() = default;

void gguf_writer::set_alignment(uint32_t a) {
    p_->alignment = a;
    set_u32("general.alignment", a);
}

static gguf_value make_int(gguf_type t, int64_t i, uint64_t u) {
    gguf_value v;
    v.type = t;
    v.i = i;
    v.u = u;
    return v;
}

void gguf_writer::set_u8(const std::string & key, uint8_t x) {
    p_->set(key, make_int(GGUF_TYPE_UINT8, x, x));
}
void gguf_writer::set_i8(const std::string & key, int8_t x) {
    p_->set(key, make_int(GGUF_TYPE_INT8, x, static_cast<uint64_t>(static_cast<int64_t>(x))));
}
void gguf_writer::set_u16(const std::string & key, uint16_t x) {
    p_->set(key, make_int(GGUF_TYPE_UINT16, x, x));
}
void gguf_writer::set_i16(const std::string & key, int16_t x) {
    p_->set(key, make_int(GGUF_TYPE_INT16, x, static_cast<uint64_t>(static_cast<int64_t>(x))));
}
void gguf_writer::set_u32(const std::string & key, uint32_t x) {
    p_->set(key, make_int(GGUF_TYPE_UINT32, x, x));
}
void gguf_writer::set_i32(const std::string & key, int32_t x) {
    p_->set(key, make_int(GGUF_TYPE_INT32, x, static_cast<uint64_t>(static_cast<int64_t>(x))));
}
void gguf_writer::set_u64(const std::string & key, uint64_t x) {
    p_->set(key, make_int(GGUF_TYPE_UINT64, static_cast<int64_t>(x), x));
}
void gguf_writer::set_i64(const std::string & key, int64_t x) {
    p_->set(key, make_int(GGUF_TYPE_INT64, x, static_cast<uint64_t>(x)));
}
void gguf_writer::set_f32(const std::string & key, float x) {
    gguf_value v;
    v.type = GGUF_TYPE_FLOAT32;
    v.f = x;
    p_->set(key, std::move(v));
}
void gguf_writer::set_f64(const std::string & key, double x) {
    gguf_value v;
    v.type = GGUF_TYPE_FLOAT64;
    v.f = x;
    p_->set(key, std::move(v));
}
void gguf_writer::set_bool(const std::string & key, bool x) {
    gguf_value v;
    v.type = GGUF_TYPE_BOOL;
    v.b = x;
    v.i = v.u = x;
    p_->set(key, std::move(v));
}
void gguf_writer::set_string(const std::string & key, const std::string & x) {
    gguf_value v;
    v.type = GGUF_TYPE_STRING;
    v.str = x;
    p_->set(key, std::move(v));
}
void gguf_writer::set_value(const std::string & key, const gguf_value & v) {
    if (key == "general.alignment" && v.type == GGUF_TYPE_UINT32) {
        p_->alignment = static_cast<uint32_t>(v.u ? v.u : static_cast<uint64_t>(v.i));
    }
    p_->set(key, v);
}
void gguf_writer::set_array_str(const std::string & key, const std::vector<std::string> & x) {
    gguf_value v;
    v.type = GGUF_TYPE_ARRAY;
    v.arr_type = GGUF_TYPE_STRING;
    v.arr_str = x;
    p_->set(key, std::move(v));
}
void gguf_writer::set_array_f32(const std::string & key, const std::vector<float> & x) {
    gguf_value v;
    v.type = GGUF_TYPE_ARRAY;
    v.arr_type = GGUF_TYPE_FLOAT32;
    v.arr_float.assign(x.begin(), x.end());
    p_->set(key, std::move(v));
}
void gguf_writer::set_array_i32(const std::string & key, const std::vector<int32_t> & x) {
    gguf_value v;
    v.type = GGUF_TYPE_ARRAY;
    v.arr_type = GGUF_TYPE_INT32;
    v.arr_int.assign(x.begin(), x.end());
    p_->set(key, std::move(v));
}
bool gguf_writer::remove(const std::string & key) {
    for (size_t i = 0; i < p_->kv.size(); ++i) {
        if (p_->kv[i].first == key) {
            p_->kv.erase(p_->kv.begin() + static_cast<long>(i));
            if (key == "general.alignment") p_->alignment = GGUF_DEFAULT_ALIGNMENT;
            return true;
        }
    }
    return false;
}
size_t gguf_writer::n_tensors() const {
    return p_->tensors.size();
}

static bool check_tensor(const std::string & name, dtype type, const int64_t * ne, int n_dims,
                         const std::unordered_set<std::string> & names, gguf_tensor_info * info, std::string * err) {
    if (name.empty() || name.size() >= GGUF_MAX_NAME) {
        *err = fmt("gguf_writer: tensor name '%.80s' must be 1..%zu bytes", name.c_str(), GGUF_MAX_NAME - 1);
        return false;
    }
    if (names.count(name)) {
        *err = "gguf_writer: duplicate tensor name '" + name + "'";
        return false;
    }
    if (n_dims < 1 || n_dims > MAX_DIMS) {
        *err = fmt("gguf_writer: tensor '%s': n_dims %d out of range 1..%d", name.c_str(), n_dims, MAX_DIMS);
        return false;
    }
    const dtype_traits * tr = dtype_get_traits(type);
    if (!tr) {
        *err = fmt("gguf_writer: tensor '%s': unsupported type %d", name.c_str(), static_cast<int>(type));
        return false;
    }
    info->name = name;
    info->type = type;
    info->n_dims = n_dims;
    int64_t nel = 1;
    for (int d = 0; d < n_dims; ++d) {
        if (ne[d] < 0 || (ne[d] != 0 && nel > std::numeric_limits<int64_t>::max() / ne[d])) {
            *err = fmt("gguf_writer: tensor '%s': bad dimension %d (%" PRId64 ")", name.c_str(), d, ne[d]);
            return false;
        }
        nel *= ne[d];
        info->ne[d] = ne[d];
    }
    if (ne[0] % tr->block_size != 0) {
        *err = fmt("gguf_writer: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                   name.c_str(), ne[0], tr->name, tr->block_size);
        return false;
    }
    info->nbytes = dtype_row_bytes(type, ne[0]) * static_cast<size_t>(info->ne[1] * info->ne[2] * info->ne[3]);
    return true;
}

bool gguf_writer::add_tensor(const std::string & name, dtype type, const int64_t * ne, int n_dims, const void * data,
                             std::string * err) {
    pending_tensor t;
    if (!check_tensor(name, type, ne, n_dims, p_->tensor_names, &t.info, err)) return false;
    if (t.info.nbytes && !data) {
        *err = "gguf_writer: tensor '" + name + "': no data";
        return false;
    }
    const uint8_t * d = static_cast<const uint8_t *>(data);
    t.owned.assign(d, d + t.info.nbytes);
    p_->tensor_names.insert(name);
    p_->tensors.push_back(std::move(t));
    return true;
}

bool gguf_writer::add_tensor_ref(const std::string & name, dtype type, const int64_t * ne, int n_dims,
                                 const void * data, std::string * err) {
    pending_tensor t;
    if (!check_tensor(name, type, ne, n_dims, p_->tensor_names, &t.info, err)) return false;
    if (t.info.nbytes && !data) {
        *err = "gguf_writer: tensor '" + name + "': no data";
        return false;
    }
    t.ref = data;
    p_->tensor_names.insert(name);
    p_->tensors.push_back(std::move(t));
    return true;
}

namespace {

// Buffered writer over a file descriptor.
struct out_file {
    int fd = -1;
    std::vector<uint8_t> buf;
    bool failed = false;
    int saved_errno = 0;
    uint64_t written = 0;

    void flush() {
        size_t off = 0;
        while (!failed && off < buf.size()) {
            const ssize_t r = ::write(fd, buf.data() + off, buf.size() - off);
            if (r < 0) {
                if (errno == EINTR) continue;
                failed = true;
                saved_errno = errno;
                break;
            }
            off += static_cast<size_t>(r);
        }
        buf.clear();
    }
    void put(const void * p, size_t n) {
        written += n;
        const uint8_t * b = static_cast<const uint8_t *>(p);
        if (n >= (1u << 20)) {  // big blobs go straight through
            flush();
            buf.assign(b, b + n);
            flush();
            return;
        }
        buf.insert(buf.end(), b, b + n);
        if (buf.size() >= (1u << 20)) flush();
    }
    template <typename T>
    void put_le(T x) {
        put(&x, sizeof(T));
    }
    void put_str(const std::string & s) {
        put_le<uint64_t>(s.size());
        put(s.data(), s.size());
    }
    void pad_to(uint64_t alignment) {
        static const uint8_t zeros[64] = {0};
        while (written % alignment) {
            const uint64_t n = std::min<uint64_t>(sizeof(zeros), alignment - written % alignment);
            put(zeros, static_cast<size_t>(n));
        }
    }
};

bool int_in_range(gguf_type t, int64_t x, bool from_unsigned) {
    switch (t) {
        case GGUF_TYPE_UINT8:
            return x >= 0 && x <= 0xFF;
        case GGUF_TYPE_INT8:
            return x >= -128 && x <= 127;
        case GGUF_TYPE_UINT16:
            return x >= 0 && x <= 0xFFFF;
        case GGUF_TYPE_INT16:
            return x >= -32768 && x <= 32767;
        case GGUF_TYPE_UINT32:
            return x >= 0 && x <= 0xFFFFFFFFll;
        case GGUF_TYPE_INT32:
            return x >= INT32_MIN && x <= INT32_MAX;
        case GGUF_TYPE_BOOL:
            return x == 0 || x == 1;
        default:
            return true;  // 64-bit: bit pattern kept
    }
}

void put_int(out_file & o, gguf_type t, int64_t x) {
    switch (t) {
        case GGUF_TYPE_UINT8:
            o.put_le<uint8_t>(static_cast<uint8_t>(x));
            break;
        case GGUF_TYPE_INT8:
            o.put_le<int8_t>(static_cast<int8_t>(x));
            break;
        case GGUF_TYPE_BOOL:
            o.put_le<int8_t>(x != 0);
            break;
        case GGUF_TYPE_UINT16:
            o.put_le<uint16_t>(static_cast<uint16_t>(x));
            break;
        case GGUF_TYPE_INT16:
            o.put_le<int16_t>(static_cast<int16_t>(x));
            break;
        case GGUF_TYPE_UINT32:
            o.put_le<uint32_t>(static_cast<uint32_t>(x));
            break;
        case GGUF_TYPE_INT32:
            o.put_le<int32_t>(static_cast<int32_t>(x));
            break;
        default:
            o.put_le<int64_t>(x);
            break;
    }
}

// Validates a value before anything is written, so a bad value never leaves a half-written file.
bool check_value(const std::string & key, const gguf_value & v, std::string * err) {
    if (!is_valid_type(v.type)) {
        *err = fmt("gguf_writer: key '%s': unknown value type %d", key.c_str(), static_cast<int>(v.type));
        return false;
    }
    if (is_int_type(v.type)) {
        const int64_t x = is_unsigned_type(v.type) && v.u ? static_cast<int64_t>(v.u) : v.i;
        if (!int_in_range(v.type, x, false)) {
            *err = fmt("gguf_writer: key '%s': value %" PRId64 " out of range for %s", key.c_str(), x,
                       gguf_type_name(v.type));
            return false;
        }
    }
    if (v.type != GGUF_TYPE_ARRAY) return true;
    if (v.arr_type == GGUF_TYPE_ARRAY || !is_valid_type(v.arr_type)) {
        *err = fmt("gguf_writer: key '%s': bad array element type %d", key.c_str(), static_cast<int>(v.arr_type));
        return false;
    }
    if (v.arr_type != GGUF_TYPE_STRING && !is_float_type(v.arr_type)) {
        for (size_t i = 0; i < v.arr_int.size(); ++i) {
            if (!int_in_range(v.arr_type, v.arr_int[i], false)) {
                *err = fmt("gguf_writer: key '%s': element %zu (%" PRId64 ") out of range for %s", key.c_str(), i,
                           v.arr_int[i], gguf_type_name(v.arr_type));
                return false;
            }
        }
    }
    return true;
}

void put_value(out_file & o, const gguf_value & v) {
    o.put_le<int32_t>(v.type);
    switch (v.type) {
        case GGUF_TYPE_STRING:
            o.put_str(v.str);
            return;
        case GGUF_TYPE_FLOAT32:
            o.put_le<float>(static_cast<float>(v.f));
            return;
        case GGUF_TYPE_FLOAT64:
            o.put_le<double>(v.f);
            return;
        case GGUF_TYPE_BOOL:
            o.put_le<int8_t>(v.b || v.i != 0);
            return;
        case GGUF_TYPE_ARRAY:
            break;
        default:
            put_int(o, v.type, is_unsigned_type(v.type) && v.u ? static_cast<int64_t>(v.u) : v.i);
            return;
    }
    o.put_le<int32_t>(v.arr_type);
    o.put_le<uint64_t>(v.arr_size());
    if (v.arr_type == GGUF_TYPE_STRING) {
        for (const std::string & s : v.arr_str) o.put_str(s);
    } else if (v.arr_type == GGUF_TYPE_FLOAT32) {
        for (double x : v.arr_float) o.put_le<float>(static_cast<float>(x));
    } else if (v.arr_type == GGUF_TYPE_FLOAT64) {
        for (double x : v.arr_float) o.put_le<double>(x);
    } else {
        for (int64_t x : v.arr_int) put_int(o, v.arr_type, x);
    }
}

}  // namespace

bool gguf_writer::write(const std::string & path, std::string * err) const {
    std::string local;
    if (!err) err = &local;
    const uint32_t al = p_->alignment;
    if (al == 0 || (al & (al - 1)) != 0) {
        *err = fmt("gguf_writer: alignment %u is not a power of two", al);
        return false;
    }
    for (const auto & e : p_->kv) {
        if (!check_value(e.first, e.second, err)) return false;
    }

    // Temp file in the destination directory so the final rename is atomic on the same filesystem.
    std::string tmpl = path + ".tmp.XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    out_file o;
    o.fd = mkstemp(name.data());
    if (o.fd < 0) {
        *err = "gguf_writer: cannot create a temporary file next to '" + path + "': " + std::strerror(errno);
        return false;
    }
    fchmod(o.fd, 0644);
    const std::string tmp(name.data());

    o.put("GGUF", 4);
    o.put_le<uint32_t>(3);
    o.put_le<int64_t>(static_cast<int64_t>(p_->tensors.size()));
    o.put_le<int64_t>(static_cast<int64_t>(p_->kv.size()));
    for (const auto & e : p_->kv) {
        o.put_str(e.first);
        put_value(o, e.second);
    }
    uint64_t offset = 0;
    for (const pending_tensor & t : p_->tensors) {
        o.put_str(t.info.name);
        o.put_le<uint32_t>(static_cast<uint32_t>(t.info.n_dims));
        for (int d = 0; d < t.info.n_dims; ++d) o.put_le<int64_t>(t.info.ne[d]);
        o.put_le<int32_t>(t.info.type);
        o.put_le<uint64_t>(offset);
        offset += (t.info.nbytes + al - 1) / al * al;
    }
    o.pad_to(al);
    for (const pending_tensor & t : p_->tensors) {
        o.put(t.data(), t.info.nbytes);
        o.pad_to(al);
    }
    o.flush();
    bool ok = !o.failed;
    int e = o.saved_errno;
    if (ok && fsync(o.fd) != 0) {
        ok = false;
        e = errno;
    }
    if (::close(o.fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        ::unlink(tmp.c_str());
        *err = "gguf_writer: writing '" + path + "' failed: " + std::strerror(e);
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Quantization (type selection as in llama.cpp's src/llama-quant.cpp; see docs/FORMATS.md)

namespace {

// llama_ftype numbers (general.file_type).
constexpr uint32_t FTYPE_ALL_F32 = 0, FTYPE_MOSTLY_F16 = 1, FTYPE_MOSTLY_Q4_0 = 2, FTYPE_MOSTLY_Q8_0 = 7,
                   FTYPE_MOSTLY_Q4_K_S = 14, FTYPE_MOSTLY_Q4_K_M = 15, FTYPE_MOSTLY_Q5_K_S = 16, FTYPE_MOSTLY_Q6_K = 18,
                   FTYPE_MOSTLY_BF16 = 32;

bool contains(const std::string & s, const char * sub) {
    return s.find(sub) != std::string::npos;
}
bool ends_with(const std::string & s, const char * suf) {
    const size_t n = std::strlen(suf);
    return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// ggml_n_dims: the number of dimensions up to the last one larger than 1.
int effective_dims(const gguf_tensor_info & t) {
    for (int d = MAX_DIMS - 1; d >= 1; --d) {
        if (t.ne[d] > 1) return d + 1;
    }
    return 1;
}

// Which tensors llama.cpp quantizes at all (the subset of its rules that can apply to our architectures).
bool allows_quantization(const gguf_tensor_info & t) {
    if (effective_dims(t) < 2) return false;
    const std::string & n = t.name;
    if (!ends_with(n, "weight")) return false;
    if (contains(n, "_norm.weight")) return false;
    if (contains(n, "ffn_gate_inp.weight")) return false;
    if (n == "position_embd.weight" || n == "token_types.weight") return false;
    if (contains(n, ".position_embd") || contains(n, ".patch_embd") || contains(n, "attn_rel_b.weight")) return false;
    return true;
}

bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

int block_of(dtype t) {
    const dtype_traits * tr = dtype_get_traits(t);
    return tr ? static_cast<int>(tr->block_size) : 1;
}

// Rows whose length does not fit the block: llama.cpp's tensor_type_fallback. It maps Q5_K to Q5_1, which Spider
// does not implement; Q5_0 is the same block size with a symmetric scale.
dtype shape_fallback(dtype t, int64_t ncols) {
    if (ncols % block_of(t) == 0) return t;
    dtype r = t;
    switch (t) {
        case DTYPE_Q4_K:
            r = DTYPE_Q5_0;
            break;
        case DTYPE_Q5_K:
            r = DTYPE_Q5_0;
            break;
        case DTYPE_Q6_K:
            r = DTYPE_Q8_0;
            break;
        default:
            r = DTYPE_F16;
            break;
    }
    if (ncols % block_of(r) != 0) r = DTYPE_F16;
    return r;
}

}  // namespace

bool gguf_quant_mix_from_name(const std::string & name_in, dtype * default_type, uint32_t * ftype, bool * q4_k_m) {
    std::string n;
    for (char c : name_in) n += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    *q4_k_m = false;
    if (n == "F32") {
        *default_type = DTYPE_F32;
        *ftype = FTYPE_ALL_F32;
    } else if (n == "F16") {
        *default_type = DTYPE_F16;
        *ftype = FTYPE_MOSTLY_F16;
    } else if (n == "BF16") {
        *default_type = DTYPE_BF16;
        *ftype = FTYPE_MOSTLY_BF16;
    } else if (n == "Q8_0") {
        *default_type = DTYPE_Q8_0;
        *ftype = FTYPE_MOSTLY_Q8_0;
    } else if (n == "Q4_0") {
        *default_type = DTYPE_Q4_0;
        *ftype = FTYPE_MOSTLY_Q4_0;
    } else if (n == "Q4_K" || n == "Q4_K_S") {
        *default_type = DTYPE_Q4_K;
        *ftype = FTYPE_MOSTLY_Q4_K_S;
    } else if (n == "Q5_K" || n == "Q5_K_S") {
        *default_type = DTYPE_Q5_K;
        *ftype = FTYPE_MOSTLY_Q5_K_S;
    } else if (n == "Q6_K") {
        *default_type = DTYPE_Q6_K;
        *ftype = FTYPE_MOSTLY_Q6_K;
    } else if (n == "Q4_K_M") {
        *default_type = DTYPE_Q4_K;
        *ftype = FTYPE_MOSTLY_Q4_K_M;
        *q4_k_m = true;
    } else {
        return false;
    }
    return true;
}

bool gguf_quantize_plan(const gguf_file & in, const std::string & mix_name, std::vector<dtype> * plan,
                        std::string * err) {
    dtype base;
    uint32_t ftype;
    bool mix_m;
    if (!gguf_quant_mix_from_name(mix_name, &base, &ftype, &mix_m)) {
        if (err) {
            *err = "unknown quantization type '" + mix_name +
                   "' (choose F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, " + "Q4_K_M)";
        }
        return false;
    }
    const std::vector<gguf_tensor_info> & ts = in.tensors();
    int n_attn_v = 0, max_layer = -1;
    bool tied = true;
    for (const gguf_tensor_info & t : ts) {
        if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight")) ++n_attn_v;
        if (t.name == "output.weight") tied = false;
        int l = -1;
        if (std::sscanf(t.name.c_str(), "blk.%d.", &l) == 1) max_layer = std::max(max_layer, l);
    }
    int n_layer = max_layer + 1;
    std::string arch;
    int64_t bc = 0;
    if (in.get_string("general.architecture", &arch) && in.get_int(arch + ".block_count", &bc) && bc > 0) {
        n_layer = static_cast<int>(bc);
    }
    const bool quantized = dtype_get_traits(base)->quantized;
    int i_attn_v = 0, i_ffn_down = 0;
    plan->clear();
    for (const gguf_tensor_info & t : ts) {
        dtype nt = t.type;
        if (allows_quantization(t)) {
            nt = base;
            if (quantized) {
                const bool is_output = t.name == "output.weight" || (tied && t.name == "token_embd.weight");
                if (is_output) {
                    if (t.ne[0] % block_of(base) != 0) {
                        nt = DTYPE_Q8_0;
                    } else if (base != DTYPE_Q8_0) {
                        nt = DTYPE_Q6_K;
                    }
                } else if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight")) {
                    if (mix_m) {
                        if (contains(t.name, "attn_qkv.weight")) {
                            nt = DTYPE_Q5_K;
                        } else if (use_more_bits(i_attn_v, n_attn_v)) {
                            nt = DTYPE_Q6_K;
                        }
                    }
                    ++i_attn_v;
                } else if (contains(t.name, "ffn_down")) {
                    if (mix_m && use_more_bits(i_ffn_down, n_layer)) nt = DTYPE_Q6_K;
                    ++i_ffn_down;
                }
                nt = shape_fallback(nt, t.ne[0]);
            }
        }
        plan->push_back(nt);
    }
    return true;
}

bool gguf_quantize_file(const std::string & in_path, const std::string & out_path, const gguf_quantize_params & params,
                        std::string * err) {
    std::string local;
    if (!err) err = &local;
    auto in = gguf_file::open(in_path, err);
    if (!in) return false;
    dtype base;
    uint32_t ftype;
    bool mix_m;
    std::vector<dtype> plan;
    if (!gguf_quant_mix_from_name(params.mix, &base, &ftype, &mix_m) ||
        !gguf_quantize_plan(*in, params.mix, &plan, err)) {
        if (err->empty()) *err = "unknown quantization type '" + params.mix + "'";
        return false;
    }
    for (size_t i = 0; i < plan.size(); ++i) {
        const gguf_tensor_info & t = in->tensors()[i];
        if (plan[i] != t.type && (!dtype_get_traits(plan[i]) || t.ne[0] % block_of(plan[i]) != 0)) {
            *err = "tensor '" + t.name + "': cannot convert to " + dtype_name(plan[i]);
            return false;
        }
    }

    gguf_writer w;
    for (const std::string & k : in->keys()) {
        if (k.compare(0, 6, "split.") == 0) continue;  // one output file
        w.set_value(k, *in->find(k));
    }
    w.set_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
    w.set_u32("general.file_type", ftype);

    int nt = params.n_threads > 0 ? params.n_threads : static_cast<int>(std::thread::hardware_concurrency());
    if (nt < 1) nt = 1;
    thread_pool pool(nt);
    std::vector<std::vector<uint8_t>> outs(plan.size());
    for (size_t i = 0; i < plan.size(); ++i) {
        const gguf_tensor_info & t = in->tensors()[i];
        const dtype dst = plan[i];
        gguf_quantize_progress pr;
        pr.index = i;
        pr.count = plan.size();
        pr.info = &t;
        pr.new_type = dst;
        const tensor src = in->view(t);
        bool ok = true;
        if (dst == t.type) {
            ok = w.add_tensor_ref(t.name, t.type, t.ne, std::max(1, t.n_dims), src.data, err);
            pr.new_bytes = t.nbytes;
        } else {
            const int64_t n = t.ne[0];
            const int64_t rows = t.ne[1] * t.ne[2] * t.ne[3];
            const size_t dst_row = dtype_row_bytes(dst, n);
            std::vector<uint8_t> & out = outs[i];
            out.resize(dst_row * static_cast<size_t>(rows));
            std::vector<double> err2(nt, 0.0), ref2(nt, 0.0);
            std::vector<int> bad(nt, 0);
            pool.run([&](int ith, int nth) {
                long long r0, r1;
                split_range(rows, ith, nth, r0, r1);
                std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
                for (long long r = r0; r < r1; ++r) {
                    uint8_t * o = out.data() + static_cast<size_t>(r) * dst_row;
                    if (!dequantize_row(t.type, static_cast<const uint8_t *>(src.data) + r * src.nb[1], x.data(), n) ||
                        !quantize_row(dst, x.data(), o, n) || !dequantize_row(dst, o, y.data(), n)) {
                        bad[ith] = 1;
                        return;
                    }
                    for (int64_t k = 0; k < n; ++k) {
                        const double d = static_cast<double>(y[k]) - x[k];
                        err2[ith] += d * d;
                        ref2[ith] += static_cast<double>(x[k]) * x[k];
                    }
                }
            });
            double e2 = 0, x2 = 0;
            for (int k = 0; k < nt; ++k) {
                if (bad[k]) {
                    *err = "tensor '" + t.name + "': conversion " + dtype_name(t.type) + " -> " + dtype_name(dst) +
                           " failed";
                    return false;
                }
                e2 += err2[k];
                x2 += ref2[k];
            }
            pr.converted = true;
            pr.rel_rmse = x2 > 0 ? std::sqrt(e2 / x2) : std::sqrt(e2);
            pr.new_bytes = out.size();
            ok = w.add_tensor_ref(t.name, dst, t.ne, std::max(1, t.n_dims), out.data(), err);
        }
        if (!ok) return false;
        if (params.progress) params.progress(pr);
    }
    return w.write(out_path, err);
}

}  // namespace spider

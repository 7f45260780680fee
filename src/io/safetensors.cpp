// safetensors reader: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data blob; offsets are relative to the blob. The checks follow the reference Rust implementation
// (huggingface/safetensors): header at most 100 MB, offsets cover the blob exactly with no overlap or gap,
// byte size matches dtype x shape. Sharded checkpoints: model.safetensors.index.json {"weight_map": {name: file}}.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/dtype.h"

namespace spider {

namespace {

using json = nlohmann::json;

constexpr uint64_t ST_MAX_HEADER = 100000000;  // the reference implementation's limit

bool parse_dtype(const std::string & s, st_dtype * out) {
    static const std::pair<const char *, st_dtype> table[] = {
        {"F64", ST_F64}, {"F32", ST_F32}, {"F16", ST_F16}, {"BF16", ST_BF16}, {"I64", ST_I64},
        {"I32", ST_I32}, {"I16", ST_I16}, {"I8", ST_I8},   {"U8", ST_U8},     {"BOOL", ST_BOOL},
    };
    for (const auto & e : table) {
        if (s == e.first) {
            *out = e.second;
            return true;
        }
    }
    return false;
}

// A read-only mapping of a whole file.
struct mapping {
    void * addr = nullptr;
    size_t size = 0;
    ~mapping() {
        if (addr) munmap(addr, size);
    }
    bool open(const std::string & path, std::string * err) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            *err = "safetensors: cannot open '" + path + "': " + std::strerror(errno);
            return false;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            *err = "safetensors: '" + path + "' is not a regular file";
            ::close(fd);
            return false;
        }
        size = static_cast<size_t>(st.st_size);
        if (size > 0) {
            addr = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
            if (addr == MAP_FAILED) {
                addr = nullptr;
                *err = "safetensors: cannot mmap '" + path + "': " + std::strerror(errno);
                ::close(fd);
                return false;
            }
        }
        ::close(fd);
        return true;
    }
};

}  // namespace

const char * st_dtype_name(st_dtype t) {
    switch (t) {
        case ST_F64:
            return "F64";
        case ST_F32:
            return "F32";
        case ST_F16:
            return "F16";
        case ST_BF16:
            return "BF16";
        case ST_I64:
            return "I64";
        case ST_I32:
            return "I32";
        case ST_I16:
            return "I16";
        case ST_I8:
            return "I8";
        case ST_U8:
            return "U8";
        case ST_BOOL:
            return "BOOL";
    }
    return "unknown";
}

size_t st_dtype_size(st_dtype t) {
    switch (t) {
        case ST_F64:
        case ST_I64:
            return 8;
        case ST_F32:
        case ST_I32:
            return 4;
        case ST_F16:
        case ST_BF16:
        case ST_I16:
            return 2;
        case ST_I8:
        case ST_U8:
        case ST_BOOL:
            return 1;
    }
    return 0;
}

struct safetensors_file::impl {
    mapping map;  // empty for open_buffer
    const uint8_t * base = nullptr;
    size_t size = 0;
    std::vector<st_tensor> tensors;
    std::unordered_map<std::string, size_t> index;
    std::map<std::string, std::string> metadata;

    bool parse(std::string * err);
};

bool safetensors_file::impl::parse(std::string * err) {
    if (size < 8) {
        *err = "file is " + std::to_string(size) + " bytes, too small for the 8-byte header length (truncated)";
        return false;
    }
    uint64_t n = 0;
    std::memcpy(&n, base, 8);
    if (n > ST_MAX_HEADER) {
        *err = "header length " + std::to_string(n) + " exceeds the 100000000-byte limit (not a safetensors file?)";
        return false;
    }
    if (n > size - 8) {
        *err = "header length " + std::to_string(n) + " goes beyond the end of the file (" + std::to_string(size) +
               " bytes): truncated";
        return false;
    }
    const char * hb = reinterpret_cast<const char *>(base + 8);
    if (n == 0 || hb[0] != '{') {
        *err = "header is not a JSON object (it must start with '{')";
        return false;
    }
    // Duplicate top-level names would silently shadow each other in a JSON object: catch them while parsing.
    std::string dup;
    std::set<std::string> seen;
    json::parser_callback_t cb = [&dup, &seen](int depth, json::parse_event_t ev, json & parsed) {
        if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
            const std::string & k = parsed.get_ref<const std::string &>();
            if (!seen.insert(k).second && dup.empty()) dup = k;
        }
        return true;
    };
    json h;
    try {
        h = json::parse(hb, hb + n, cb);
    } catch (const std::exception & e) {
        *err = std::string("header JSON does not parse: ") + e.what();
        return false;
    }
    if (!dup.empty()) {
        *err = "duplicate tensor name '" + dup + "' in the header";
        return false;
    }
    if (!h.is_object()) {
        *err = "header is not a JSON object";
        return false;
    }
    const size_t data_start = 8 + static_cast<size_t>(n);
    const size_t data_size = size - data_start;
    struct range {
        uint64_t b, e;
        size_t i;
    };
    std::vector<range> ranges;
    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string & name = it.key();
        const json & v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) {
                *err = "__metadata__ is not an object";
                return false;
            }
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) {
                    *err = "__metadata__ value of '" + m.key() + "' is not a string";
                    return false;
                }
                metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string who = "tensor '" + name + "': ";
        if (!v.is_object()) {
            *err = who + "entry is not an object";
            return false;
        }
        auto jd = v.find("dtype");
        auto js = v.find("shape");
        auto jo = v.find("data_offsets");
        if (jd == v.end() || !jd->is_string()) {
            *err = who + "missing or non-string \"dtype\"";
            return false;
        }
        st_tensor t;
        t.name = name;
        if (!parse_dtype(jd->get<std::string>(), &t.dtype)) {
            *err = who + "unsupported dtype \"" + jd->get<std::string>() + "\"";
            return false;
        }
        if (js == v.end() || !js->is_array()) {
            *err = who + "missing or non-array \"shape\"";
            return false;
        }
        uint64_t nel = 1;
        for (const json & d : *js) {
            if (!d.is_number_unsigned()) {
                *err = who + "shape entry " + d.dump() + " is not a non-negative integer";
                return false;
            }
            const uint64_t x = d.get<uint64_t>();
            if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                (x != 0 && nel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / x)) {
                *err = who + "shape " + js->dump() + " overflows";
                return false;
            }
            nel *= x;
            t.shape.push_back(static_cast<int64_t>(x));
        }
        if (jo == v.end() || !jo->is_array() || jo->size() != 2 || !(*jo)[0].is_number_unsigned() ||
            !(*jo)[1].is_number_unsigned()) {
            *err = who + "\"data_offsets\" must be [begin, end] with non-negative integers";
            return false;
        }
        const uint64_t b = (*jo)[0].get<uint64_t>(), e = (*jo)[1].get<uint64_t>();
        if (b > e) {
            *err = who + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] has begin > end";
            return false;
        }
        if (e > data_size) {
            *err = who + "data_offsets end " + std::to_string(e) + " is beyond the data section (" +
                   std::to_string(data_size) + " bytes): truncated file";
            return false;
        }
        const uint64_t es = st_dtype_size(t.dtype);
        if (nel > std::numeric_limits<uint64_t>::max() / es || nel * es != e - b) {
            *err = who + "data_offsets span " + std::to_string(e - b) + " bytes but dtype " + st_dtype_name(t.dtype) +
                   " x shape " + js->dump() + " needs " + std::to_string(nel) + " x " + std::to_string(es);
            return false;
        }
        t.data = base + data_start + b;
        t.nbytes = static_cast<size_t>(e - b);
        ranges.push_back({b, e, tensors.size()});
        index.emplace(name, tensors.size());
        tensors.push_back(std::move(t));
    }
    // Offsets must tile the blob: sorted by begin, each tensor starts where the previous one ended.
    std::sort(ranges.begin(), ranges.end(),
              [](const range & x, const range & y) { return x.b != y.b ? x.b < y.b : x.e < y.e; });
    uint64_t pos = 0;
    for (size_t k = 0; k < ranges.size(); ++k) {
        const range & r = ranges[k];
        if (r.b < pos) {
            *err = "tensor '" + tensors[r.i].name + "' data [" + std::to_string(r.b) + ", " + std::to_string(r.e) +
                   ") overlaps tensor '" + tensors[ranges[k - 1].i].name + "'";
            return false;
        }
        if (r.b > pos) {
            *err = "gap in the data section: bytes [" + std::to_string(pos) + ", " + std::to_string(r.b) +
                   ") before tensor '" + tensors[r.i].name + "' belong to no tensor";
            return false;
        }
        pos = r.e;
    }
    if (pos != data_size) {
        *err = "data section is " + std::to_string(data_size) + " bytes but the tensors cover " + std::to_string(pos) +
               " (trailing bytes)";
        return false;
    }
    return true;
}

safetensors_file::safetensors_file() : p_(new impl) {}
safetensors_file::~safetensors_file() = default;

std::unique_ptr<safetensors_file> safetensors_file::open(const std::string & path, std::string * err) {
    std::string local;
    if (!err) err = &local;
    std::unique_ptr<safetensors_file> f(new safetensors_file);
    if (!f->p_->map.open(path, err)) return nullptr;
    static const uint8_t empty = 0;
    f->p_->base = f->p_->map.addr ? static_cast<const uint8_t *>(f->p_->map.addr) : &empty;
    f->p_->size = f->p_->map.size;
    if (!f->p_->parse(err)) {
        *err = "safetensors '" + path + "': " + *err;
        return nullptr;
    }
    return f;
}

std::unique_ptr<safetensors_file> safetensors_file::open_buffer(const void * data, size_t size, std::string * err) {
    std::string local;
    if (!err) err = &local;
    static const uint8_t empty = 0;
    std::unique_ptr<safetensors_file> f(new safetensors_file);
    f->p_->base = data ? static_cast<const uint8_t *>(data) : &empty;
    f->p_->size = data ? size : 0;
    if (!f->p_->parse(err)) {
        *err = "safetensors: " + *err;
        return nullptr;
    }
    return f;
}

const std::vector<st_tensor> & safetensors_file::tensors() const {
    return p_->tensors;
}
const st_tensor * safetensors_file::find(const std::string & name) const {
    auto it = p_->index.find(name);
    return it == p_->index.end() ? nullptr : &p_->tensors[it->second];
}
const std::map<std::string, std::string> & safetensors_file::metadata() const {
    return p_->metadata;
}

// ---------------------------------------------------------------------------------------------------------------

struct safetensors_model::impl {
    std::vector<std::unique_ptr<safetensors_file>> shards;
    std::vector<st_tensor> tensors;
    std::unordered_map<std::string, size_t> index;
};

safetensors_model::safetensors_model() : p_(new impl) {}
safetensors_model::~safetensors_model() = default;

static bool is_dir(const std::string & p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
static bool exists(const std::string & p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}
static bool ends_with(const std::string & s, const std::string & suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::unique_ptr<safetensors_model> safetensors_model::open(const std::string & path_in, std::string * err) {
    std::string local;
    if (!err) err = &local;
    std::string path = path_in;
    if (is_dir(path)) {
        if (exists(path + "/model.safetensors.index.json")) {
            path += "/model.safetensors.index.json";
        } else if (exists(path + "/model.safetensors")) {
            path += "/model.safetensors";
        } else {
            *err =
                "safetensors: directory '" + path + "' has neither model.safetensors nor model.safetensors.index.json";
            return nullptr;
        }
    }
    std::unique_ptr<safetensors_model> m(new safetensors_model);
    // shard file path -> tensor names the index puts there (empty for a single file)
    std::vector<std::pair<std::string, std::vector<std::string>>> shard_files;
    if (ends_with(path, ".json")) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            *err = "safetensors: cannot open index '" + path + "': " + std::strerror(errno);
            return nullptr;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        json idx;
        try {
            idx = json::parse(ss.str());
        } catch (const std::exception & e) {
            *err = "safetensors index '" + path + "': JSON does not parse: " + e.what();
            return nullptr;
        }
        if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
            *err = "safetensors index '" + path + "': no \"weight_map\" object";
            return nullptr;
        }
        const std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
        std::map<std::string, size_t> shard_pos;
        for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
            if (!it.value().is_string()) {
                *err = "safetensors index '" + path + "': weight_map entry '" + it.key() + "' is not a file name";
                return nullptr;
            }
            const std::string file = it.value().get<std::string>();
            // Shards must sit next to the index: refuse paths that could point elsewhere.
            if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
                *err = "safetensors index '" + path + "': shard name '" + file + "' for tensor '" + it.key() +
                       "' must be a plain file name in the same directory";
                return nullptr;
            }
            auto sp = shard_pos.find(file);
            if (sp == shard_pos.end()) {
                sp = shard_pos.emplace(file, shard_files.size()).first;
                shard_files.push_back({dir + "/" + file, {}});
            }
            shard_files[sp->second].second.push_back(it.key());
        }
        if (shard_files.empty()) {
            *err = "safetensors index '" + path + "': weight_map is empty";
            return nullptr;
        }
        // Shard order = file name order (model-00001-of-N first), whatever the map order.
        std::sort(shard_files.begin(), shard_files.end());
    } else {
        shard_files.push_back({path, {}});
    }
    for (size_t s = 0; s < shard_files.size(); ++s) {
        auto f = safetensors_file::open(shard_files[s].first, err);
        if (!f) return nullptr;
        for (const std::string & want : shard_files[s].second) {
            if (!f->find(want)) {
                *err = "safetensors: the index puts tensor '" + want + "' in '" + shard_files[s].first +
                       "' but that file does not contain it";
                return nullptr;
            }
        }
        for (st_tensor t : f->tensors()) {
            if (m->p_->index.count(t.name)) {
                *err = "safetensors: tensor '" + t.name + "' appears in more than one shard (again in '" +
                       shard_files[s].first + "')";
                return nullptr;
            }
            t.shard = static_cast<int>(s);
            m->p_->index.emplace(t.name, m->p_->tensors.size());
            m->p_->tensors.push_back(std::move(t));
        }
        m->p_->shards.push_back(std::move(f));
    }
    return m;
}

const std::vector<st_tensor> & safetensors_model::tensors() const {
    return p_->tensors;
}
const st_tensor * safetensors_model::find(const std::string & name) const {
    auto it = p_->index.find(name);
    return it == p_->index.end() ? nullptr : &p_->tensors[it->second];
}
size_t safetensors_model::n_shards() const {
    return p_->shards.size();
}

bool safetensors_model::read_f32(const st_tensor & t, float * out, std::string * err) {
    const size_t n = static_cast<size_t>(t.nelements());
    if (!t.data && n) {
        if (err) *err = "safetensors: tensor '" + t.name + "' has no data";
        return false;
    }
    const uint8_t * p = t.data;
    for (size_t i = 0; i < n; ++i) {
        switch (t.dtype) {
            case ST_F32:
                std::memcpy(&out[i], p + 4 * i, 4);
                break;
            case ST_F64: {
                double d;
                std::memcpy(&d, p + 8 * i, 8);
                out[i] = static_cast<float>(d);
                break;
            }
            case ST_F16:
            case ST_BF16: {
                uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                out[i] = t.dtype == ST_F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
                break;
            }
            case ST_I64: {
                int64_t x;
                std::memcpy(&x, p + 8 * i, 8);
                out[i] = static_cast<float>(x);
                break;
            }
            case ST_I32: {
                int32_t x;
                std::memcpy(&x, p + 4 * i, 4);
                out[i] = static_cast<float>(x);
                break;
            }
            case ST_I16: {
                int16_t x;
                std::memcpy(&x, p + 2 * i, 2);
                out[i] = static_cast<float>(x);
                break;
            }
            case ST_I8:
                out[i] = static_cast<float>(static_cast<int8_t>(p[i]));
                break;
            case ST_U8:
                out[i] = static_cast<float>(p[i]);
                break;
            case ST_BOOL:
                out[i] = p[i] ? 1.0f : 0.0f;
                break;
        }
    }
    return true;
}

}  // namespace spider

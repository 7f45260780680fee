// Audio codec: WAV (and anything else libsndfile reads) through libsndfile. Writing produces 16-bit PCM WAV with
// an INFO chunk (title / software / comment) that carries the provenance pairs; decoding from memory goes through
// libsndfile's virtual I/O so the fuzzer and the validator can read buffers without touching the disk.
#include <sndfile.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "io/media.h"

namespace spider {

static void set_err(std::string * err, const std::string & msg) {
    if (err) *err = msg;
}

struct sf_mem {
    const uint8_t * data;
    sf_count_t size, pos;
};

static sf_count_t mem_get_filelen(void * u) {
    return ((sf_mem *)u)->size;
}
static sf_count_t mem_seek(sf_count_t off, int whence, void * u) {
    auto * m = (sf_mem *)u;
    sf_count_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->size + off;
    if (p < 0 || p > m->size) return -1;
    m->pos = p;
    return p;
}
static sf_count_t mem_read(void * ptr, sf_count_t n, void * u) {
    auto * m = (sf_mem *)u;
    if (n < 0) return 0;
    sf_count_t k = m->size - m->pos < n ? m->size - m->pos : n;
    std::memcpy(ptr, m->data + m->pos, (size_t)k);
    m->pos += k;
    return k;
}
static sf_count_t mem_write(const void *, sf_count_t, void *) {
    return 0;
}
static sf_count_t mem_tell(void * u) {
    return ((sf_mem *)u)->pos;
}

// Reads every frame of an open handle into `out`, validating the header numbers first.
static bool read_all_frames(SNDFILE * f, const SF_INFO & info, audio_f32 * out, std::string * err) {
    if (info.channels <= 0 || info.channels > MEDIA_MAX_CHANNELS) {
        set_err(err, "audio: bad channel count " + std::to_string(info.channels));
        return false;
    }
    if (info.samplerate <= 0 || info.samplerate > 768000) {
        set_err(err, "audio: bad sample rate " + std::to_string(info.samplerate));
        return false;
    }
    if (info.frames < 0 || info.frames * info.channels > MEDIA_MAX_SAMPLES) {
        set_err(err, "audio: bad or too large frame count " + std::to_string((long long)info.frames));
        return false;
    }
    out->sample_rate = info.samplerate;
    out->channels = info.channels;
    out->samples.assign((size_t)(info.frames * info.channels), 0.0f);
    sf_count_t got = info.frames > 0 ? sf_readf_float(f, out->samples.data(), info.frames) : 0;
    if (got != info.frames) {
        set_err(err, "audio: truncated data (header says " + std::to_string((long long)info.frames) + " frames, read " +
                         std::to_string((long long)got) + ")");
        out->samples.clear();
        return false;
    }
    if (sf_error(f) != SF_ERR_NO_ERROR) {
        set_err(err, std::string("audio: ") + sf_strerror(f));
        out->samples.clear();
        return false;
    }
    for (float & s : out->samples) {
        if (!std::isfinite(s)) {
            set_err(err, "audio: non-finite sample values");
            out->samples.clear();
            return false;
        }
    }
    return true;
}

static uint32_t rd_le32(const uint8_t * p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

// libsndfile quietly shortens a WAV whose data was cut off, so a truncated file is found from the RIFF structure:
// the RIFF size and every chunk must fit in the data. Streaming writers put 0 or 0xFFFFFFFF in sizes they could not
// patch; those are accepted.
static bool wav_truncated(const uint8_t * d, size_t n, std::string * why) {
    if (n < 12 || std::memcmp(d, "RIFF", 4) || std::memcmp(d + 8, "WAVE", 4)) return false;
    uint32_t riff = rd_le32(d + 4);
    if (riff != 0 && riff != 0xFFFFFFFFu && (uint64_t)riff + 8 > n) {
        *why = "RIFF size " + std::to_string(riff + 8ull) + " exceeds the " + std::to_string(n) + " bytes present";
        return true;
    }
    size_t pos = 12;
    bool have_data = false;
    while (pos + 8 <= n) {
        uint32_t csz = rd_le32(d + pos + 4);
        bool is_data = !std::memcmp(d + pos, "data", 4);
        if (is_data) have_data = true;
        if (is_data && (csz == 0 || csz == 0xFFFFFFFFu)) break;
        if ((uint64_t)csz > n - pos - 8) {
            *why = "chunk '" + std::string((const char *)d + pos, 4) + "' extends past the end of data";
            return true;
        }
        pos += 8 + csz + (csz & 1);
    }
    if (!have_data) {
        *why = "no data chunk";
        return true;
    }
    return false;
}

bool audio_decode(const uint8_t * data, size_t size, audio_f32 * out, std::string * err) {
    if (size == 0) {
        set_err(err, "audio: empty data");
        return false;
    }
    std::string why;
    if (wav_truncated(data, size, &why)) {
        set_err(err, "audio: truncated or malformed WAV (" + why + ")");
        return false;
    }
    sf_mem m{data, (sf_count_t)size, 0};
    SF_VIRTUAL_IO vio{mem_get_filelen, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info;
    std::memset(&info, 0, sizeof(info));
    SNDFILE * f = sf_open_virtual(&vio, SFM_READ, &info, &m);
    if (!f) {
        set_err(err, std::string("audio: cannot decode: ") + sf_strerror(nullptr));
        return false;
    }
    bool ok = read_all_frames(f, info, out, err);
    sf_close(f);
    return ok;
}

bool audio_read(const std::string & path, audio_f32 * out, std::string * err) {
    std::vector<uint8_t> data;
    if (!file_read_all(path, &data, err)) return false;
    std::string e;
    if (!audio_decode(data.data(), data.size(), out, &e)) {
        set_err(err, "'" + path + "': " + e);
        return false;
    }
    return true;
}

bool audio_write_wav(const std::string & path, const audio_f32 & a, const media_metadata & meta, std::string * err) {
    if (a.channels <= 0 || a.channels > MEDIA_MAX_CHANNELS) {
        set_err(err, "wav write '" + path + "': bad channel count " + std::to_string(a.channels));
        return false;
    }
    if (a.sample_rate <= 0 || a.sample_rate > 768000) {
        set_err(err, "wav write '" + path + "': bad sample rate " + std::to_string(a.sample_rate));
        return false;
    }
    if (a.samples.size() % a.channels != 0) {
        set_err(err, "wav write '" + path + "': sample count is not a multiple of the channel count");
        return false;
    }
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    SF_INFO info;
    std::memset(&info, 0, sizeof(info));
    info.samplerate = a.sample_rate;
    info.channels = a.channels;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE * f = sf_open(tmp.c_str(), SFM_WRITE, &info);
    if (!f) {
        set_err(err, "wav write '" + path + "': " + sf_strerror(nullptr));
        return false;
    }
    // Clip instead of letting libsndfile wrap out-of-range floats.
    sf_command(f, SFC_SET_CLIPPING, nullptr, SF_TRUE);
    std::string comment, title;
    for (const auto & kv : meta) {
        if (kv.first == "title")
            title = kv.second;
        else
            comment += kv.first + "=" + kv.second + "\n";
    }
    if (!title.empty()) sf_set_string(f, SF_STR_TITLE, title.c_str());
    sf_set_string(f, SF_STR_SOFTWARE, "spider");
    if (!comment.empty()) sf_set_string(f, SF_STR_COMMENT, comment.c_str());
    sf_count_t frames = (sf_count_t)(a.samples.size() / a.channels);
    sf_count_t put = frames > 0 ? sf_writef_float(f, a.samples.data(), frames) : 0;
    int rc = sf_close(f);
    if (put != frames || rc != 0) {
        set_err(err, "wav write '" + path + "': short write");
        std::remove(tmp.c_str());
        return false;
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        set_err(err, "wav write '" + path + "': rename failed: " + std::strerror(errno));
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

bool audio_read_metadata(const std::string & path, media_metadata * out, std::string * err) {
    SF_INFO info;
    std::memset(&info, 0, sizeof(info));
    SNDFILE * f = sf_open(path.c_str(), SFM_READ, &info);
    if (!f) {
        set_err(err, "'" + path + "': " + sf_strerror(nullptr));
        return false;
    }
    out->clear();
    static const struct {
        int id;
        const char * name;
    } keys[] = {{SF_STR_TITLE, "title"},   {SF_STR_COPYRIGHT, "copyright"}, {SF_STR_SOFTWARE, "software"},
                {SF_STR_ARTIST, "artist"}, {SF_STR_COMMENT, "comment"},     {SF_STR_DATE, "date"}};
    for (const auto & k : keys) {
        const char * s = sf_get_string(f, k.id);
        if (s) out->emplace_back(k.name, s);
    }
    sf_close(f);
    return true;
}

}  // namespace spider

// Video codec: writes MP4/H.264 (libx264, yuv420p, faststart) or WebM/VP9 (libvpx-vp9) through libavformat /
// libavcodec / libswscale, and reads any container libavformat knows back into RGB frames, from a file or from a
// memory buffer (custom AVIOContext). Encoders run single-threaded with bitexact flags so that the same frames
// give byte-identical files (datasets must be reproducible).
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "io/media.h"

namespace spider {

static void set_err(std::string * err, const std::string & msg) {
    if (err) *err = msg;
}

static std::string av_err(int rc) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(rc, buf, sizeof(buf));
    return buf;
}

static void quiet_libav() {
    static std::once_flag once;
    std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

static std::string lower_ext(const std::string & path) {
    size_t dot = path.find_last_of('.');
    if (dot == std::string::npos) return "";
    std::string e = path.substr(dot + 1);
    for (char & c : e) c = (char)std::tolower((unsigned char)c);
    return e;
}

// ---- writing -------------------------------------------------------------------------------------------------

namespace {
struct writer_state {
    AVFormatContext * fmt = nullptr;
    AVCodecContext * enc = nullptr;
    AVFrame * frame = nullptr;
    AVPacket * pkt = nullptr;
    SwsContext * sws = nullptr;
    bool io_open = false;
    ~writer_state() {
        if (sws) sws_freeContext(sws);
        av_packet_free(&pkt);
        av_frame_free(&frame);
        avcodec_free_context(&enc);
        if (fmt) {
            if (io_open) avio_closep(&fmt->pb);
            avformat_free_context(fmt);
        }
    }
};
}  // namespace

static int drain_packets(writer_state & s, AVStream * st) {
    for (;;) {
        int rc = avcodec_receive_packet(s.enc, s.pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) return rc;
        av_packet_rescale_ts(s.pkt, s.enc->time_base, st->time_base);
        s.pkt->stream_index = st->index;
        rc = av_interleaved_write_frame(s.fmt, s.pkt);
        if (rc < 0) return rc;
    }
}

bool video_write(const std::string & path, const video_u8 & v, const media_metadata & meta, std::string * err) {
    quiet_libav();
    std::string ext = lower_ext(path);
    const char * what = "video write";
    auto fail = [&](const std::string & m) {
        set_err(err, std::string(what) + " '" + path + "': " + m);
        return false;
    };
    if (ext != "mp4" && ext != "webm") return fail("extension must be .mp4 (H.264) or .webm (VP9)");
    if (v.frames.empty()) return fail("no frames");
    if (v.width <= 0 || v.height <= 0 || v.width > MEDIA_MAX_DIM || v.height > MEDIA_MAX_DIM)
        return fail("bad size " + std::to_string(v.width) + "x" + std::to_string(v.height));
    if (v.width % 2 || v.height % 2) return fail("width and height must be even (yuv420p)");
    if (!(v.fps > 0 && v.fps <= 240)) return fail("fps must be in (0, 240]");
    for (size_t i = 0; i < v.frames.size(); ++i) {
        const image_u8 & f = v.frames[i];
        if (f.width != v.width || f.height != v.height || f.channels != 3 ||
            f.pixels.size() != (size_t)v.width * v.height * 3)
            return fail("frame " + std::to_string(i) + " is not an RGB image of the video size");
    }
    const char * codec_name = ext == "mp4" ? "libx264" : "libvpx-vp9";
    const AVCodec * codec = avcodec_find_encoder_by_name(codec_name);
    if (!codec) return fail(std::string("encoder ") + codec_name + " is not available in this libavcodec");

    writer_state s;
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int rc = avformat_alloc_output_context2(&s.fmt, nullptr, ext == "mp4" ? "mp4" : "webm", tmp.c_str());
    if (rc < 0 || !s.fmt) return fail("cannot create container: " + av_err(rc));
    s.fmt->flags |= AVFMT_FLAG_BITEXACT;
    AVStream * st = avformat_new_stream(s.fmt, nullptr);
    s.enc = avcodec_alloc_context3(codec);
    if (!st || !s.enc) return fail("out of memory");
    // fps as a rational with millisecond precision (8 fps -> 8/1, 29.97 -> 29970/1000 reduced).
    AVRational fr = av_d2q(v.fps, 100000);
    s.enc->width = v.width;
    s.enc->height = v.height;
    s.enc->pix_fmt = AV_PIX_FMT_YUV420P;
    s.enc->time_base = av_inv_q(fr);
    s.enc->framerate = fr;
    s.enc->gop_size = 32;
    s.enc->thread_count = 1;
    s.enc->flags |= AV_CODEC_FLAG_BITEXACT;
    if (s.fmt->oformat->flags & AVFMT_GLOBALHEADER) s.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (ext == "mp4") {
        av_opt_set(s.enc->priv_data, "preset", "fast", 0);
        av_opt_set(s.enc->priv_data, "crf", "18", 0);
        av_opt_set(s.enc->priv_data, "x264-params", "mbtree=0:rc-lookahead=0", 0);
    } else {
        s.enc->bit_rate = 0;
        av_opt_set(s.enc->priv_data, "crf", "24", 0);
        av_opt_set(s.enc->priv_data, "deadline", "good", 0);
        av_opt_set(s.enc->priv_data, "cpu-used", "5", 0);
        av_opt_set(s.enc->priv_data, "row-mt", "0", 0);
    }
    rc = avcodec_open2(s.enc, codec, nullptr);
    if (rc < 0) return fail("cannot open encoder: " + av_err(rc));
    rc = avcodec_parameters_from_context(st->codecpar, s.enc);
    if (rc < 0) return fail("codec parameters: " + av_err(rc));
    st->time_base = s.enc->time_base;
    st->avg_frame_rate = fr;
    for (const auto & kv : meta) av_dict_set(&s.fmt->metadata, kv.first.c_str(), kv.second.c_str(), 0);

    rc = avio_open(&s.fmt->pb, tmp.c_str(), AVIO_FLAG_WRITE);
    if (rc < 0) return fail("cannot create '" + tmp + "': " + av_err(rc));
    s.io_open = true;
    AVDictionary * mux_opts = nullptr;
    if (ext == "mp4") av_dict_set(&mux_opts, "movflags", "+faststart", 0);
    rc = avformat_write_header(s.fmt, &mux_opts);
    av_dict_free(&mux_opts);
    auto fail_rm = [&](const std::string & m) {
        if (s.io_open) avio_closep(&s.fmt->pb);
        s.io_open = false;
        std::remove(tmp.c_str());
        return fail(m);
    };
    if (rc < 0) return fail_rm("cannot write header: " + av_err(rc));

    s.frame = av_frame_alloc();
    s.pkt = av_packet_alloc();
    if (!s.frame || !s.pkt) return fail_rm("out of memory");
    s.frame->format = AV_PIX_FMT_YUV420P;
    s.frame->width = v.width;
    s.frame->height = v.height;
    rc = av_frame_get_buffer(s.frame, 0);
    if (rc < 0) return fail_rm("frame buffer: " + av_err(rc));
    s.sws = sws_getContext(v.width, v.height, AV_PIX_FMT_RGB24, v.width, v.height, AV_PIX_FMT_YUV420P,
                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT, nullptr, nullptr, nullptr);
    if (!s.sws) return fail_rm("cannot create colour converter");
    for (size_t i = 0; i < v.frames.size(); ++i) {
        rc = av_frame_make_writable(s.frame);
        if (rc < 0) return fail_rm("frame not writable: " + av_err(rc));
        const uint8_t * src[1] = {v.frames[i].pixels.data()};
        int src_stride[1] = {v.width * 3};
        sws_scale(s.sws, src, src_stride, 0, v.height, s.frame->data, s.frame->linesize);
        s.frame->pts = (int64_t)i;
        rc = avcodec_send_frame(s.enc, s.frame);
        if (rc < 0) return fail_rm("encode: " + av_err(rc));
        rc = drain_packets(s, st);
        if (rc < 0) return fail_rm("mux: " + av_err(rc));
    }
    rc = avcodec_send_frame(s.enc, nullptr);
    if (rc < 0) return fail_rm("flush: " + av_err(rc));
    rc = drain_packets(s, st);
    if (rc < 0) return fail_rm("mux: " + av_err(rc));
    rc = av_write_trailer(s.fmt);
    if (rc < 0) return fail_rm("trailer: " + av_err(rc));
    avio_closep(&s.fmt->pb);
    s.io_open = false;
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        return fail(std::string("rename failed: ") + std::strerror(errno));
    }
    return true;
}

// ---- reading -------------------------------------------------------------------------------------------------

namespace {
struct mem_io {
    const uint8_t * data;
    int64_t size, pos;
};

int mem_read_packet(void * opaque, uint8_t * buf, int n) {
    auto * m = (mem_io *)opaque;
    int64_t left = m->size - m->pos;
    if (left <= 0) return AVERROR_EOF;
    int k = (int)(left < n ? left : n);
    std::memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return k;
}

int64_t mem_seek(void * opaque, int64_t off, int whence) {
    auto * m = (mem_io *)opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return m->size;
    int64_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : whence == SEEK_END ? m->size + off : -1;
    if (p < 0 || p > m->size) return AVERROR(EINVAL);
    m->pos = p;
    return p;
}

struct reader_state {
    AVFormatContext * fmt = nullptr;
    AVIOContext * avio = nullptr;
    AVCodecContext * dec = nullptr;
    AVFrame * frame = nullptr;
    AVPacket * pkt = nullptr;
    SwsContext * sws = nullptr;
    ~reader_state() {
        if (sws) sws_freeContext(sws);
        av_packet_free(&pkt);
        av_frame_free(&frame);
        avcodec_free_context(&dec);
        avformat_close_input(&fmt);
        if (avio) {
            av_freep(&avio->buffer);
            avio_context_free(&avio);
        }
    }
};
}  // namespace

// Converts one decoded frame to RGB and appends it; validates the frame's size against the first frame's.
static bool append_rgb(reader_state & s, video_u8 * out, std::string * err) {
    AVFrame * f = s.frame;
    if (f->width <= 0 || f->height <= 0 || f->width > MEDIA_MAX_DIM || f->height > MEDIA_MAX_DIM ||
        (int64_t)f->width * f->height > MEDIA_MAX_PIXELS) {
        set_err(err, "video: bad frame size " + std::to_string(f->width) + "x" + std::to_string(f->height));
        return false;
    }
    if (out->frames.empty()) {
        out->width = f->width;
        out->height = f->height;
    } else if (f->width != out->width || f->height != out->height) {
        set_err(err, "video: frame size changes mid-stream");
        return false;
    }
    int64_t frame_bytes = (int64_t)f->width * f->height * 3;
    if ((int64_t)(out->frames.size() + 1) * frame_bytes > MEDIA_MAX_VIDEO_BYTES) {
        set_err(err, "video: decoded size exceeds the limit");
        return false;
    }
    s.sws = sws_getCachedContext(s.sws, f->width, f->height, (AVPixelFormat)f->format, f->width, f->height,
                                 AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
    if (!s.sws) {
        set_err(err, "video: cannot convert pixel format to RGB");
        return false;
    }
    image_u8 img;
    img.width = f->width;
    img.height = f->height;
    img.channels = 3;
    img.pixels.assign((size_t)frame_bytes, 0);
    uint8_t * dst[1] = {img.pixels.data()};
    int dst_stride[1] = {f->width * 3};
    sws_scale(s.sws, f->data, f->linesize, 0, f->height, dst, dst_stride);
    out->frames.push_back(std::move(img));
    return true;
}

static bool decode_stream(reader_state & s, video_u8 * out, std::string * err) {
    int rc = avformat_find_stream_info(s.fmt, nullptr);
    if (rc < 0) {
        set_err(err, "video: cannot read stream info: " + av_err(rc));
        return false;
    }
    const AVCodec * codec = nullptr;
    int si = av_find_best_stream(s.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (si < 0 || !codec) {
        set_err(err, "video: no decodable video stream");
        return false;
    }
    AVStream * st = s.fmt->streams[si];
    s.dec = avcodec_alloc_context3(codec);
    if (!s.dec) {
        set_err(err, "video: out of memory");
        return false;
    }
    rc = avcodec_parameters_to_context(s.dec, st->codecpar);
    if (rc < 0) {
        set_err(err, "video: bad codec parameters: " + av_err(rc));
        return false;
    }
    s.dec->thread_count = 1;
    rc = avcodec_open2(s.dec, codec, nullptr);
    if (rc < 0) {
        set_err(err, "video: cannot open decoder: " + av_err(rc));
        return false;
    }
    AVRational fr = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    out->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
    if (!(out->fps > 0 && out->fps <= 1000)) out->fps = 8.0;
    out->frames.clear();
    out->width = out->height = 0;
    s.frame = av_frame_alloc();
    s.pkt = av_packet_alloc();
    if (!s.frame || !s.pkt) {
        set_err(err, "video: out of memory");
        return false;
    }
    bool decode_error = false;
    std::string first_decode_error;
    auto receive_all = [&]() -> bool {
        for (;;) {
            int r = avcodec_receive_frame(s.dec, s.frame);
            if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return true;
            if (r < 0) {
                decode_error = true;
                if (first_decode_error.empty()) first_decode_error = av_err(r);
                return true;
            }
            bool ok = append_rgb(s, out, err);
            av_frame_unref(s.frame);
            if (!ok) return false;
        }
    };
    for (;;) {
        rc = av_read_frame(s.fmt, s.pkt);
        if (rc < 0) break;
        if (s.pkt->stream_index == si) {
            int r = avcodec_send_packet(s.dec, s.pkt);
            if (r < 0 && r != AVERROR(EAGAIN)) {
                decode_error = true;
                if (first_decode_error.empty()) first_decode_error = av_err(r);
            }
            if (!receive_all()) {
                av_packet_unref(s.pkt);
                return false;
            }
        }
        av_packet_unref(s.pkt);
    }
    bool read_error = rc < 0 && rc != AVERROR_EOF;
    avcodec_send_packet(s.dec, nullptr);
    if (!receive_all()) return false;
    if (out->frames.empty()) {
        set_err(err, "video: no frames could be decoded" +
                         (first_decode_error.empty() ? std::string() : " (" + first_decode_error + ")"));
        return false;
    }
    // Decoders conceal damage; a truncated container shows as a read error or packets that failed to decode.
    if (read_error || decode_error) {
        set_err(err, "video: corrupt or truncated stream (" + (read_error ? av_err(rc) : first_decode_error) + ")");
        return false;
    }
    return true;
}

// Reads an EBML variable-length integer; `keep_marker` keeps the length marker bit (element IDs keep it).
static bool ebml_vint(const uint8_t * d, size_t n, size_t * pos, bool keep_marker, uint64_t * v, bool * all_ones) {
    if (*pos >= n) return false;
    uint8_t b = d[*pos];
    int len = 1;
    while (len <= 8 && !(b & (0x80 >> (len - 1)))) ++len;
    if (len > 8 || *pos + len > n) return false;
    uint64_t x = keep_marker ? b : (b & (0xFF >> len));
    bool ones = (b & (0xFF >> len)) == (0xFF >> len);
    for (int i = 1; i < len; ++i) {
        x = (x << 8) | d[*pos + i];
        ones = ones && d[*pos + i] == 0xFF;
    }
    *pos += len;
    *v = x;
    if (all_ones) *all_ones = ones;
    return true;
}

// Decoders conceal missing data, and a file cut inside its trailing index still decodes every frame, so a cut is
// found from the container structure: every top-level MP4 box, and the Matroska EBML header and Segment, must fit
// in the data.
static bool container_truncated(const uint8_t * d, size_t n, std::string * why) {
    std::string kind = media_sniff(d, n);
    if (kind == "mp4") {
        size_t pos = 0;
        while (pos < n) {
            if (n - pos < 8) {
                *why = "partial MP4 box header at end of data";
                return true;
            }
            uint64_t sz =
                ((uint64_t)d[pos] << 24) | ((uint64_t)d[pos + 1] << 16) | ((uint64_t)d[pos + 2] << 8) | d[pos + 3];
            if (sz == 1) {
                if (n - pos < 16) {
                    *why = "partial MP4 box header at end of data";
                    return true;
                }
                sz = 0;
                for (int i = 0; i < 8; ++i) sz = (sz << 8) | d[pos + 8 + i];
            } else if (sz == 0) {
                sz = n - pos;  // box extends to the end of the file
            }
            if (sz < 8 || sz > n - pos) {
                *why = "MP4 box '" + std::string((const char *)d + pos + 4, 4) + "' extends past the end of data";
                return true;
            }
            pos += sz;
        }
        return false;
    }
    if (kind == "webm" || kind == "mkv") {
        size_t pos = 0;
        uint64_t id = 0, sz = 0;
        bool unknown = false;
        if (!ebml_vint(d, n, &pos, true, &id, nullptr) || !ebml_vint(d, n, &pos, false, &sz, nullptr) || sz > n - pos) {
            *why = "truncated EBML header";
            return true;
        }
        pos += sz;
        if (!ebml_vint(d, n, &pos, true, &id, nullptr) || id != 0x18538067 ||
            !ebml_vint(d, n, &pos, false, &sz, &unknown)) {
            *why = "missing or truncated Matroska Segment";
            return true;
        }
        if (!unknown && sz > n - pos) {
            *why = "Matroska Segment extends past the end of data";
            return true;
        }
    }
    return false;
}

bool video_decode(const uint8_t * data, size_t size, video_u8 * out, std::string * err) {
    quiet_libav();
    if (size == 0) {
        set_err(err, "video: empty data");
        return false;
    }
    std::string why;
    if (container_truncated(data, size, &why)) {
        set_err(err, "video: truncated file (" + why + ")");
        return false;
    }
    reader_state s;
    mem_io m{data, (int64_t)size, 0};
    const int buf_size = 1 << 16;
    auto * buf = (uint8_t *)av_malloc(buf_size);
    if (!buf) {
        set_err(err, "video: out of memory");
        return false;
    }
    s.avio = avio_alloc_context(buf, buf_size, 0, &m, mem_read_packet, nullptr, mem_seek);
    if (!s.avio) {
        av_free(buf);
        set_err(err, "video: out of memory");
        return false;
    }
    s.fmt = avformat_alloc_context();
    if (!s.fmt) {
        set_err(err, "video: out of memory");
        return false;
    }
    s.fmt->pb = s.avio;
    s.fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    // Only the containers we write (MP4/MOV family, Matroska/WebM): a hostile buffer must not reach playlist or
    // concat demuxers that would open other files.
    AVDictionary * opts = nullptr;
    av_dict_set(&opts, "format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm", 0);
    av_dict_set(&opts, "protocol_whitelist", "none", 0);
    int rc = avformat_open_input(&s.fmt, nullptr, nullptr, &opts);
    av_dict_free(&opts);
    if (rc < 0) {
        // avformat_open_input frees the context on failure.
        set_err(err, "video: unrecognised container: " + av_err(rc));
        return false;
    }
    return decode_stream(s, out, err);
}

bool video_read(const std::string & path, video_u8 * out, std::string * err) {
    std::vector<uint8_t> data;
    if (!file_read_all(path, &data, err)) return false;
    std::string e;
    if (!video_decode(data.data(), data.size(), out, &e)) {
        set_err(err, "'" + path + "': " + e);
        return false;
    }
    return true;
}

}  // namespace spider

// Image codecs: PNG through libpng (with tEXt provenance chunks) and JPEG through libjpeg, plus the small file
// helpers (whole-file read, atomic write, format sniffing) the other media codecs share. Both libraries report
// errors by longjmp; every decode runs inside its own setjmp frame and only touches memory owned outside it.
#include <cerrno>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// jpeglib.h needs size_t and FILE declared before it.
#include <jpeglib.h>
#include <png.h>
#include <unistd.h>

#include "io/media.h"

namespace spider {

static void set_err(std::string * err, const std::string & msg) {
    if (err) *err = msg;
}

bool file_read_all(const std::string & path, std::vector<uint8_t> * out, std::string * err) {
    FILE * f = std::fopen(path.c_str(), "rb");
    if (!f) {
        set_err(err, "cannot open '" + path + "': " + std::strerror(errno));
        return false;
    }
    out->clear();
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out->insert(out->end(), buf, buf + n);
    bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) {
        set_err(err, "read error on '" + path + "'");
        return false;
    }
    return true;
}

bool file_write_atomic(const std::string & path, const void * data, size_t size, std::string * err) {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    FILE * f = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        set_err(err, "cannot create '" + tmp + "': " + std::strerror(errno));
        return false;
    }
    bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        set_err(err, "cannot write '" + path + "': " + std::strerror(errno));
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

std::string media_sniff(const uint8_t * d, size_t n) {
    if (n >= 8 && !std::memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return "jpeg";
    if (n >= 12 && !std::memcmp(d, "RIFF", 4) && !std::memcmp(d + 8, "WAVE", 4)) return "wav";
    if (n >= 12 && !std::memcmp(d + 4, "ftyp", 4)) return "mp4";
    if (n >= 4 && !std::memcmp(d, "\x1a\x45\xdf\xa3", 4)) {
        // EBML header: the DocType string says webm or matroska.
        size_t lim = n < 64 ? n : 64;
        for (size_t i = 0; i + 4 <= lim; ++i)
            if (!std::memcmp(d + i, "webm", 4)) return "webm";
        return "mkv";
    }
    return "";
}

static bool check_dims(int w, int h, int c, std::string * err, const char * what) {
    if (w <= 0 || h <= 0 || w > MEDIA_MAX_DIM || h > MEDIA_MAX_DIM || (int64_t)w * h > MEDIA_MAX_PIXELS) {
        set_err(err, std::string(what) + ": bad image size " + std::to_string(w) + "x" + std::to_string(h));
        return false;
    }
    if (c != 1 && c != 3 && c != 4) {
        set_err(err, std::string(what) + ": unsupported channel count " + std::to_string(c));
        return false;
    }
    return true;
}

// ---- PNG -----------------------------------------------------------------------------------------------------

struct png_mem_reader {
    const uint8_t * data;
    size_t size, pos;
};

struct png_err_ctx {
    char msg[256] = {0};
};

static void png_error_fn(png_structp png, png_const_charp msg) {
    auto * ctx = (png_err_ctx *)png_get_error_ptr(png);
    if (ctx) std::snprintf(ctx->msg, sizeof(ctx->msg), "%s", msg);
    png_longjmp(png, 1);
}
static void png_warning_fn(png_structp, png_const_charp) {}

static void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
    auto * r = (png_mem_reader *)png_get_io_ptr(png);
    if (r->size - r->pos < n) png_error(png, "unexpected end of data (truncated file)");
    std::memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

// Walks the chunk list before libpng sees the data: a chunk whose length runs past the end of the buffer, or an
// ancillary chunk over 16 MiB, is refused here (libpng would allocate and clear a buffer of the declared length
// first: a 66-byte file claiming a 1.5 GB tEXt chunk took seconds).
static bool png_chunks_sane(const uint8_t * d, size_t n, std::string * err) {
    size_t pos = 8;
    while (pos < n) {
        if (n - pos < 12) {
            set_err(err, "png: truncated chunk header at byte " + std::to_string(pos));
            return false;
        }
        uint32_t len =
            ((uint32_t)d[pos] << 24) | ((uint32_t)d[pos + 1] << 16) | ((uint32_t)d[pos + 2] << 8) | d[pos + 3];
        std::string type((const char *)d + pos + 4, 4);
        if (len > 0x7FFFFFFFu || (type != "IDAT" && len > (16u << 20))) {
            set_err(err, "png: chunk '" + type + "' declares an implausible length " + std::to_string(len));
            return false;
        }
        if ((uint64_t)len + 12 > n - pos) {
            set_err(err, "png: chunk '" + type + "' runs past the end of the data (truncated file)");
            return false;
        }
        pos += (size_t)len + 12;
        if (type == "IEND") return true;
    }
    set_err(err, "png: no IEND chunk (truncated file)");
    return false;
}

static bool png_decode(const uint8_t * data, size_t size, image_u8 * out, media_metadata * text, std::string * err) {
    if (!png_chunks_sane(data, size, err)) return false;
    png_err_ctx ectx;
    png_mem_reader rd{data, size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, png_error_fn, png_warning_fn);
    if (!png) {
        set_err(err, "png: out of memory");
        return false;
    }
    png_infop info = png_create_info_struct(png);
    // Everything the jump can leave half-built lives outside this frame (out, rows); nothing here is modified
    // between setjmp and a longjmp except through pointers.
    std::vector<png_bytep> rows;
    if (!info || setjmp(png_jmpbuf(png))) {
        set_err(err, std::string("png: ") + (ectx.msg[0] ? ectx.msg : "decode failed"));
        png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
        out->pixels.clear();
        out->width = out->height = out->channels = 0;
        return false;
    }
    png_set_read_fn(png, &rd, png_read_fn);
    png_set_user_limits(png, MEDIA_MAX_DIM, MEDIA_MAX_DIM);
    png_set_chunk_malloc_max(png, 16 << 20);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, nullptr, nullptr);
    if (depth == 16) png_set_strip_16(png);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);  // no 2-channel images in our API
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (c == 2) c = 4;  // unreachable after gray_to_rgb, kept as a guard
    if (!check_dims((int)w, (int)h, c, err, "png")) {
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    if (png_get_rowbytes(png, info) != (size_t)w * c) png_error(png, "unexpected row layout");
    out->width = (int)w;
    out->height = (int)h;
    out->channels = c;
    out->pixels.assign((size_t)w * h * c, 0);
    rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = out->pixels.data() + (size_t)y * w * c;
    png_read_image(png, rows.data());
    png_read_end(png, info);
    if (text) {
        text->clear();
        png_textp t = nullptr;
        int nt = 0;
        png_get_text(png, info, &t, &nt);
        for (int i = 0; i < nt; ++i)
            text->emplace_back(t[i].key ? t[i].key : "", t[i].text ? std::string(t[i].text, t[i].text_length) : "");
    }
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
}

static void png_write_fn(png_structp png, png_bytep d, png_size_t n) {
    auto * v = (std::vector<uint8_t> *)png_get_io_ptr(png);
    v->insert(v->end(), d, d + n);
}
static void png_flush_fn(png_structp) {}

// Runs libpng's encoder; the setjmp frame holds only pointers, and every buffer is owned by the caller, so a
// longjmp skips no destructor.
static bool png_encode(const image_u8 & img, std::vector<png_text> * texts, std::vector<png_bytep> * rows,
                       std::vector<uint8_t> * buf, png_err_ctx * ectx) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ectx, png_error_fn, png_warning_fn);
    if (!png) return false;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : nullptr);
        return false;
    }
    png_set_write_fn(png, buf, png_write_fn, png_flush_fn);
    int ctype = img.channels == 1 ? PNG_COLOR_TYPE_GRAY : img.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
    png_set_IHDR(png, info, img.width, img.height, 8, ctype, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (!texts->empty()) png_set_text(png, info, texts->data(), (int)texts->size());
    png_write_info(png, info);
    png_write_image(png, rows->data());
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return true;
}

bool image_write_png(const std::string & path, const image_u8 & img, const media_metadata & meta, std::string * err) {
    if (!check_dims(img.width, img.height, img.channels, err, ("png write '" + path + "'").c_str())) return false;
    if (img.pixels.size() != (size_t)img.width * img.height * img.channels) {
        set_err(err, "png write '" + path + "': pixel buffer size does not match width*height*channels");
        return false;
    }
    std::vector<png_text> texts(meta.size());
    for (size_t i = 0; i < meta.size(); ++i) {
        const std::string & k = meta[i].first;
        if (k.empty() || k.size() > 79) {
            set_err(err, "png write '" + path + "': metadata key must be 1..79 bytes: '" + k + "'");
            return false;
        }
        std::memset(&texts[i], 0, sizeof(png_text));
        texts[i].compression = PNG_TEXT_COMPRESSION_NONE;
        texts[i].key = (png_charp)k.c_str();  // libpng copies key and text
        texts[i].text = (png_charp)meta[i].second.c_str();
        texts[i].text_length = meta[i].second.size();
    }
    std::vector<png_bytep> rows(img.height);
    for (int y = 0; y < img.height; ++y) rows[y] = (png_bytep)img.pixels.data() + (size_t)y * img.width * img.channels;
    std::vector<uint8_t> buf;
    png_err_ctx ectx;
    if (!png_encode(img, &texts, &rows, &buf, &ectx)) {
        set_err(err, "png write '" + path + "': " + (ectx.msg[0] ? ectx.msg : "encode failed"));
        return false;
    }
    return file_write_atomic(path, buf.data(), buf.size(), err);
}

bool image_read_png_text(const std::string & path, media_metadata * out, std::string * err) {
    std::vector<uint8_t> data;
    if (!file_read_all(path, &data, err)) return false;
    if (media_sniff(data.data(), data.size()) != "png") {
        set_err(err, "'" + path + "' is not a PNG file");
        return false;
    }
    image_u8 img;
    std::string e;
    if (!png_decode(data.data(), data.size(), &img, out, &e)) {
        set_err(err, "'" + path + "': " + e);
        return false;
    }
    return true;
}

// ---- JPEG ----------------------------------------------------------------------------------------------------

struct jpeg_err_mgr {
    jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_error_exit_fn(j_common_ptr cinfo) {
    auto * e = (jpeg_err_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}
static void jpeg_output_message_fn(j_common_ptr) {}  // silence warnings on stderr

static bool jpeg_decode(const uint8_t * data, size_t size, image_u8 * out, std::string * err) {
    jpeg_decompress_struct cinfo;
    jpeg_err_mgr jerr;
    std::memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_fn;
    jerr.pub.output_message = jpeg_output_message_fn;
    jerr.msg[0] = 0;
    if (setjmp(jerr.jb)) {
        set_err(err, std::string("jpeg: ") + jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        out->pixels.clear();
        out->width = out->height = out->channels = 0;
        return false;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
    // libjpeg allocates its buffers from the header's size; refuse absurd sizes before it does, and cap its pool.
    cinfo.mem->max_memory_to_use = 512l << 20;
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width > (JDIMENSION)MEDIA_MAX_DIM || cinfo.image_height > (JDIMENSION)MEDIA_MAX_DIM ||
        (int64_t)cinfo.image_width * cinfo.image_height > MEDIA_MAX_PIXELS) {
        set_err(err, "jpeg: image size " + std::to_string(cinfo.image_width) + "x" +
                         std::to_string(cinfo.image_height) + " exceeds the limit");
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    // Gray stays gray; everything else (YCbCr, CMYK via libjpeg's conversion where supported) becomes RGB.
    if (cinfo.jpeg_color_space != JCS_GRAYSCALE) cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, c = cinfo.output_components;
    if (!check_dims(w, h, c, err, "jpeg")) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    out->width = w;
    out->height = h;
    out->channels = c;
    out->pixels.assign((size_t)w * h * c, 0);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->pixels.data() + (size_t)cinfo.output_scanline * w * c;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    // A stream that ends early gets fake EOI markers from libjpeg (a warning); treat that as truncation.
    bool truncated = jerr.pub.num_warnings > 0;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (truncated) {
        set_err(err, "jpeg: corrupt or truncated data");
        out->pixels.clear();
        out->width = out->height = out->channels = 0;
        return false;
    }
    return true;
}

bool image_write_jpeg(const std::string & path, const image_u8 & img, int quality, std::string * err) {
    if (!check_dims(img.width, img.height, img.channels, err, ("jpeg write '" + path + "'").c_str())) return false;
    if (img.channels == 4) {
        set_err(err, "jpeg write '" + path + "': JPEG has no alpha channel; pass RGB or gray");
        return false;
    }
    if (img.pixels.size() != (size_t)img.width * img.height * img.channels) {
        set_err(err, "jpeg write '" + path + "': pixel buffer size does not match width*height*channels");
        return false;
    }
    if (quality < 1 || quality > 100) {
        set_err(err, "jpeg write '" + path + "': quality must be 1..100, got " + std::to_string(quality));
        return false;
    }
    jpeg_compress_struct cinfo;
    jpeg_err_mgr jerr;
    std::memset(&cinfo, 0, sizeof(cinfo));
    unsigned char * mem = nullptr;
    unsigned long mem_size = 0;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_fn;
    jerr.pub.output_message = jpeg_output_message_fn;
    if (setjmp(jerr.jb)) {
        set_err(err, "jpeg write '" + path + "': " + jerr.msg);
        jpeg_destroy_compress(&cinfo);
        std::free(mem);
        return false;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mem, &mem_size);
    cinfo.image_width = img.width;
    cinfo.image_height = img.height;
    cinfo.input_components = img.channels;
    cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)img.pixels.data() + (size_t)cinfo.next_scanline * img.width * img.channels;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    bool ok = file_write_atomic(path, mem, mem_size, err);
    std::free(mem);
    return ok;
}

// ---- dispatch ------------------------------------------------------------------------------------------------

bool image_decode(const uint8_t * data, size_t size, image_u8 * out, std::string * err) {
    std::string kind = media_sniff(data, size);
    if (kind == "png") return png_decode(data, size, out, nullptr, err);
    if (kind == "jpeg") return jpeg_decode(data, size, out, err);
    set_err(err, size == 0 ? "image: empty data" : "image: not a PNG or JPEG (unknown signature)");
    return false;
}

bool image_read(const std::string & path, image_u8 * out, std::string * err) {
    std::vector<uint8_t> data;
    if (!file_read_all(path, &data, err)) return false;
    std::string e;
    if (!image_decode(data.data(), data.size(), out, &e)) {
        set_err(err, "'" + path + "': " + e);
        return false;
    }
    return true;
}

}  // namespace spider

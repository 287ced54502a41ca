#include "tipperary/http1/content_coding.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>

namespace tipperary::http1 {
namespace {

// Output is produced in blocks of this size: the most a decoder holds besides zlib's window.
constexpr size_t kBlock = 16 * 1024;
// zlib's windowBits: +16 selects the gzip wrapper, a negative value a raw deflate stream.
constexpr int kGzipWrapper = 16;

// RFC 1950 §2.2: CM 8 (deflate), CINFO <= 7, and CMF*256 + FLG a multiple of 31. A raw deflate
// stream can start with these two bytes too, but then its first block would be a reserved or
// an unlikely one; this is the test browsers and curl make.
bool LooksLikeZlibHeader(std::string_view input) {
  if (input.size() < 2) return true;  // Too short for either: let zlib say what is wrong.
  const auto cmf = static_cast<unsigned char>(input[0]);
  const auto flg = static_cast<unsigned char>(input[1]);
  return (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
}

}  // namespace

std::string_view ContentCodingName(ContentCoding coding) {
  switch (coding) {
    case ContentCoding::kGzip:
      return "gzip";
    case ContentCoding::kDeflate:
      return "deflate";
    case ContentCoding::kIdentity:
      break;
  }
  return "identity";
}

struct Compressor::Stream {
  z_stream z{};
  ~Stream() { deflateEnd(&z); }
};

Compressor::Compressor(ContentCoding coding, int level, int window_bits, int mem_level) {
  if (coding == ContentCoding::kIdentity) return;
  auto stream = std::make_unique<Stream>();
  const int bits = coding == ContentCoding::kGzip ? window_bits + kGzipWrapper : window_bits;
  if (deflateInit2(&stream->z, level, Z_DEFLATED, bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    // deflateEnd on a stream whose init failed is harmless (it answers Z_STREAM_ERROR).
    return;
  }
  stream_ = std::move(stream);
}

Compressor::~Compressor() = default;

void Compressor::Write(std::string_view input, Flush flush, std::string* out) {
  if (!stream_ || finished_) return;
  z_stream& z = stream_->z;
  const int mode = flush == Flush::kFinish ? Z_FINISH
                   : flush == Flush::kSync ? Z_SYNC_FLUSH
                                           : Z_NO_FLUSH;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  // A body over 4 GiB is given in pieces zlib's 32-bit counters can take.
  size_t left = input.size();
  for (;;) {
    const size_t step = std::min<size_t>(left, std::numeric_limits<uInt>::max());
    z.avail_in = static_cast<uInt>(step);
    left -= step;
    const int piece_mode = left > 0 ? Z_NO_FLUSH : mode;
    int rc = Z_OK;
    do {
      const size_t old_size = out->size();
      // deflateBound-sized for small inputs, one block at a time for large ones.
      const size_t room =
          std::max<size_t>(kBlock, std::min<size_t>(deflateBound(&z, z.avail_in), 4 * kBlock));
      out->resize(old_size + room);
      z.next_out = reinterpret_cast<Bytef*>(out->data() + old_size);
      z.avail_out = static_cast<uInt>(room);
      rc = deflate(&z, piece_mode);
      out->resize(old_size + room - z.avail_out);
      // Z_BUF_ERROR only means "no progress possible": nothing left to flush.
    } while ((rc == Z_OK && z.avail_out == 0) || (piece_mode == Z_FINISH && rc == Z_OK));
    if (left == 0) break;
  }
  if (flush == Flush::kFinish) finished_ = true;
}

Decompressor::Decompressor(ContentCoding coding) : coding_(coding) {}
Decompressor::~Decompressor() = default;

Decompressor::Result Decompressor::Decode(
    std::string_view input, absl::FunctionRef<bool(std::string_view, uint64_t)> sink) {
  if (coding_ == ContentCoding::kIdentity) {
    return input.empty() || sink(input, input.size()) ? Result::kOk : Result::kStopped;
  }
  int bits = 15;
  if (coding_ == ContentCoding::kGzip) {
    bits += kGzipWrapper;
  } else if (!LooksLikeZlibHeader(input)) {
    bits = -15;  // A bare deflate stream, as some servers sent for "deflate".
  }
  struct Inflater {
    z_stream z{};
    bool live = false;
    ~Inflater() {
      if (live) inflateEnd(&z);
    }
  } inflater;
  z_stream& z = inflater.z;
  if (inflateInit2(&z, bits) != Z_OK) return Result::kNoMemory;
  inflater.live = true;

  std::array<char, kBlock> block;
  size_t offset = 0;  // Input given to zlib so far.
  for (;;) {
    const size_t step = std::min<size_t>(input.size() - offset, std::numeric_limits<uInt>::max());
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data() + offset));
    z.avail_in = static_cast<uInt>(step);
    int rc = Z_OK;
    do {
      z.next_out = reinterpret_cast<Bytef*>(block.data());
      z.avail_out = static_cast<uInt>(block.size());
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_STREAM_ERROR) return Result::kCorrupt;
      if (rc == Z_MEM_ERROR) return Result::kNoMemory;
      const size_t produced = block.size() - z.avail_out;
      const uint64_t consumed = offset + (step - z.avail_in);
      if (produced > 0 && !sink(std::string_view(block.data(), produced), consumed)) {
        return Result::kStopped;
      }
      if (rc == Z_STREAM_END) {
        offset += step - z.avail_in;
        if (offset == input.size()) return Result::kOk;
        // RFC 1952 §2.2: a gzip body may be several members; anything else after the end of
        // the stream is not part of a valid body.
        if (coding_ != ContentCoding::kGzip || input.size() - offset < 2 ||
            static_cast<unsigned char>(input[offset]) != 0x1f ||
            static_cast<unsigned char>(input[offset + 1]) != 0x8b) {
          return Result::kCorrupt;
        }
        if (inflateReset(&z) != Z_OK) return Result::kCorrupt;
        break;  // Next member from `offset`.
      }
      // Z_BUF_ERROR: no progress possible. With input left that cannot be (the output block
      // was just drained), so it is only the end of the input.
      if (rc == Z_BUF_ERROR) {
        if (z.avail_in == 0) break;
        return Result::kCorrupt;
      }
    } while (z.avail_in > 0 || z.avail_out == 0);
    if (rc != Z_STREAM_END) {
      offset += step - z.avail_in;
      if (offset >= input.size()) return Result::kTruncated;
    }
  }
}

}  // namespace tipperary::http1

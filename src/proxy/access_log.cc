#include "access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tipperary/common/log.h"

namespace tipperary::proxy {

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& path,
                                                           double sample_rate) {
  if (path == "-" || path.empty()) {
    return std::unique_ptr<AccessLog>(new AccessLog(STDOUT_FILENO, false, sample_rate));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open access log ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(fd, true, sample_rate));
}

AccessLog::AccessLog(int fd, bool owns_fd, double sample_rate)
    : fd_(fd), owns_fd_(owns_fd), sample_rate_(sample_rate) {}

AccessLog::~AccessLog() {
  if (owns_fd_) ::close(fd_);
}

bool AccessLog::Sample() const {
  if (sample_rate_ >= 1.0) return true;
  if (sample_rate_ <= 0.0) return false;
  thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < sample_rate_;
}

void AccessLog::Write(const AccessLogEntry& e) const {
  std::string line;
  line.reserve(256);
  auto field = [&line](std::string_view key, std::string_view value) {
    absl::StrAppend(&line, "\"", absl::string_view(key.data(), key.size()), "\":\"");
    common::AppendJsonEscaped(line, value.substr(0, 1024));
    line += "\",";
  };
  line += "{";
  field("request_id", e.request_id);
  field("peer", e.peer);
  field("method", e.method);
  field("path", e.path);
  field("route", e.route);
  absl::StrAppendFormat(&line,
                        "\"status\":%d,\"grpc_status\":%d,\"duration_ms\":%.3f,"
                        "\"upstream_ms\":%.3f,\"bytes_in\":%u,\"bytes_out\":%u}\n",
                        e.http_status, e.grpc_status, e.duration_ms, e.upstream_ms, e.bytes_in,
                        e.bytes_out);
  // O_APPEND + one write per line: lines from several loops never interleave.
  [[maybe_unused]] ssize_t n = ::write(fd_, line.data(), line.size());
}

}  // namespace tipperary::proxy

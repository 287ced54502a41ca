#include "tipperary/common/endpoint.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tipperary::common {

std::string Endpoint::ToString() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Endpoint> ParseEndpoint(std::string_view text_in, bool allow_port_zero) {
  // Debian's Abseil has its own string_view type, distinct from std::string_view.
  absl::string_view text(text_in.data(), text_in.size());
  Endpoint ep;
  if (absl::StartsWith(text, "unix:")) {
    ep.kind = Endpoint::Kind::kUnix;
    ep.path = std::string(text.substr(5));
    if (ep.path.empty()) return absl::InvalidArgumentError("unix endpoint has an empty path");
    if (ep.path.size() >= 108) {
      return absl::InvalidArgumentError(
          absl::StrCat("unix socket path is longer than 107 bytes: ", ep.path));
    }
    return ep;
  }
  absl::string_view host;
  absl::string_view port;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("expected [ipv6]:port, got \"", text, "\""));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected host:port or unix:/path, got \"", text, "\""));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("an IPv6 address needs brackets: [addr]:port, got \"", text, "\""));
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing host in \"", text, "\""));
  }
  uint32_t port_number = 0;
  if (!absl::SimpleAtoi(port, &port_number) || port_number > 65535 ||
      (port_number == 0 && !allow_port_zero)) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in \"", text, "\""));
  }
  ep.host = std::string(host);
  ep.port = static_cast<uint16_t>(port_number);
  return ep;
}

bool IsLocalhostName(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // The root: "localhost."
  const absl::string_view name(host.data(), host.size());
  return absl::EqualsIgnoreCase(name, "localhost") || absl::EndsWithIgnoreCase(name, ".localhost");
}

}  // namespace tipperary::common

// Network endpoints as operators write them: "host:port", "[v6]:port" or "unix:/path".
//
//   absl::StatusOr<Endpoint> ep = ParseEndpoint("unix:/run/tipperary/worker.sock");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tipperary::common {

struct Endpoint {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;  // TCP: host name or address literal, without brackets.
  uint16_t port = 0;
  std::string path;  // Unix socket path.

  // Back to the operator's spelling.
  std::string ToString() const;
};

// Port 0 is accepted when allow_port_zero (listeners), never for upstreams.
absl::StatusOr<Endpoint> ParseEndpoint(std::string_view text, bool allow_port_zero = false);

// "localhost" or a name under ".localhost", in any case: RFC 6761 section 6.3 says these always
// mean the loopback address and resolvers should answer so without asking anyone. Connecting
// code uses the loopback addresses itself, so a minimal image or chroot without /etc/hosts
// (where getaddrinfo fails for "localhost") still reaches a co-located worker by that name.
bool IsLocalhostName(std::string_view host);

}  // namespace tipperary::common

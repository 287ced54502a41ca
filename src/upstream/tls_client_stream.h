// The TLS layer of one upstream connection (Http2Connection with UpstreamOptions::tls): a client
// context built from the options' files, and an ssl::stream over the connection's socket with
// SNI and the name to verify set for its endpoint. The connection drives the handshake and its
// I/O through stream(); plaintext connections have none of this.
//
//   auto tls = TlsClientStream::Create(socket, *options.tls, endpoint);
//   if (!tls.ok()) return Fail(tls.status().message());
//   (*tls)->stream().async_handshake(boost::asio::ssl::stream_base::client, [&](auto ec) {
//     if (ec) return Fail((*tls)->DescribeHandshakeFailure(ec));
//     if (std::string problem = (*tls)->AlpnProblem(); !problem.empty()) return Fail(problem);
//   });
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::upstream {

// The client context for `options`: TLS >= min_version with HTTP/2's cipher suites, ALPN "h2",
// the CA file (or the system's store) when verifying, and the client certificate and key when
// set. Errors name the file and what is wrong with it.
absl::StatusOr<boost::asio::ssl::context> MakeClientTlsContext(const UpstreamTlsOptions& options);

// MakeClientTlsContext's result, shared by every connection (and thread) with the same options
// while their files stay the same. Loading a CA bundle takes OpenSSL tens of milliseconds (the
// system's: about a hundred), too long for an event loop on every reconnect; a stat() of each
// file on each connect notices a renewed certificate, which the next connection then uses.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> SharedClientTlsContext(
    const UpstreamTlsOptions& options);

class TlsClientStream {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;
  using Stream = boost::asio::ssl::stream<Socket&>;

  // Takes the shared context for the options and sets SNI and the verified name:
  // options.server_name, else the endpoint's host.
  static absl::StatusOr<std::unique_ptr<TlsClientStream>> Create(Socket& socket,
                                                                 const UpstreamTlsOptions& options,
                                                                 const common::Endpoint& endpoint);

  Stream& stream() { return stream_; }

  // Why the handshake failed, in words: "certificate verify failed: hostname mismatch (the
  // certificate is not for \"x.example\")", "tlsv13 alert certificate required", ...
  std::string DescribeHandshakeFailure(const boost::system::error_code& ec);
  // "" when the server selected ALPN "h2"; else why the connection cannot carry gRPC.
  std::string AlpnProblem();

 private:
  TlsClientStream(Socket& socket, std::shared_ptr<boost::asio::ssl::context> context,
                  std::string verified_name, bool verify);

  std::shared_ptr<boost::asio::ssl::context> context_;  // Before stream_, made from it.
  Stream stream_;
  std::string verified_name_;
  bool verify_;
};

// Logs once per process and upstream that its server certificates are not verified.
void WarnIfUnverified(const std::string& upstream, const UpstreamTlsOptions& options);

}  // namespace tipperary::upstream

#include "tipperary/http1/simple_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "tipperary/common/endpoint.h"

namespace tipperary::http1 {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

absl::Status Unavailable(const std::string& address, const char* what,
                         const beast::error_code& ec) {
  return absl::UnavailableError(absl::StrCat(address, " ", what, ": ", ec.message()));
}

}  // namespace

absl::StatusOr<std::string> Get(const std::string& address, const std::string& path,
                                std::chrono::nanoseconds timeout, uint64_t max_body,
                                const std::string& user_agent) {
  absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(address);
  if (!endpoint.ok()) return endpoint.status();
  boost::asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, path, 11};
  request.set(http::field::host, address);
  request.set(http::field::user_agent, user_agent);
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  absl::Status result = absl::OkStatus();

  // One deadline for the whole exchange; every step reports into `result`.
  stream.expires_after(timeout);
  resolver.async_resolve(
      endpoint->host, absl::StrCat(endpoint->port),
      [&](const beast::error_code& ec, const tcp::resolver::results_type& results) {
        if (ec) {
          result = Unavailable(address, "resolve", ec);
          return;
        }
        stream.async_connect(results, [&](const beast::error_code& connect_ec,
                                          const tcp::endpoint&) {
          if (connect_ec) {
            result = Unavailable(address, "connect", connect_ec);
            return;
          }
          http::async_write(stream, request, [&](const beast::error_code& write_ec, size_t) {
            if (write_ec) {
              result = Unavailable(address, "write", write_ec);
              return;
            }
            http::async_read(stream, buffer, parser, [&](const beast::error_code& read_ec, size_t) {
              if (read_ec == http::error::body_limit) {
                result = absl::ResourceExhaustedError(
                    absl::StrCat(address, path, ": body over ", max_body, " bytes"));
              } else if (read_ec) {
                result = Unavailable(address, "read", read_ec);
              }
            });
          });
        });
      });
  ioc.run();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (!result.ok()) return result;
  const auto& response = parser.get();
  if (response.result() != http::status::ok) {
    return absl::UnavailableError(absl::StrCat(address, path, " answered ", response.result_int()));
  }
  return std::move(parser.release().body());
}

}  // namespace tipperary::http1

#include "tipperary/autoscaling/worker_probe.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "tipperary/common/endpoint.h"

namespace tipperary::autoscaling {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

constexpr uint64_t kMaxBody = 64 * 1024;

absl::Status Unavailable(const char* what, const beast::error_code& ec) {
  return absl::UnavailableError(absl::StrCat("worker admin ", what, ": ", ec.message()));
}

}  // namespace

absl::StatusOr<WorkerCounters> ParseWorkerCounters(const std::string& json) {
  google::protobuf::Struct doc;
  auto status = google::protobuf::util::JsonStringToMessage(json, &doc);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("worker /autoscaling is not JSON: ", std::string(status.message())));
  }
  WorkerCounters c;
  const struct {
    const char* key;
    double* out;
  } fields[] = {
      {"queue_depth", &c.queue_depth},           {"batches_total", &c.batches},
      {"batch_texts_total", &c.batch_texts},     {"batch_tokens_total", &c.batch_tokens},
      {"max_batch_size", &c.max_batch_size},     {"max_batch_tokens", &c.max_batch_tokens},
  };
  for (const auto& f : fields) {
    auto it = doc.fields().find(f.key);
    if (it == doc.fields().end() || !it->second.has_number_value()) {
      return absl::InternalError(
          absl::StrCat("worker /autoscaling has no number \"", f.key, "\""));
    }
    *f.out = it->second.number_value();
  }
  return c;
}

absl::StatusOr<WorkerCounters> WorkerProbe::Poll() const {
  absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(address_);
  if (!endpoint.ok()) return endpoint.status();
  boost::asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::request<http::empty_body> request{http::verb::get, "/autoscaling", 11};
  request.set(http::field::host, address_);
  request.set(http::field::user_agent, "tipperary-proxy");
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  absl::Status result = absl::OkStatus();

  // One deadline for the whole exchange; every step reports into `result`.
  stream.expires_after(timeout_);
  resolver.async_resolve(
      endpoint->host, absl::StrCat(endpoint->port),
      [&](const beast::error_code& ec, tcp::resolver::results_type results) {
        if (ec) {
          result = Unavailable("resolve", ec);
          return;
        }
        stream.async_connect(results, [&](const beast::error_code& connect_ec,
                                          const tcp::endpoint&) {
          if (connect_ec) {
            result = Unavailable("connect", connect_ec);
            return;
          }
          http::async_write(stream, request, [&](const beast::error_code& write_ec, size_t) {
            if (write_ec) {
              result = Unavailable("write", write_ec);
              return;
            }
            http::async_read(stream, buffer, parser,
                             [&](const beast::error_code& read_ec, size_t) {
                               if (read_ec) result = Unavailable("read", read_ec);
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
    return absl::UnavailableError(absl::StrCat("worker admin /autoscaling answered ",
                                               response.result_int()));
  }
  return ParseWorkerCounters(response.body());
}

}  // namespace tipperary::autoscaling

// An admin port as a table of handlers (in the spirit of Envoy's admin handler table): each
// path has its methods, a line of help and a handler; the router answers 404 with the list of
// paths, 405 with Allow, and adds Cache-Control: no-store. Both binaries' admin ports use it.
//
//   http1::AdminRouter router;
//   router.Add("/healthz", "liveness", [](const http1::HttpRequest&) {
//     return http1::AdminReply{.body = "{\"status\":\"ok\"}\n"};
//   });
//   http1::RequestHandler handler = [&router](auto ex) { router.Handle(std::move(ex)); };
//
// A handler that takes long (a config reload loads models) answers later, from any thread, so
// the admin loop keeps serving probes and /metrics meanwhile:
//
//   router.AddAsync("/reload", "re-read the config", ioc.get_executor(),
//                   [&](const http1::HttpRequest&, http1::AdminRouter::Respond respond) {
//                     worker_pool.Run([respond] { respond(http1::AdminReply{.body = "{}"}); });
//                   }, {boost::beast::http::verb::post});
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tipperary/http1/http_exchange.h"

namespace tipperary::http1 {

struct AdminReply {
  boost::beast::http::status status = boost::beast::http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // Extra response fields.
};

class AdminRouter {
 public:
  using Handler = std::function<AdminReply(const HttpRequest& request)>;
  // Answers the request once, from any thread; later calls are ignored. Dropping it unanswered
  // answers 500.
  using Respond = std::function<void(AdminReply reply)>;
  using AsyncHandler = std::function<void(const HttpRequest& request, Respond respond)>;

  // `methods` defaults to GET (HEAD is always allowed with GET). Paths match exactly (the query
  // string is the handler's).
  void Add(std::string path, std::string help, Handler handler,
           std::vector<boost::beast::http::verb> methods = {boost::beast::http::verb::get});

  // As Add, for a handler that answers later through `respond`; the response is written on
  // `loop`, the listener's event loop (the one Handle runs on).
  void AddAsync(std::string path, std::string help, boost::asio::any_io_executor loop,
                AsyncHandler handler,
                std::vector<boost::beast::http::verb> methods = {boost::beast::http::verb::get});

  // Loop thread of the listener; answers at once, or (AddAsync) when the handler responds.
  void Handle(const std::shared_ptr<HttpExchange>& exchange) const;

  // "path: help" lines, for the 404 body and for docs.
  std::string Help() const;

 private:
  struct Entry {
    std::string path;
    std::string help;
    Handler handler;
    std::vector<boost::beast::http::verb> methods;
    AsyncHandler async_handler = {};  // Set instead of `handler` by AddAsync.
    boost::asio::any_io_executor loop = {};
  };
  std::vector<Entry> entries_;
};

}  // namespace tipperary::http1

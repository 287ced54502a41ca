#include "tipperary/http1/admin_router.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/beast/http/field.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tipperary/common/status_json.h"

namespace tipperary::http1 {
namespace {

namespace http = boost::beast::http;

bool Allows(const std::vector<http::verb>& methods, http::verb method) {
  if (method == http::verb::head) method = http::verb::get;
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

void Send(HttpExchange& exchange, AdminReply reply, const std::string& allow) {
  const HttpRequest& req = exchange.request();
  HttpResponse res{reply.status, req.version()};
  res.set(http::field::cache_control, "no-store");
  res.set(http::field::content_type, reply.content_type);
  if (!allow.empty()) res.set(http::field::allow, allow);
  for (const auto& [name, value] : reply.headers) res.set(name, value);
  res.body() = std::move(reply.body);
  exchange.Respond(std::move(res));
}

// The Respond of an async handler: once, posted to the listener's loop. If every copy is dropped
// unanswered (a handler bug), the client still gets an answer.
class AsyncResponder {
 public:
  AsyncResponder(std::shared_ptr<HttpExchange> exchange, boost::asio::any_io_executor loop)
      : exchange_(std::move(exchange)), loop_(std::move(loop)) {}
  ~AsyncResponder() {
    Respond(AdminReply{.status = http::status::internal_server_error,
                       .body = common::StatusJson(absl::StatusCode::kInternal,
                                                  "the admin handler gave no answer")});
  }

  void Respond(AdminReply reply) {
    if (answered_.exchange(true)) return;
    boost::asio::post(loop_, [exchange = exchange_, reply = std::move(reply)]() mutable {
      Send(*exchange, std::move(reply), "");
    });
  }

 private:
  std::shared_ptr<HttpExchange> exchange_;
  boost::asio::any_io_executor loop_;
  std::atomic<bool> answered_{false};
};

}  // namespace

void AdminRouter::AddAsync(std::string path, std::string help, boost::asio::any_io_executor loop,
                           AsyncHandler handler, std::vector<http::verb> methods) {
  entries_.push_back({std::move(path), std::move(help), nullptr, std::move(methods),
                      std::move(handler), std::move(loop)});
}

void AdminRouter::Add(std::string path, std::string help, Handler handler,
                      std::vector<http::verb> methods) {
  entries_.push_back({std::move(path), std::move(help), std::move(handler), std::move(methods)});
}

std::string AdminRouter::Help() const {
  std::vector<std::string> lines;
  for (const Entry& e : entries_) lines.push_back(absl::StrCat(e.path, ": ", e.help));
  return absl::StrJoin(lines, "; ");
}

void AdminRouter::Handle(const std::shared_ptr<HttpExchange>& exchange) const {
  const HttpRequest& req = exchange->request();
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  AdminReply reply;
  std::string allow;
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return e.path == path; });
  if (it == entries_.end()) {
    reply.status = http::status::not_found;
    reply.body = common::StatusJson(absl::StatusCode::kNotFound,
                                    absl::StrCat("unknown admin path; try ", Help()));
  } else if (!Allows(it->methods, req.method())) {
    reply.status = http::status::method_not_allowed;
    std::vector<std::string> names;
    for (http::verb v : it->methods) {
      names.emplace_back(http::to_string(v));
      if (v == http::verb::get) names.emplace_back("HEAD");
    }
    allow = absl::StrJoin(names, ", ");
    reply.body = common::StatusJson(absl::StatusCode::kUnimplemented,
                                    absl::StrCat(it->path, " takes ", allow));
  } else if (it->async_handler) {
    auto responder = std::make_shared<AsyncResponder>(exchange, it->loop);
    it->async_handler(
        req, [responder](AdminReply async_reply) { responder->Respond(std::move(async_reply)); });
    return;
  } else {
    reply = it->handler(req);
  }
  Send(*exchange, std::move(reply), allow);
}

}  // namespace tipperary::http1

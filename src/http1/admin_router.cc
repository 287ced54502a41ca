#include "tipperary/http1/admin_router.h"

#include <algorithm>
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

}  // namespace

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
  } else {
    reply = it->handler(req);
  }
  HttpResponse res{reply.status, req.version()};
  res.set(http::field::cache_control, "no-store");
  res.set(http::field::content_type, reply.content_type);
  if (!allow.empty()) res.set(http::field::allow, allow);
  for (const auto& [name, value] : reply.headers) res.set(name, value);
  res.body() = std::move(reply.body);
  exchange->Respond(std::move(res));
}

}  // namespace tipperary::http1

// CORS (the Fetch standard's CORS protocol) from the `cors` config: whether an Origin is allowed,
// the headers of a preflight's answer, and the headers every response to an allowed origin
// carries. Built once per event loop; pure, so it is tested without sockets.
//
//   CorsPolicy cors(config.cors);
//   if (cors.enabled() && cors.AllowsOrigin(origin)) cors.AddResponseHeaders(origin, response);
#pragma once

#include <boost/beast/http/fields.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tipperary/config/proxy_config.h"

namespace tipperary::proxy {

class CorsPolicy {
 public:
  explicit CorsPolicy(const config::CorsConfig& config);

  bool enabled() const { return !origins_.empty(); }
  // Scheme, host and port compared case-insensitively; "https://*.example.com" matches any
  // subdomain of example.com (not example.com itself); "*" matches every origin.
  bool AllowsOrigin(std::string_view origin) const;
  bool AllowsMethod(std::string_view method) const;
  // Every name of an Access-Control-Request-Headers list is allowed (or allow_headers has "*").
  bool AllowsHeaders(std::string_view request_headers) const;

  // Access-Control-Allow-Origin (and -Credentials), -Expose-Headers, Vary: Origin.
  void AddResponseHeaders(std::string_view origin, boost::beast::http::fields& out) const;
  // A preflight's answer: the above plus -Allow-Methods, -Allow-Headers, -Max-Age.
  void AddPreflightHeaders(std::string_view origin, std::string_view request_headers,
                           boost::beast::http::fields& out) const;

 private:
  struct Origin {
    std::string scheme;  // Lower case, "" for "*".
    std::string host;    // Lower case, with its ":port"; the part after "*." for wildcards.
    bool any = false;
    bool subdomains = false;
  };
  std::vector<Origin> origins_;
  std::vector<std::string> methods_;
  std::vector<std::string> headers_;  // Lower case.
  bool any_header_ = false;
  std::string methods_joined_;
  std::string headers_joined_;
  std::string expose_joined_;
  std::string max_age_;
  bool credentials_ = false;
  bool any_origin_ = false;
};

}  // namespace tipperary::proxy

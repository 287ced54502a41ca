#include "cors_policy.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tipperary::proxy {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

CorsPolicy::CorsPolicy(const config::CorsConfig& config)
    : methods_(config.allow_methods), credentials_(config.allow_credentials) {
  for (const std::string& pattern : config.allow_origins) {
    Origin o;
    if (pattern == "*") {
      o.any = true;
      any_origin_ = true;
    } else {
      const size_t sep = pattern.find("://");
      o.scheme = absl::AsciiStrToLower(pattern.substr(0, sep));
      std::string_view host = std::string_view(pattern).substr(sep + 3);
      if (host.starts_with("*.")) {
        o.subdomains = true;
        host.remove_prefix(1);  // Keeps the dot: ".example.com".
      }
      o.host = absl::AsciiStrToLower(Sv(host));
    }
    origins_.push_back(std::move(o));
  }
  for (const std::string& h : config.allow_headers) {
    if (h == "*") any_header_ = true;
    headers_.push_back(absl::AsciiStrToLower(h));
  }
  methods_joined_ = absl::StrJoin(config.allow_methods, ", ");
  headers_joined_ = absl::StrJoin(config.allow_headers, ", ");
  expose_joined_ = absl::StrJoin(config.expose_headers, ", ");
  max_age_ =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(config.max_age).count());
}

bool CorsPolicy::AllowsOrigin(std::string_view origin) const {
  if (origin.empty()) return false;
  const size_t sep = origin.find("://");
  if (sep == std::string_view::npos) return any_origin_;  // "null" and the like.
  const absl::string_view scheme = Sv(origin.substr(0, sep));
  const absl::string_view host = Sv(origin.substr(sep + 3));
  for (const Origin& o : origins_) {
    if (o.any) return true;
    if (!absl::EqualsIgnoreCase(scheme, o.scheme)) continue;
    if (o.subdomains ? host.size() > o.host.size() && absl::EndsWithIgnoreCase(host, o.host)
                     : absl::EqualsIgnoreCase(host, o.host)) {
      return true;
    }
  }
  return false;
}

bool CorsPolicy::AllowsMethod(std::string_view method) const {
  // Methods are case-sensitive (RFC 9110 §9.1); the CORS-safelisted ones need no listing.
  if (method == "GET" || method == "HEAD" || method == "POST") return true;
  return std::find(methods_.begin(), methods_.end(), method) != methods_.end();
}

bool CorsPolicy::AllowsHeaders(std::string_view request_headers) const {
  if (any_header_) return true;
  for (absl::string_view name : absl::StrSplit(Sv(request_headers), ',', absl::SkipWhitespace())) {
    const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
    if (lower.empty()) continue;
    if (std::find(headers_.begin(), headers_.end(), lower) == headers_.end()) return false;
  }
  return true;
}

void CorsPolicy::AddResponseHeaders(std::string_view origin,
                                    boost::beast::http::fields& out) const {
  namespace http = boost::beast::http;
  if (any_origin_ && !credentials_) {
    out.set(http::field::access_control_allow_origin, "*");
  } else {
    out.set(http::field::access_control_allow_origin, std::string(origin));
  }
  if (credentials_) out.set(http::field::access_control_allow_credentials, "true");
  if (!expose_joined_.empty()) out.set(http::field::access_control_expose_headers, expose_joined_);
  // The answer depends on Origin unless it is "*" for everyone: caches must key on it.
  if (!(any_origin_ && !credentials_)) out.insert(http::field::vary, "Origin");
}

void CorsPolicy::AddPreflightHeaders(std::string_view origin, std::string_view request_headers,
                                     boost::beast::http::fields& out) const {
  namespace http = boost::beast::http;
  AddResponseHeaders(origin, out);
  out.erase(http::field::access_control_expose_headers);  // Meaningless on a preflight.
  out.set(http::field::access_control_allow_methods, methods_joined_);
  if (any_header_) {
    // "*" is literal for credentialed requests: echo what was asked instead.
    if (!request_headers.empty()) {
      out.set(http::field::access_control_allow_headers, std::string(request_headers));
    }
  } else if (!headers_joined_.empty()) {
    out.set(http::field::access_control_allow_headers, headers_joined_);
  }
  out.set(http::field::access_control_max_age, max_age_);
  out.insert(http::field::vary, "Access-Control-Request-Method, Access-Control-Request-Headers");
}

}  // namespace tipperary::proxy

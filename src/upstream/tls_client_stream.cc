#include "tls_client_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"
#include "tipperary/common/tls_policy.h"

namespace tipperary::upstream {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

absl::Status FileError(std::string_view key, const std::string& path, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("tls ", absl::string_view(key.data(), key.size()), " \"", path,
                   "\": ", absl::string_view(problem.data(), problem.size())));
}

// What identifies the files' contents for the context cache: device, inode, size and
// modification time of each ("" for a file that cannot be stat'ed: its load fails anyway).
std::string FileStamps(const UpstreamTlsOptions& options) {
  std::string stamps;
  auto add = [&](const char* path) {
    struct stat st {};
    if (::stat(path, &st) != 0) {
      absl::StrAppend(&stamps, "?|");
      return;
    }
    absl::StrAppend(&stamps, st.st_dev, ":", st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec,
                    ".", st.st_mtim.tv_nsec, "|");
  };
  if (options.verify)
    add(options.ca_file.empty() ? X509_get_default_cert_file() : options.ca_file.c_str());
  if (!options.cert_file.empty()) add(options.cert_file.c_str());
  if (!options.key_file.empty()) add(options.key_file.c_str());
  return stamps;
}

bool IsIpAddress(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

absl::StatusOr<ssl::context> MakeClientTlsContext(const UpstreamTlsOptions& options) {
  int min_version = 0;
  if (options.min_version == "1.2" || options.min_version.empty()) {
    min_version = TLS1_2_VERSION;
  } else if (options.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "tls min_version must be \"1.2\" or \"1.3\", got \"", options.min_version, "\""));
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError("tls needs both cert and key for a client certificate");
  }

  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_default_passwd_cb(native, common::NoPassphrase);
  if (SSL_CTX_set_min_proto_version(native, min_version) != 1 ||
      SSL_CTX_set_cipher_list(native, common::kTls12Ciphers) != 1 ||
      SSL_CTX_set_alpn_protos(native, kAlpnH2, sizeof(kAlpnH2)) != 0) {  // 0 is success here.
    ERR_clear_error();
    return absl::InternalError("tls: cannot set up the client context");
  }

  boost::system::error_code ec;
  if (options.verify) {
    ctx.set_verify_mode(ssl::verify_peer, ec);
    if (!options.ca_file.empty()) {
      ctx.load_verify_file(options.ca_file, ec);
      if (ec) return FileError("ca", options.ca_file, ec.message());
    } else {
      ctx.set_default_verify_paths(ec);
      if (ec) return absl::InternalError("tls: cannot use the system's CA store: " + ec.message());
    }
  } else {
    ctx.set_verify_mode(ssl::verify_none, ec);
  }

  if (!options.cert_file.empty()) {
    ctx.use_certificate_chain_file(options.cert_file, ec);
    if (ec) return FileError("cert", options.cert_file, ec.message());
    ctx.use_private_key_file(options.key_file, ssl::context::pem, ec);
    if (ec) return FileError("key", options.key_file, ec.message());
    if (SSL_CTX_check_private_key(native) != 1) {
      ERR_clear_error();
      return FileError(
          "key", options.key_file,
          absl::StrCat("does not belong to the certificate in \"", options.cert_file, "\""));
    }
  }
  return ctx;
}

absl::StatusOr<std::shared_ptr<ssl::context>> SharedClientTlsContext(
    const UpstreamTlsOptions& options) {
  struct Entry {
    std::string stamps;
    std::shared_ptr<ssl::context> context;
  };
  // Keyed by the options (server_name does not go into the context). Entries stay: there are as
  // many as distinct TLS settings were ever used, a handful.
  static auto* mu = new std::mutex();
  static auto* cache = new std::map<std::string, Entry>();
  const std::string key =
      absl::StrCat(options.ca_file, "|", options.cert_file, "|", options.key_file, "|",
                   options.verify, "|", options.min_version);
  std::string stamps = FileStamps(options);
  // Loading under the lock: other loops that want the same context would wait for it anyway.
  std::lock_guard<std::mutex> lock(*mu);
  auto it = cache->find(key);
  if (it != cache->end() && it->second.stamps == stamps) return it->second.context;
  absl::StatusOr<ssl::context> context = MakeClientTlsContext(options);
  if (!context.ok()) return context.status();
  auto shared = std::make_shared<ssl::context>(*std::move(context));
  (*cache)[key] = Entry{std::move(stamps), shared};
  return shared;
}

absl::StatusOr<std::unique_ptr<TlsClientStream>> TlsClientStream::Create(
    Socket& socket, const UpstreamTlsOptions& options, const common::Endpoint& endpoint) {
  absl::StatusOr<std::shared_ptr<ssl::context>> context = SharedClientTlsContext(options);
  if (!context.ok()) return context.status();
  std::string name = options.server_name.empty() ? endpoint.host : options.server_name;
  std::unique_ptr<TlsClientStream> tls(
      new TlsClientStream(socket, *std::move(context), name, options.verify));
  SSL* ssl = tls->stream_.native_handle();
  const bool ip = IsIpAddress(name);
  // SNI carries host names only (RFC 6066 section 3).
  if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("tls: bad server name \"", name, "\""));
  }
  if (options.verify) {
    int ok = 0;
    if (ip) {
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = SSL_set1_host(ssl, name.c_str());
    }
    if (ok != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat("tls: bad server name \"", name, "\""));
    }
  }
  return tls;
}

TlsClientStream::TlsClientStream(Socket& socket, std::shared_ptr<ssl::context> context,
                                 std::string verified_name, bool verify)
    : context_(std::move(context)),
      stream_(socket, *context_),
      verified_name_(std::move(verified_name)),
      verify_(verify) {}

std::string TlsClientStream::DescribeHandshakeFailure(const boost::system::error_code& ec) {
  if (verify_) {
    const long result = SSL_get_verify_result(stream_.native_handle());
    if (result != X509_V_OK) {
      std::string text =
          absl::StrCat("certificate verify failed: ", X509_verify_cert_error_string(result));
      if (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        absl::StrAppend(&text, " (the certificate is not for \"", verified_name_, "\")");
      }
      return text;
    }
  }
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
    return "the server closed the connection during the TLS handshake";
  }
  return ec.message();
}

std::string TlsClientStream::AlpnProblem() {
  const unsigned char* selected = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(stream_.native_handle(), &selected, &length);
  if (length == 2 && selected[0] == 'h' && selected[1] == '2') return "";
  if (length == 0) {
    return "the server did not select ALPN protocol \"h2\" (no HTTP/2 over TLS there)";
  }
  return absl::StrCat("the server selected ALPN protocol \"",
                      std::string(reinterpret_cast<const char*>(selected), length),
                      "\", not \"h2\"");
}

void WarnIfUnverified(const std::string& upstream, const UpstreamTlsOptions& options) {
  if (options.verify) return;
  static auto* mu = new std::mutex();
  static auto* warned = new std::set<std::string>();
  {
    std::lock_guard<std::mutex> lock(*mu);
    if (!warned->insert(upstream).second) return;
  }
  TIPPERARY_LOG(kWarn, "upstream TLS certificates are not verified (tls.verify: false)",
                {{"upstream", upstream}});
}

}  // namespace tipperary::upstream

// MakeServerTlsContext: the one TLS server context shared by every listener thread.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "tipperary/common/tls_policy.h"
#include "tipperary/http1/http_listener.h"

namespace tipperary::http1 {
namespace {

namespace ssl = boost::asio::ssl;

constexpr unsigned char kSessionIdContext[] = "tipperary";

// We speak HTTP/1.1 only: pick it when the client offers it, else let the client fall back.
int SelectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned int i = 0;
  while (i < inlen) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == sizeof(kHttp11) && std::memcmp(in + i + 1, kHttp11, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ssl::context>> MakeServerTlsContext(const TlsOptions& options) {
  int min_version = 0;
  if (options.min_version == "1.2" || options.min_version.empty()) {
    min_version = TLS1_2_VERSION;
  } else if (options.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "tls min_version must be \"1.2\" or \"1.3\", got \"", options.min_version, "\""));
  }
  if (options.cert_file.empty() || options.key_file.empty()) {
    return absl::InvalidArgumentError("tls needs both cert and key");
  }

  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  if (ec) return absl::InternalError(absl::StrCat("tls options: ", ec.message()));
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(native, min_version) != 1) {
    return absl::InternalError("tls: cannot set the minimum protocol version");
  }
  if (SSL_CTX_set_cipher_list(native, common::kTls12Ciphers) != 1) {
    return absl::InternalError("tls: cannot set the cipher list");
  }
  SSL_CTX_set_alpn_select_cb(native, SelectAlpn, nullptr);

  ctx->use_certificate_chain_file(options.cert_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls cert ", options.cert_file, ": ", ec.message()));
  }
  ctx->use_private_key_file(options.key_file, ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls key ", options.key_file, ": ", ec.message()));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("tls key ", options.key_file, " does not match cert ", options.cert_file));
  }

  if (!options.client_ca_file.empty()) {
    ctx->load_verify_file(options.client_ca_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls client_ca ", options.client_ca_file, ": ", ec.message()));
    }
    // Tell clients which CAs we accept, so they pick the right certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(native, names);
    ERR_clear_error();
    ssl::context::verify_mode mode = ssl::verify_peer;
    if (options.require_client_cert) mode |= ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode, ec);
    if (ec) return absl::InternalError(absl::StrCat("tls verify mode: ", ec.message()));
    // Session resumption with client verification requires a session id context.
    SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof(kSessionIdContext) - 1);
  }
  return ctx;
}

}  // namespace tipperary::http1

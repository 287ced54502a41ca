// The project's one TLS policy, for both ends it speaks TLS on (the HTTP listeners, the
// upstream client): which TLS 1.2 suites are offered, and how PEM keys are read.
//
//   SSL_CTX_set_cipher_list(ctx, common::kTls12Ciphers);
//   SSL_CTX_set_default_passwd_cb(ctx, common::NoPassphrase);
#pragma once

namespace tipperary::common {

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla "intermediate"; also what HTTP/2
// allows, RFC 7540 9.2.2). TLS 1.3 suites are OpenSSL's defaults, all of which qualify.
inline constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

// A pem_password_cb that refuses: an encrypted key is an error, never a terminal prompt.
inline int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

}  // namespace tipperary::common

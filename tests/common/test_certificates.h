// PEM files for TLS tests, made with OpenSSL's API when a test starts (no private key is
// committed): a CA; a server certificate for "localhost" and 127.0.0.1 and a client
// certificate, both issued by that CA; and a second CA that issued nothing here (the "wrong CA").
// EC P-256 keys, valid from an hour ago for two days.
//
//   absl::StatusOr<TestCertificates> certs = TestCertificates::Create(temp_dir);
//   ASSERT_TRUE(certs.ok()) << certs.status();
//   options.ca_file = certs->ca_cert;
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tipperary::test_pki {

struct TestCertificates {
  // Writes the files into `dir`, which must exist.
  static absl::StatusOr<TestCertificates> Create(const std::string& dir);

  std::string ca_cert;      // CN=Tipperary Test CA
  std::string server_cert;  // CN=localhost, SAN DNS:localhost and IP:127.0.0.1, serverAuth
  std::string server_key;
  std::string client_cert;  // CN=test-client, clientAuth
  std::string client_key;
  std::string client_key_encrypted;  // client_key under the passphrase "secret".
  std::string other_ca_cert;         // CN=Tipperary Other CA, with other_ca_key
  std::string other_ca_key;
};

// The whole file, or "" when it cannot be read (for grpc's PEM-string credentials).
std::string ReadTextFile(const std::string& path);

}  // namespace tipperary::test_pki

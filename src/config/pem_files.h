// Checks of the PEM files a TLS context loads, made while the config loads, so that
// --check-config catches a certificate or key that the proxy could not use. The messages say
// what is wrong with the file; the caller says where the key was written.
//
//   absl::Status s = CheckPemCertificates("/etc/tipperary/ca.pem");
//   if (!s.ok()) return value.Error(s.message());  // "no PEM certificate in it"
#pragma once

#include <string>

#include "absl/status/status.h"

namespace tipperary::config::internal {

// At least one PEM certificate, and every one of them parses.
absl::Status CheckPemCertificates(const std::string& path);

// An unencrypted PEM private key that belongs to the first certificate in cert_path.
absl::Status CheckPemPrivateKey(const std::string& key_path, const std::string& cert_path);

}  // namespace tipperary::config::internal

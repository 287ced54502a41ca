#include "pem_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tipperary/common/tls_policy.h"

namespace tipperary::config::internal {
namespace {

// CA bundles with every public root are about 200 KiB; anything far larger is a wrong path.
constexpr off_t kMaxPemBytes = 16 << 20;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct InfoStackFree {
  void operator()(STACK_OF(X509_INFO) * infos) const {
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
  }
};

// The reason of the last queued OpenSSL error, which clears the queue.
std::string TakeOpenSslError() {
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  const char* reason = code == 0 ? nullptr : ERR_reason_error_string(code);
  return reason != nullptr ? reason : "unknown error";
}

// Opens a regular file of a plausible size (a device such as /dev/zero would never end).
absl::StatusOr<std::unique_ptr<BIO, BioFree>> OpenPem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read it: ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError("it is not a regular file");
  if (st.st_size > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("it has ", st.st_size, " bytes, too many for a PEM file"));
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return absl::InvalidArgumentError("cannot open it: " + TakeOpenSslError());
  return bio;
}

// Whether any line of the file contains `text` (the key's PEM headers, for a better message).
bool Mentions(const std::string& path, std::string_view text) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

absl::Status CheckPemCertificates(const std::string& path) {
  absl::StatusOr<std::unique_ptr<BIO, BioFree>> bio = OpenPem(path);
  if (!bio.ok()) return bio.status();
  // As SSL_CTX_load_verify_locations reads a bundle: certificates (also "TRUSTED CERTIFICATE")
  // and CRLs, in PEM blocks with any text between them.
  std::unique_ptr<STACK_OF(X509_INFO), InfoStackFree> infos(
      PEM_X509_INFO_read_bio(bio->get(), nullptr, common::NoPassphrase, nullptr));
  if (!infos) return absl::InvalidArgumentError("bad PEM certificate: " + TakeOpenSslError());
  ERR_clear_error();
  int certificates = 0;
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    if (sk_X509_INFO_value(infos.get(), i)->x509 != nullptr) ++certificates;
  }
  if (certificates == 0) return absl::InvalidArgumentError("no PEM certificate in it");
  return absl::OkStatus();
}

absl::Status CheckPemPrivateKey(const std::string& key_path, const std::string& cert_path) {
  absl::StatusOr<std::unique_ptr<BIO, BioFree>> key_bio = OpenPem(key_path);
  if (!key_bio.ok()) return key_bio.status();
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio->get(), nullptr, common::NoPassphrase, nullptr));
  if (!key) {
    std::string error = TakeOpenSslError();
    if (!Mentions(key_path, "PRIVATE KEY-----")) {
      return absl::InvalidArgumentError("no PEM private key in it");
    }
    if (Mentions(key_path, "ENCRYPTED")) {
      return absl::InvalidArgumentError(
          "the private key is encrypted (passphrase-protected keys are not supported)");
    }
    return absl::InvalidArgumentError("bad PEM private key: " + error);
  }
  absl::StatusOr<std::unique_ptr<BIO, BioFree>> cert_bio = OpenPem(cert_path);
  if (!cert_bio.ok()) return absl::OkStatus();  // The cert's own check reports it.
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509_AUX(cert_bio->get(), nullptr, common::NoPassphrase, nullptr));
  ERR_clear_error();
  if (!cert) return absl::OkStatus();
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("the private key does not belong to the certificate in \"", cert_path, "\""));
  }
  return absl::OkStatus();
}

}  // namespace tipperary::config::internal

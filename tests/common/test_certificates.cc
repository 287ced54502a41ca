#include "test_certificates.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tipperary::test_pki {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

absl::Status OpenSslError(std::string_view what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  char text[256] = {0};
  if (code != 0) ERR_error_string_n(code, text, sizeof(text));
  return absl::InternalError(absl::StrCat(absl::string_view(what.data(), what.size()), ": ", text));
}

struct Profile {
  std::string common_name = {};
  bool ca = false;
  std::string subject_alt_names = {};  // "DNS:localhost,IP:127.0.0.1" or "".
  std::string extended_key_usage = {};
};

absl::StatusOr<Cert> Issue(const Profile& profile, EVP_PKEY* key, X509* issuer,
                           EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  X509* x = cert.get();
  X509_set_version(x, 2);  // v3
  unsigned char serial_bytes[8];
  RAND_bytes(serial_bytes, sizeof(serial_bytes));
  serial_bytes[0] &= 0x7f;  // Positive.
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 2 * 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Tipperary"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(profile.common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, profile.ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
      {NID_key_usage,
       profile.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid"},
  };
  if (!profile.subject_alt_names.empty()) {
    extensions.emplace_back(NID_subject_alt_name, profile.subject_alt_names);
  }
  if (!profile.extended_key_usage.empty()) {
    extensions.emplace_back(NID_ext_key_usage, profile.extended_key_usage);
  }
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return OpenSslError(absl::StrCat("extension ", OBJ_nid2sn(nid)));
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return OpenSslError("X509_sign");
  }
  return cert;
}

absl::Status WritePem(const std::string& path, X509* cert, EVP_PKEY* key,
                      const char* passphrase = nullptr) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(path.c_str(), "w"));
  if (!bio) return OpenSslError(absl::StrCat("create ", path));
  if (cert != nullptr && PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("PEM_write_bio_X509");
  }
  const EVP_CIPHER* cipher = passphrase != nullptr ? EVP_aes_256_cbc() : nullptr;
  void* password = const_cast<char*>(passphrase);
  if (key != nullptr &&
      PEM_write_bio_PrivateKey(bio.get(), key, cipher, nullptr, 0, nullptr, password) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  return absl::OkStatus();
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("EVP_EC_gen");
  return key;
}

}  // namespace

absl::StatusOr<TestCertificates> TestCertificates::Create(const std::string& dir) {
  TestCertificates files;
  auto path = [&](const char* name) { return dir + "/" + name; };

  absl::StatusOr<Key> ca_key = NewKey();
  if (!ca_key.ok()) return ca_key.status();
  absl::StatusOr<Cert> ca =
      Issue({.common_name = "Tipperary Test CA", .ca = true}, ca_key->get(), nullptr, nullptr);
  if (!ca.ok()) return ca.status();
  files.ca_cert = path("ca.pem");
  if (absl::Status s = WritePem(files.ca_cert, ca->get(), nullptr); !s.ok()) return s;

  struct Leaf {
    Profile profile;
    std::string* cert_path;
    std::string* key_path;
    const char* cert_name;
    const char* key_name;
  };
  Leaf leaves[] = {
      {{.common_name = "localhost",
        .subject_alt_names = "DNS:localhost,IP:127.0.0.1",
        .extended_key_usage = "serverAuth"},
       &files.server_cert,
       &files.server_key,
       "server.pem",
       "server.key"},
      {{.common_name = "test-client", .extended_key_usage = "clientAuth"},
       &files.client_cert,
       &files.client_key,
       "client.pem",
       "client.key"},
  };
  for (Leaf& leaf : leaves) {
    absl::StatusOr<Key> key = NewKey();
    if (!key.ok()) return key.status();
    absl::StatusOr<Cert> cert = Issue(leaf.profile, key->get(), ca->get(), ca_key->get());
    if (!cert.ok()) return cert.status();
    *leaf.cert_path = path(leaf.cert_name);
    *leaf.key_path = path(leaf.key_name);
    if (absl::Status s = WritePem(*leaf.cert_path, cert->get(), nullptr); !s.ok()) return s;
    if (absl::Status s = WritePem(*leaf.key_path, nullptr, key->get()); !s.ok()) return s;
    if (leaf.key_path == &files.client_key) {
      files.client_key_encrypted = path("client-encrypted.key");
      absl::Status s = WritePem(files.client_key_encrypted, nullptr, key->get(), "secret");
      if (!s.ok()) return s;
    }
  }

  absl::StatusOr<Key> other_key = NewKey();
  if (!other_key.ok()) return other_key.status();
  absl::StatusOr<Cert> other =
      Issue({.common_name = "Tipperary Other CA", .ca = true}, other_key->get(), nullptr, nullptr);
  if (!other.ok()) return other.status();
  files.other_ca_cert = path("other-ca.pem");
  files.other_ca_key = path("other-ca.key");
  if (absl::Status s = WritePem(files.other_ca_cert, other->get(), nullptr); !s.ok()) return s;
  if (absl::Status s = WritePem(files.other_ca_key, nullptr, other_key->get()); !s.ok()) return s;
  return files;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace tipperary::test_pki

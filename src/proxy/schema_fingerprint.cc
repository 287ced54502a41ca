#include "schema_fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tipperary::proxy {

SchemaFingerprint FingerprintOf(const std::vector<google::protobuf::FileDescriptorSet>& sets) {
  // The same file may come from several sources (or twice from reflection); the first wins, as
  // the schema builder keeps it.
  std::map<std::string, std::string> files;
  SchemaFingerprint fingerprint;
  for (const auto& set : sets) {
    for (const auto& file : set.file()) {
      if (files.count(file.name()) > 0) continue;
      files.emplace(file.name(), file.SerializeAsString());
      for (const auto& service : file.service()) {
        const std::string prefix = file.package().empty()
                                       ? service.name()
                                       : absl::StrCat(file.package(), ".", service.name());
        for (const auto& method : service.method()) {
          fingerprint.methods.insert(absl::StrCat(prefix, "/", method.name()));
        }
      }
    }
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (const auto& [name, bytes] : files) {
    // Length-prefixed, so that no two different file lists hash the same bytes.
    const std::string header = absl::StrCat(name.size(), ":", name, bytes.size(), ":");
    EVP_DigestUpdate(ctx, header.data(), header.size());
    EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
  }
  EVP_DigestFinal_ex(ctx, hash, &length);
  EVP_MD_CTX_free(ctx);
  fingerprint.digest =
      absl::BytesToHexString(std::string(reinterpret_cast<const char*>(hash), length));
  return fingerprint;
}

MethodChanges DiffMethods(const SchemaFingerprint& before, const SchemaFingerprint& after) {
  MethodChanges changes;
  std::set_difference(after.methods.begin(), after.methods.end(), before.methods.begin(),
                      before.methods.end(), std::back_inserter(changes.added));
  std::set_difference(before.methods.begin(), before.methods.end(), after.methods.begin(),
                      after.methods.end(), std::back_inserter(changes.removed));
  return changes;
}

}  // namespace tipperary::proxy

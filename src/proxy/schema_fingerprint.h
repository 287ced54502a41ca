// What identifies a schema across fetches: a digest of its files that does not depend on the
// order they arrived in, and the gRPC methods it declares, so that a refresh swaps only a schema
// that changed and can say what changed.
//
//   SchemaFingerprint before = FingerprintOf(old_sets), after = FingerprintOf(new_sets);
//   if (after.digest != before.digest) {
//     MethodChanges changes = DiffMethods(before, after);  // log changes.added, changes.removed
//   }
#pragma once

#include <set>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.pb.h"

namespace tipperary::proxy {

struct SchemaFingerprint {
  std::string digest;             // SHA-256, hex, of the files' descriptors sorted by name.
  std::set<std::string> methods;  // "package.Service/Method".
};

struct MethodChanges {
  std::vector<std::string> added;
  std::vector<std::string> removed;
};

SchemaFingerprint FingerprintOf(const std::vector<google::protobuf::FileDescriptorSet>& sets);
MethodChanges DiffMethods(const SchemaFingerprint& before, const SchemaFingerprint& after);

}  // namespace tipperary::proxy

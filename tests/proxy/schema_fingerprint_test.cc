#include "schema_fingerprint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tipperary::proxy {
namespace {

using ::testing::ElementsAre;

google::protobuf::FileDescriptorProto File(const std::string& name,
                                           const std::vector<std::string>& methods) {
  google::protobuf::FileDescriptorProto file;
  file.set_name(name);
  file.set_package("pkg");
  auto* service = file.add_service();
  service->set_name("Svc");
  for (const std::string& m : methods) {
    auto* method = service->add_method();
    method->set_name(m);
    method->set_input_type(".pkg.Req");
    method->set_output_type(".pkg.Res");
  }
  return file;
}

google::protobuf::FileDescriptorSet Set(std::vector<google::protobuf::FileDescriptorProto> files) {
  google::protobuf::FileDescriptorSet set;
  for (auto& f : files) *set.add_file() = std::move(f);
  return set;
}

TEST(SchemaFingerprintTest, TheOrderFilesArriveInDoesNotMatter) {
  SchemaFingerprint ab = FingerprintOf({Set({File("a.proto", {"A"}), File("b.proto", {"B"})})});
  SchemaFingerprint ba =
      FingerprintOf({Set({File("b.proto", {"B"})}), Set({File("a.proto", {"A"})})});
  EXPECT_EQ(ab.digest, ba.digest);
  EXPECT_EQ(ab.digest.size(), 64u);
  EXPECT_THAT(ab.methods, ElementsAre("pkg.Svc/A", "pkg.Svc/B"));
  // A file seen twice counts once (reflection may return it twice).
  SchemaFingerprint twice = FingerprintOf(
      {Set({File("a.proto", {"A"}), File("b.proto", {"B"}), File("a.proto", {"A"})})});
  EXPECT_EQ(twice.digest, ab.digest);
}

TEST(SchemaFingerprintTest, AnyChangeChangesTheDigestAndTheDiffSaysWhich) {
  SchemaFingerprint before = FingerprintOf({Set({File("a.proto", {"A", "Old"})})});
  SchemaFingerprint after = FingerprintOf({Set({File("a.proto", {"A", "New"})})});
  EXPECT_NE(before.digest, after.digest);
  MethodChanges changes = DiffMethods(before, after);
  EXPECT_THAT(changes.added, ElementsAre("pkg.Svc/New"));
  EXPECT_THAT(changes.removed, ElementsAre("pkg.Svc/Old"));
  // A renamed file with the same content is a different schema too.
  EXPECT_NE(FingerprintOf({Set({File("c.proto", {"A", "Old"})})}).digest, before.digest);
}

}  // namespace
}  // namespace tipperary::proxy

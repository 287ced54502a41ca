#include "test_schema.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace tipperary::transcoder::testing {

std::shared_ptr<const Schema> SchemaFromDescriptorSet(const std::string& path) {
  auto set = ReadDescriptorSetFile(path);
  if (!set.ok()) {
    ADD_FAILURE() << set.status();
    std::abort();
  }
  auto s = Schema::Create({*set});
  if (!s.ok()) {
    ADD_FAILURE() << s.status();
    std::abort();
  }
  return *s;
}

std::shared_ptr<const Schema> TestSchema() {
  static const std::shared_ptr<const Schema> schema =
      SchemaFromDescriptorSet(TIPPERARY_TEST_DESCRIPTOR_SET);
  return schema;
}

std::shared_ptr<const RouteTable> TestRoutes() {
  static const std::shared_ptr<const RouteTable> table = [] {
    RouteTableOptions options;
    options.allow_grpc_method_paths = true;
    auto t = RouteTable::Build(TestSchema(), {}, options);
    if (!t.ok()) {
      ADD_FAILURE() << t.status();
      std::abort();
    }
    return *t;
  }();
  return table;
}

const Route& RouteFor(const RouteTable& table, const std::string& method, const std::string& path) {
  RouteTable::MatchResult m = table.Match(method, path);
  if (m.route == nullptr) {
    ADD_FAILURE() << "no route for " << method << " " << path;
    std::abort();
  }
  return *m.route;
}

}  // namespace tipperary::transcoder::testing

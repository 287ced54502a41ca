#include "transcoder_world.h"

#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"

namespace tipperary::fuzz {

using transcoder::RouteSpec;
using transcoder::RouteTable;
using transcoder::RouteTableOptions;
using transcoder::Schema;

void Fail(std::string_view what, std::string_view detail) {
  std::string shown =
      absl::CHexEscape(absl::string_view(detail.data(), std::min<size_t>(detail.size(), 2000)));
  std::fprintf(stderr, "FUZZ FINDING: %.*s\n  %s\n", static_cast<int>(what.size()), what.data(),
               shown.c_str());
  std::abort();
}

std::shared_ptr<const Schema> FuzzSchema() {
  static const std::shared_ptr<const Schema> schema = [] {
    // protobuf logs an ERROR per malformed message it is asked to parse (e.g. invalid UTF-8 in
    // a grpc-status-details-bin): noise at fuzzing speed. Fatal ones still abort.
    google::protobuf::SetLogHandler(nullptr);
    std::vector<std::string> paths = {TIPPERARY_TEST_DESCRIPTOR_SET,
                                      TIPPERARY_EMBEDDING_DESCRIPTOR_SET};
    if (const char* env = std::getenv("TIPPERARY_FUZZ_DESCRIPTOR_SETS"); env && *env) {
      paths = absl::StrSplit(env, ':', absl::SkipEmpty());
    }
    std::vector<google::protobuf::FileDescriptorSet> sets;
    for (const std::string& path : paths) {
      auto set = transcoder::ReadDescriptorSetFile(path);
      if (!set.ok()) Fail("cannot read a descriptor set", set.status().ToString());
      sets.push_back(*std::move(set));
    }
    auto s = Schema::Create(sets);
    if (!s.ok()) Fail("cannot build the schema", s.status().ToString());
    return *s;
  }();
  return schema;
}

std::shared_ptr<const RouteTable> FuzzRoutes() {
  static const std::shared_ptr<const RouteTable> table = [] {
    std::vector<RouteSpec> config = {
        // Overrides the annotation route of the same shape (GET /v1/names/{name}).
        {"GET",
         "/v1/names/{name}",
         "tipperary.testing.v1.TestService/GetThing",
         "",
         "",
         {},
         {},
         {}},
        {"GET",
         "/v1/sizes/{name=shelves/*/things/*}",
         "tipperary.testing.v1.TestService/GetThing",
         "",
         "size",
         {},
         {},
         {}},
        {"POST",
         "/v1/echo/{f_string}/{f_nested.child.name=**}:deep",
         "tipperary.testing.v1.TestService/Echo",
         "r_nested",
         "m_string_int64",
         {},
         {},
         {}},
        {"PUT",
         "/v1/echo/{f_int32}/repeated",
         "tipperary.testing.v1.TestService/Echo",
         "r_string",
         "r_nested",
         {},
         {},
         {}},
        {"POST",
         "/v1/tokenize/{model}",
         "tipperary.embedding.v1.EmbeddingService/Tokenize",
         "*",
         "tokens",
         {},
         {},
         {}},
    };
    RouteTableOptions options;
    options.allow_grpc_method_paths = true;
    auto t = RouteTable::Build(FuzzSchema(), config, options);
    if (!t.ok()) Fail("cannot build the route table", t.status().ToString());
    return *t;
  }();
  return table;
}

namespace {

std::string_view NextLine(std::string_view* in) {
  const size_t nl = in->find('\n');
  std::string_view line = in->substr(0, nl);
  in->remove_prefix(nl == std::string_view::npos ? in->size() : nl + 1);
  return line;
}

std::string_view NextWord(std::string_view* in) {
  const size_t sp = in->find(' ');
  std::string_view word = in->substr(0, sp);
  in->remove_prefix(sp == std::string_view::npos ? in->size() : sp + 1);
  return word;
}

}  // namespace

FuzzRequest ParseFuzzRequest(std::string_view input) {
  FuzzRequest r;
  std::string_view line = NextLine(&input);
  r.method = NextWord(&line);
  std::string_view target = NextWord(&line);
  r.flags = line;
  const size_t q = target.find('?');
  r.path = target.substr(0, q);
  r.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  r.content_type = NextLine(&input);
  r.body = input;
  return r;
}

bool HasFlag(std::string_view flags, char flag) {
  return flags.find(flag) != std::string_view::npos;
}

transcoder::TranscoderOptions OptionsFromFlags(std::string_view flags) {
  transcoder::TranscoderOptions o;
  o.ignore_unknown_fields = HasFlag(flags, 'i');
  o.preserve_proto_field_names = HasFlag(flags, 'p');
  o.always_print_primitive_fields = HasFlag(flags, 'a');
  o.enums_as_ints = HasFlag(flags, 'e');
  o.max_depth = HasFlag(flags, 'd') ? 4 : 64;
  return o;
}

}  // namespace tipperary::fuzz

// What the transcoder fuzz targets share: the schema (the test service and the worker's API,
// from their descriptor sets, as an operator hands them to the proxy), its route table, and
// the input format, one HTTP request in readable text so that seeds can be written by hand:
//
//   METHOD TARGET [FLAGS]\n      e.g. "PATCH /v1/shelves/1/things/2?pretty ip"
//   CONTENT-TYPE\n               e.g. "application/json" (may be empty)
//   BODY                         the rest, any bytes
//
// TARGET is split at its first '?' into path and query, as the proxy does. FLAGS pick the
// transcoder options: i ignore_unknown_fields, p preserve_proto_field_names,
// a always_print_primitive_fields, e enums_as_ints, d max_depth 4 (else 64), r pretty output.
#pragma once

#include <memory>
#include <string_view>

#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::fuzz {

// tipperary.testing.v1 and tipperary.embedding.v1, loaded once. The descriptor sets come from
// the build tree (TIPPERARY_TEST_DESCRIPTOR_SET, TIPPERARY_EMBEDDING_DESCRIPTOR_SET) unless
// TIPPERARY_FUZZ_DESCRIPTOR_SETS names others (colon-separated). Aborts when they cannot load.
std::shared_ptr<const transcoder::Schema> FuzzSchema();

// The routes of FuzzSchema(): annotations, POST /pkg.Svc/Method for every method, and a few
// config routes (one overriding an annotation, one with a response_body, one with a verb).
std::shared_ptr<const transcoder::RouteTable> FuzzRoutes();

struct FuzzRequest {
  std::string_view method;
  std::string_view path;
  std::string_view query;
  std::string_view flags;
  std::string_view content_type;
  std::string_view body;
};

FuzzRequest ParseFuzzRequest(std::string_view input);

bool HasFlag(std::string_view flags, char flag);
transcoder::TranscoderOptions OptionsFromFlags(std::string_view flags);

// Prints what broke (the detail escaped, cut at 2000 bytes) and aborts: a finding.
[[noreturn]] void Fail(std::string_view what, std::string_view detail);

}  // namespace tipperary::fuzz

// An OpenAPI 3.1 document of the HTTP API a route table serves, rendered from its descriptors
// (whether they came from a descriptor-set file or from server reflection): paths and
// parameters from the path templates, query parameters the way protoc-gen-openapiv2 lists them,
// bodies and responses as the proto3 JSON mapping the transcoder speaks, the error shape of each
// route, and server streams with the content types the proxy serves. docs/openapi.md has the
// mapping table and its limits.
//
//   OpenApiOptions options;
//   options.title = "Things API";
//   std::string json = RenderOpenApi(*routing->routes, options);
//
// Pure conversion: no I/O. The caller caches the result per route table (it is immutable).
#pragma once

#include <string>
#include <vector>

#include "tipperary/transcoder/route_table.h"

namespace tipperary::transcoder {

struct OpenApiOptions {
  std::string title = "tipperary-proxy";  // info.title
  std::string version = "1.0.0";          // info.version: the API's, not the proxy's.
  std::string description;                // info.description; "" = none.
  std::vector<std::string> servers;       // servers[].url; empty = none (same origin).
  // The transcoder's JSON options: field names in bodies, query parameters and schemas are the
  // proto names instead of the lowerCamelCase JSON names; enums print as numbers.
  bool preserve_proto_field_names = false;
  bool enums_as_ints = false;
  // streaming.json_format: "array" or "grpc_gateway" (the shape of application/json streams).
  std::string stream_json_format = "array";
  // Between the values of a path variable bound to a repeated field (',' is OpenAPI's "simple"
  // style; other separators are described).
  char repeated_path_param_separator = ',';
  size_t max_depth = 16;  // Nesting walked when listing query parameters (recursive messages).
};

// The document as compact JSON. Never fails: a route it cannot express (an HTTP method OpenAPI
// has no operation for, such as LOCK) is listed under the top-level x-tipperary-unlisted-routes.
std::string RenderOpenApi(const RouteTable& routes, const OpenApiOptions& options);

}  // namespace tipperary::transcoder

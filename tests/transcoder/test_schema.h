// Shared fixtures for the transcoder tests: the test service schema and helpers.
#pragma once

#include <memory>
#include <string>

#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder::testing {

// The schema of a descriptor-set file, or an aborted test.
std::shared_ptr<const Schema> SchemaFromDescriptorSet(const std::string& path);

// The schema from ${CMAKE_BINARY_DIR}/proto/test_service.pb (as an operator provides it).
std::shared_ptr<const Schema> TestSchema();

// The annotation route table of TestSchema() (grpc method paths on).
std::shared_ptr<const RouteTable> TestRoutes();

// The route for an HTTP method + path, or a test failure.
const Route& RouteFor(const RouteTable& table, const std::string& method, const std::string& path);

}  // namespace tipperary::transcoder::testing

// A request's batching lane, from what its client said: the request's own field first, else its
// `priority` metadata, which the proxy fills from RFC 9218's `Priority` request header
// (`u=0`..`u=7`, lower is more urgent, 3 when absent): urgency 4 and above is bulk.
//
//   options.priority = ResolvePriority(options.priority, context->client_metadata());
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string_view>

#include "tipperary/batcher/batch.h"

namespace tipperary::worker {

// The lane an RFC 9218 Priority field value asks for; nullopt when it has no valid `u` (an
// invalid field is ignored, as RFC 9218 section 4 says; it then means the default urgency).
std::optional<batcher::Priority> PriorityFromField(std::string_view value);

// `requested` when set, else the `priority` metadata's lane, else interactive.
batcher::Priority ResolvePriority(
    std::optional<batcher::Priority> requested,
    const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata);

}  // namespace tipperary::worker

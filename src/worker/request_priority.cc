#include "request_priority.h"

#include "tipperary/common/priority_field.h"

namespace tipperary::worker {

std::optional<batcher::Priority> PriorityFromField(std::string_view value) {
  const std::optional<int> urgency = common::UrgencyFromField(value);
  if (!urgency) return std::nullopt;
  return *urgency >= common::kFirstBulkUrgency ? batcher::Priority::kBulk
                                               : batcher::Priority::kInteractive;
}

batcher::Priority ResolvePriority(
    std::optional<batcher::Priority> requested,
    const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata) {
  if (requested) return *requested;
  auto it = client_metadata.find("priority");
  if (it != client_metadata.end()) {
    if (auto lane = PriorityFromField(std::string_view(it->second.data(), it->second.size()))) {
      return *lane;
    }
  }
  return batcher::Priority::kInteractive;
}

}  // namespace tipperary::worker

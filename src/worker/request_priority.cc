#include "request_priority.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tipperary::worker {

constexpr int kFirstBulkUrgency = 4;  // RFC 9218's default is 3: anything less urgent is bulk.

std::optional<batcher::Priority> PriorityFromField(std::string_view value) {
  std::optional<int> urgency;
  // A Structured Fields dictionary (RFC 8941): members separated by commas, `u` an integer 0-7,
  // `i` (incremental) irrelevant here. The last `u` wins, as for any repeated dictionary key.
  for (absl::string_view member :
       absl::StrSplit(absl::string_view(value.data(), value.size()), ',')) {
    member = absl::StripAsciiWhitespace(member);
    // Parameters of a member (";...") do not matter for `u`.
    member = member.substr(0, member.find(';'));
    if (!absl::ConsumePrefix(&member, "u=")) continue;
    int u = 0;
    if (member.size() != 1 || !absl::SimpleAtoi(member, &u) || u < 0 || u > 7) return std::nullopt;
    urgency = u;
  }
  if (!urgency) return std::nullopt;
  return *urgency >= kFirstBulkUrgency ? batcher::Priority::kBulk : batcher::Priority::kInteractive;
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

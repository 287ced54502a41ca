#include "tipperary/common/priority_field.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tipperary::common {

std::optional<int> UrgencyFromField(std::string_view value) {
  std::optional<int> urgency;
  for (absl::string_view member :
       absl::StrSplit(absl::string_view(value.data(), value.size()), ',')) {
    member = absl::StripAsciiWhitespace(member);
    member = member.substr(0, member.find(';'));  // parameters do not matter for `u`
    if (!absl::ConsumePrefix(&member, "u=")) continue;
    int u = 0;
    if (member.size() != 1 || !absl::SimpleAtoi(member, &u) || u < 0 || u > 7) return std::nullopt;
    urgency = u;
  }
  return urgency;
}

}  // namespace tipperary::common

// RFC 9218's `Priority` request header, as far as Tipperary reads it: the urgency `u` (0 most
// urgent .. 7 least, 3 when absent). Urgency 4 and above is bulk work: the worker batches it in
// its bulk lane, and both processes do its CPU work at idle OS priority where configured.
//
//   if (IsBulkField(request[http::field::priority])) ...   // "u=7", "i, u=5"
#pragma once

#include <optional>
#include <string_view>

namespace tipperary::common {

// RFC 9218's default urgency is 3: anything less urgent is bulk.
inline constexpr int kFirstBulkUrgency = 4;

// The urgency a Priority field value asks for; nullopt when it has no valid `u` (an invalid
// field is ignored, as RFC 9218 section 4 says; it then means the default urgency). A Structured
// Fields dictionary (RFC 8941): members separated by commas, parameters after ';' ignored, the
// last `u` wins.
std::optional<int> UrgencyFromField(std::string_view value);

// Whether the field asks for bulk (urgency >= kFirstBulkUrgency).
inline bool IsBulkField(std::string_view value) {
  const std::optional<int> u = UrgencyFromField(value);
  return u.has_value() && *u >= kFirstBulkUrgency;
}

}  // namespace tipperary::common

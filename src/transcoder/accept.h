// Accept header matching (RFC 9110 §12.5.1), for choosing a response format.
//
//   AcceptQuality("text/*;q=0.5, text/event-stream", "text/event-stream") == 1000
//   AcceptQuality("application/json;q=0", "application/json") == 0
//   AcceptQuality("image/png", "application/json") == -1
#pragma once

#include <string_view>

namespace tipperary::transcoder::internal {

// The quality (0..1000, thousandths) that the Accept value gives `media_type` (lower-case
// "type/subtype"): the weight of the most specific range matching it (type/subtype over type/*
// over */*; media-type parameters are not compared). -1 when no range matches. Ranges that are
// malformed (no '/', a bad q-value) are skipped, as a lenient parser must: Accept is advisory.
int AcceptQuality(std::string_view accept, std::string_view media_type);

}  // namespace tipperary::transcoder::internal

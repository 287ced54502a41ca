// HTTP weights (RFC 9110 §12.4.2), shared by every header that carries them (Accept,
// Accept-Encoding, TE), so they are read one way everywhere.
//
//   ParseQValue("0.5") == 500;  ParseQValue("1") == 1000;  ParseQValue("1.5") == -1
#pragma once

#include <string_view>

namespace tipperary::common {

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 when
// malformed (callers skip the element: a weight is advisory, never fatal).
int ParseQValue(std::string_view text);

}  // namespace tipperary::common

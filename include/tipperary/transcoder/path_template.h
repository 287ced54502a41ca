// A google.api.http path template ("/v1/{name=shelves/*/books/*}:publish"): its parser and
// its matcher, which returns the variable bindings of a request path.
//
//   absl::StatusOr<PathTemplate> t = PathTemplate::Parse("/v1/{name=shelves/*}/books");
//   std::optional<PathTemplate::Bindings> b = t->Match("/v1/shelves/s1/books");
//   // *b == {{"name", "shelves/s1"}}
//
// Grammar (google/api/http.proto):
//   Template = "/" [ Segments ] [ Verb ] ;   Segments = Segment { "/" Segment } ;
//   Segment  = "*" | "**" | LITERAL | Variable ;   Variable = "{" FieldPath [ "=" Segments ] "}" ;
//   FieldPath = IDENT { "." IDENT } ;   Verb = ":" LITERAL ;
// "**" must be the last segment. Variables do not nest. A FieldPath appears at most once.
//
// Percent-decoding of bound values follows http.proto (as Envoy and grpc-gateway do): a variable
// spanning one segment ({x} or {x=*}) decodes every escape, "%2F" included; a variable that may
// span several segments ("**" or more than one segment) decodes every escape except "%2F"/"%2f",
// which stay encoded so the value keeps its segment structure. Literal segments are compared
// verbatim. "*" and variables never match an empty segment; "**" matches zero or more.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tipperary::transcoder {

class PathTemplate {
 public:
  enum class SegmentKind { kLiteral, kWildcard /* * */, kDoubleWildcard /* ** */ };
  struct Segment {
    SegmentKind kind;
    std::string literal;  // kLiteral only.
    bool operator==(const Segment&) const = default;
  };
  struct Variable {
    std::string field_path;  // "a.b.c"
    size_t start_segment;    // Index into segments().
    size_t end_segment;      // One past the last; may equal segments().size() for "**".
    bool multi_segment;      // Spans more than one segment or ends in "**".
  };
  using Bindings = std::vector<std::pair<std::string, std::string>>;

  static absl::StatusOr<PathTemplate> Parse(std::string_view text);

  // `path` must not include the query string. Returns nullopt when it does not match.
  std::optional<Bindings> Match(std::string_view path) const;

  const std::string& text() const { return text_; }
  const std::vector<Segment>& segments() const { return segments_; }
  const std::vector<Variable>& variables() const { return variables_; }
  const std::string& verb() const { return verb_; }

  // Segments and verb only, variable names erased ("/v1/*/things/*:run"): two templates with
  // the same shape match exactly the same paths.
  std::string Shape() const;

  // Splits a request path into segments (after the leading '/') and a verb: when the last
  // segment contains ':' the non-empty part after the last ':' is the candidate verb. Exposed for
  // the route table, which matches many templates against one split path.
  struct SplitPath {
    std::vector<std::string_view> segments;
    std::string_view verb;               // Empty when the last segment has no ':'.
    std::string_view last_without_verb;  // The last segment before its ':verb'.
    bool has_verb = false;
  };
  static bool Split(std::string_view path, SplitPath* out);

  // Matches pre-split segments; `use_verb` selects whether the verb was stripped.
  std::optional<Bindings> MatchSplit(const SplitPath& split, bool use_verb) const;

 private:
  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

// Percent-decodes `in`; with keep_slash, "%2F"/"%2f" stay encoded. Invalid escapes are kept
// verbatim. Exposed for tests and for query strings (which also map '+' to ' ' with plus_space).
std::string PercentDecode(std::string_view in, bool keep_slash, bool plus_space = false);

// False when some '%' is not followed by two hex digits: such a path is the client's error
// (400), not a literal to pass upstream.
bool IsValidPercentEncoding(std::string_view in);

}  // namespace tipperary::transcoder

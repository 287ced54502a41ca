#include "tipperary/transcoder/path_template.h"

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tipperary::transcoder {
namespace {

constexpr size_t kMaxTemplateSegments = 256;

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

bool IsLiteralChar(char c) {
  // Anything a path segment may hold except the template's own syntax.
  return c != '/' && c != '{' && c != '}' && c != '*' && c != ':' && c != '?' && c != '#' &&
         c != '=' && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
}

bool ValidFieldPath(std::string_view path) {
  if (path.empty()) return false;
  bool at_start = true;
  for (char c : path) {
    if (c == '.') {
      if (at_start) return false;
      at_start = true;
    } else if (at_start) {
      if (!IsIdentStart(c)) return false;
      at_start = false;
    } else if (!IsIdentChar(c)) {
      return false;
    }
  }
  return !at_start;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::Status Error(std::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat("invalid path template \"", std::string(text_),
                                                   "\" at offset ", pos_, ": ", std::string(why)));
  }

  // Segments = Segment { "/" Segment }, stopping before '}' , ':' or the end.
  absl::Status ParseSegments(std::vector<PathTemplate::Segment>* out, bool in_variable) {
    while (true) {
      if (out->size() >= kMaxTemplateSegments) return Error("too many segments");
      if (pos_ < text_.size() && text_[pos_] == '{') {
        if (in_variable) return Error("variables cannot nest");
        absl::Status s = ParseVariable(out);
        if (!s.ok()) return s;
      } else if (text_.substr(pos_, 2) == "**") {
        out->push_back({PathTemplate::SegmentKind::kDoubleWildcard, ""});
        pos_ += 2;
      } else if (pos_ < text_.size() && text_[pos_] == '*') {
        out->push_back({PathTemplate::SegmentKind::kWildcard, ""});
        pos_ += 1;
      } else {
        size_t start = pos_;
        while (pos_ < text_.size() && IsLiteralChar(text_[pos_])) ++pos_;
        if (pos_ == start) {
          return Error(pos_ >= text_.size() || text_[pos_] == '/' || text_[pos_] == '}'
                           ? "empty segment"
                           : "unexpected character");
        }
        out->push_back(
            {PathTemplate::SegmentKind::kLiteral, std::string(text_.substr(start, pos_ - start))});
      }
      if (pos_ >= text_.size()) return absl::OkStatus();
      char c = text_[pos_];
      if (c == '/') {
        ++pos_;
        continue;
      }
      if (c == '}' && in_variable) return absl::OkStatus();
      if (c == ':' && !in_variable) return absl::OkStatus();
      return Error("unexpected character");
    }
  }

  absl::Status ParseVariable(std::vector<PathTemplate::Segment>* out) {
    ++pos_;  // '{'
    size_t start = pos_;
    while (pos_ < text_.size() && (IsIdentChar(text_[pos_]) || text_[pos_] == '.')) ++pos_;
    std::string field(text_.substr(start, pos_ - start));
    if (!ValidFieldPath(field)) return Error("invalid variable field path");
    PathTemplate::Variable var{field, out->size(), 0, false};
    if (pos_ < text_.size() && text_[pos_] == '=') {
      ++pos_;
      absl::Status s = ParseSegments(out, /*in_variable=*/true);
      if (!s.ok()) return s;
    } else {
      out->push_back({PathTemplate::SegmentKind::kWildcard, ""});
    }
    if (pos_ >= text_.size() || text_[pos_] != '}') return Error("unterminated variable");
    ++pos_;
    var.end_segment = out->size();
    var.multi_segment = var.end_segment - var.start_segment > 1 ||
                        out->back().kind == PathTemplate::SegmentKind::kDoubleWildcard;
    if (!seen_.insert(field).second) return Error(absl::StrCat("variable ", field, " repeated"));
    variables_.push_back(std::move(var));
    return absl::OkStatus();
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::vector<PathTemplate::Variable> variables_;
  absl::flat_hash_set<std::string> seen_;
};

}  // namespace

std::string PercentDecode(std::string_view in, bool keep_slash, bool plus_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        char decoded = static_cast<char>(hi * 16 + lo);
        if (keep_slash && decoded == '/') {
          out.append(in.substr(i, 3));
        } else {
          out.push_back(decoded);
        }
        i += 2;
        continue;
      }
    }
    out.push_back(plus_space && c == '+' ? ' ' : c);
  }
  return out;
}

bool IsValidPercentEncoding(std::string_view in) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') continue;
    if (i + 2 >= in.size() || HexValue(in[i + 1]) < 0 || HexValue(in[i + 2]) < 0) return false;
    i += 2;
  }
  return true;
}

absl::StatusOr<PathTemplate> PathTemplate::Parse(std::string_view text) {
  Parser p(text);
  if (text.empty() || text[0] != '/') return p.Error("must start with '/'");
  PathTemplate t;
  t.text_ = std::string(text);
  p.pos_ = 1;
  if (text.size() > 1) {
    if (text[1] == ':') return p.Error("verb without segments");
    absl::Status s = p.ParseSegments(&t.segments_, /*in_variable=*/false);
    if (!s.ok()) return s;
    if (p.pos_ < text.size()) {  // ':' verb
      ++p.pos_;
      size_t start = p.pos_;
      while (p.pos_ < text.size() && IsLiteralChar(text[p.pos_])) ++p.pos_;
      if (p.pos_ == start) return p.Error("empty verb");
      if (p.pos_ != text.size()) return p.Error("the verb must end the template");
      t.verb_ = std::string(text.substr(start));
    }
  }
  for (size_t i = 0; i + 1 < t.segments_.size(); ++i) {
    if (t.segments_[i].kind == SegmentKind::kDoubleWildcard) {
      return p.Error("\"**\" must be the last segment");
    }
  }
  t.variables_ = std::move(p.variables_);
  return t;
}

std::string PathTemplate::Shape() const {
  std::string out;
  for (const Segment& s : segments_) {
    out.push_back('/');
    switch (s.kind) {
      case SegmentKind::kLiteral:
        out.append(s.literal);
        break;
      case SegmentKind::kWildcard:
        out.push_back('*');
        break;
      case SegmentKind::kDoubleWildcard:
        out.append("**");
        break;
    }
  }
  if (segments_.empty()) out.push_back('/');
  if (!verb_.empty()) absl::StrAppend(&out, ":", verb_);
  return out;
}

bool PathTemplate::Split(std::string_view path, SplitPath* out) {
  out->segments.clear();
  out->verb = {};
  out->last_without_verb = {};
  out->has_verb = false;
  if (path.empty() || path[0] != '/') return false;
  path.remove_prefix(1);
  if (path.empty()) return true;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out->segments.push_back(path.substr(start));
      break;
    }
    out->segments.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  std::string_view last = out->segments.back();
  size_t colon = last.rfind(':');
  // A ':' that ends the path introduces no verb (a template's verb is never empty), so the colon
  // stays in the segment. As an empty verb, it had the route table find a template without a
  // verb for the segment minus its ':', which MatchSplit then refused: "GET /v1/names/abc:",
  // which GET /v1/names/{name} matches, was answered 405 Allow: GET.
  if (colon != std::string_view::npos && colon + 1 < last.size()) {
    out->has_verb = true;
    out->verb = last.substr(colon + 1);
    out->last_without_verb = last.substr(0, colon);
  }
  return true;
}

std::optional<PathTemplate::Bindings> PathTemplate::MatchSplit(const SplitPath& split,
                                                               bool use_verb) const {
  if (use_verb) {
    if (!split.has_verb || verb_.empty() || split.verb != verb_) return std::nullopt;
  } else if (!verb_.empty()) {
    return std::nullopt;
  }
  const size_t n = split.segments.size();
  auto seg = [&](size_t i) {
    return (use_verb && i + 1 == n) ? split.last_without_verb : split.segments[i];
  };
  const bool tail = !segments_.empty() && segments_.back().kind == SegmentKind::kDoubleWildcard;
  const size_t fixed = tail ? segments_.size() - 1 : segments_.size();
  if (tail ? n < fixed : n != fixed) return std::nullopt;
  for (size_t i = 0; i < fixed; ++i) {
    const Segment& s = segments_[i];
    std::string_view p = seg(i);
    if (s.kind == SegmentKind::kLiteral ? p != s.literal : p.empty()) return std::nullopt;
  }
  Bindings bindings;
  bindings.reserve(variables_.size());
  for (const Variable& v : variables_) {
    size_t end = v.end_segment;
    if (tail && end == segments_.size()) end = n;  // "**" takes the rest.
    std::string joined;
    for (size_t i = v.start_segment; i < end; ++i) {
      if (i > v.start_segment) joined.push_back('/');
      std::string_view p = seg(i);
      joined.append(p.data(), p.size());
    }
    bindings.emplace_back(v.field_path, PercentDecode(joined, v.multi_segment));
  }
  return bindings;
}

std::optional<PathTemplate::Bindings> PathTemplate::Match(std::string_view path) const {
  SplitPath split;
  if (!Split(path, &split)) return std::nullopt;
  if (!verb_.empty()) return MatchSplit(split, true);
  return MatchSplit(split, false);
}

}  // namespace tipperary::transcoder

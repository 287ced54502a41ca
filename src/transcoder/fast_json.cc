#include "fast_json.h"

#include <google/protobuf/descriptor.pb.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"

namespace tipperary::transcoder::internal {
namespace {

namespace pb = google::protobuf;

// The field kinds the fast path handles; everything else is kUnsupported.
enum class Kind {
  kUnsupported,
  kString,
  kBool,
  kInt32,
  kInt64,
  kUInt32,
  kUInt64,
  kSInt32,
  kSInt64,
  kFixed32,
  kFixed64,
  kSFixed32,
  kSFixed64,
  kEnum,
  kMessage,
  // Printing only (JSON -> binary leaves them to protobuf's parser: its range checks, "NaN",
  // quoted numbers, duration syntax):
  kFloat,
  kDouble,
  kDuration,   // google.protobuf.Duration, as "1.5s"
  kValue,      // google.protobuf.Value holding a number, string, bool, null or list
  kListValue,  // google.protobuf.ListValue
};

bool PrintOnly(Kind kind) {
  return kind == Kind::kFloat || kind == Kind::kDouble || kind == Kind::kDuration ||
         kind == Kind::kValue || kind == Kind::kListValue;
}

constexpr int kVarint = 0;
constexpr int kFixed64Wire = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32Wire = 5;

// Plain proto3 messages only: proto2 brings required fields and closed enums, map entries and
// google.protobuf.* types have their own JSON forms.
bool IsPlainMessage(const pb::Descriptor* type) {
  return type->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO3 &&
         !type->options().map_entry() && !absl::StartsWith(type->full_name(), "google.protobuf.");
}

// printing: binary -> JSON, where a proto3 `optional` field prints as any other field on the
// wire (its presence is being there); parsing needs protobuf's "already set" checks for it.
Kind KindOf(const pb::FieldDescriptor* f, bool printing = false) {
  const pb::OneofDescriptor* oneof = printing ? f->real_containing_oneof() : f->containing_oneof();
  if (oneof != nullptr || f->is_map() || f->is_extension()) return Kind::kUnsupported;
  switch (f->type()) {
    case pb::FieldDescriptor::TYPE_STRING:
      return Kind::kString;
    case pb::FieldDescriptor::TYPE_BOOL:
      return Kind::kBool;
    case pb::FieldDescriptor::TYPE_INT32:
      return Kind::kInt32;
    case pb::FieldDescriptor::TYPE_INT64:
      return Kind::kInt64;
    case pb::FieldDescriptor::TYPE_UINT32:
      return Kind::kUInt32;
    case pb::FieldDescriptor::TYPE_UINT64:
      return Kind::kUInt64;
    case pb::FieldDescriptor::TYPE_SINT32:
      return Kind::kSInt32;
    case pb::FieldDescriptor::TYPE_SINT64:
      return Kind::kSInt64;
    case pb::FieldDescriptor::TYPE_FIXED32:
      return Kind::kFixed32;
    case pb::FieldDescriptor::TYPE_FIXED64:
      return Kind::kFixed64;
    case pb::FieldDescriptor::TYPE_SFIXED32:
      return Kind::kSFixed32;
    case pb::FieldDescriptor::TYPE_SFIXED64:
      return Kind::kSFixed64;
    case pb::FieldDescriptor::TYPE_ENUM:
      return Kind::kEnum;
    case pb::FieldDescriptor::TYPE_MESSAGE:
      switch (f->message_type()->well_known_type()) {
        case pb::Descriptor::WELLKNOWNTYPE_DURATION:
          return Kind::kDuration;
        case pb::Descriptor::WELLKNOWNTYPE_VALUE:
          return Kind::kValue;
        case pb::Descriptor::WELLKNOWNTYPE_LISTVALUE:
          return Kind::kListValue;
        default:
          return IsPlainMessage(f->message_type()) ? Kind::kMessage : Kind::kUnsupported;
      }
    case pb::FieldDescriptor::TYPE_FLOAT:
      return Kind::kFloat;
    case pb::FieldDescriptor::TYPE_DOUBLE:
      return Kind::kDouble;
    default:  // bytes (base64), groups.
      return Kind::kUnsupported;
  }
}

int WireTypeOf(Kind kind) {
  switch (kind) {
    case Kind::kString:
    case Kind::kMessage:
    case Kind::kDuration:
    case Kind::kValue:
    case Kind::kListValue:
      return kLengthDelimited;
    case Kind::kFixed32:
    case Kind::kSFixed32:
    case Kind::kFloat:
      return kFixed32Wire;
    case Kind::kFixed64:
    case Kind::kSFixed64:
    case Kind::kDouble:
      return kFixed64Wire;
    default:
      return kVarint;
  }
}

bool IsPackable(Kind kind) { return WireTypeOf(kind) != kLengthDelimited; }

// Printable ASCII that needs no JSON escape on input.
bool IsPlainChar(char c) { return c >= 0x20 && c <= 0x7E && c != '"' && c != '\\'; }

// A small set of fields already seen in one JSON object or message.
using SeenFields = absl::InlinedVector<const pb::FieldDescriptor*, 16>;

bool MarkSeen(SeenFields& seen, const pb::FieldDescriptor* f) {
  for (const pb::FieldDescriptor* s : seen) {
    if (s == f) return false;
  }
  seen.push_back(f);
  return true;
}

// ---- Encoding ----

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(std::string* out, int number, int wire_type) {
  PutVarint(out, (static_cast<uint64_t>(number) << 3) | static_cast<uint64_t>(wire_type));
}

void PutFixed(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// protobuf's converter finds a JSON key among the fields' JSON names first (the first field
// that has it), and only then among proto field names.
const pb::FieldDescriptor* LookupJsonKey(const pb::Descriptor* type, std::string_view key) {
  const int n = type->field_count();
  for (int i = 0; i < n; ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    if (f->json_name() == key) return f;
  }
  for (int i = 0; i < n; ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    if (f->name() == key) return f;
  }
  return nullptr;
}

// Strict JSON, a subset of what protobuf's parser accepts.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool Consume(char c) {
    SkipWhitespace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  bool AtEnd() {
    SkipWhitespace();
    return p_ == end_;
  }

  // A string without escapes of printable ASCII; *s excludes the quotes.
  bool PlainString(std::string_view* s) {
    if (!Consume('"')) return false;
    const char* start = p_;
    while (p_ < end_ && IsPlainChar(*p_)) ++p_;
    if (p_ == end_ || *p_ != '"') return false;
    *s = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }

  // true or false.
  bool Bool(bool* value) {
    SkipWhitespace();
    if (Word("true")) {
      *value = true;
      return true;
    }
    if (Word("false")) {
      *value = false;
      return true;
    }
    return false;
  }

  // An integer written -?(0|[1-9][0-9]*), bare or quoted (protobuf takes both for every integer
  // type). "-0", fractions and exponents are left to protobuf.
  bool Integer(bool* negative, uint64_t* magnitude) {
    SkipWhitespace();
    bool quoted = p_ < end_ && *p_ == '"';
    if (quoted) ++p_;
    *negative = p_ < end_ && *p_ == '-';
    if (*negative) ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    if (*p_ == '0' && (*negative || (p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9'))) {
      return false;
    }
    uint64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      auto digit = static_cast<uint64_t>(*p_ - '0');
      if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
      v = v * 10 + digit;
      ++p_;
    }
    if (quoted) {
      if (p_ == end_ || *p_ != '"') return false;
      ++p_;
    } else if (!AtDelimiter()) {
      return false;
    }
    *magnitude = v;
    return true;
  }

  bool Peek(char c) {
    SkipWhitespace();
    return p_ < end_ && *p_ == c;
  }

 private:
  void SkipWhitespace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool AtDelimiter() const {
    return p_ == end_ || *p_ == ',' || *p_ == '}' || *p_ == ']' || *p_ == ' ' || *p_ == '\n' ||
           *p_ == '\r' || *p_ == '\t';
  }

  bool Word(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return AtDelimiter();
  }

  const char* p_;
  const char* end_;
};

class Encoder {
 public:
  Encoder(std::string_view json, size_t max_depth) : reader_(json), max_depth_(max_depth) {}

  bool Run(const pb::Descriptor* type, std::string* out) {
    return IsPlainMessage(type) && Message(type, 1, out) && reader_.AtEnd();
  }

 private:
  bool Message(const pb::Descriptor* type, size_t depth, std::string* out) {
    if (depth > max_depth_ || !reader_.Consume('{')) return false;
    if (reader_.Consume('}')) return true;
    SeenFields seen;
    for (;;) {
      std::string_view key;
      if (!reader_.PlainString(&key) || !reader_.Consume(':')) return false;
      const pb::FieldDescriptor* f = LookupJsonKey(type, key);
      if (f == nullptr || !MarkSeen(seen, f)) return false;
      const Kind kind = KindOf(f);
      if (kind == Kind::kUnsupported || PrintOnly(kind)) return false;
      if (f->is_repeated()) {
        // Elements go out one tag each, never packed, as protobuf's converter writes them.
        if (!reader_.Consume('[')) return false;
        if (!reader_.Consume(']')) {
          do {
            if (!Value(f, kind, depth, out)) return false;
          } while (reader_.Consume(','));
          if (!reader_.Consume(']')) return false;
        }
      } else if (!Value(f, kind, depth, out)) {
        return false;
      }
      if (reader_.Consume(',')) continue;
      return reader_.Consume('}');
    }
  }

  bool Value(const pb::FieldDescriptor* f, Kind kind, size_t depth, std::string* out) {
    const int number = f->number();
    switch (kind) {
      case Kind::kString: {
        std::string_view s;
        if (!reader_.PlainString(&s)) return false;
        PutTag(out, number, kLengthDelimited);
        PutVarint(out, s.size());
        out->append(s.data(), s.size());
        return true;
      }
      case Kind::kBool: {
        bool b = false;
        if (!reader_.Bool(&b)) return false;
        PutTag(out, number, kVarint);
        out->push_back(b ? '\1' : '\0');
        return true;
      }
      case Kind::kEnum: {
        std::string_view name;
        if (!reader_.Peek('"') || !reader_.PlainString(&name)) return false;
        const pb::EnumValueDescriptor* value = f->enum_type()->FindValueByName(std::string(name));
        if (value == nullptr) return false;
        PutTag(out, number, kVarint);
        PutVarint(out, static_cast<uint64_t>(static_cast<int64_t>(value->number())));
        return true;
      }
      case Kind::kMessage: {
        if (!reader_.Peek('{')) return false;
        std::string child;
        if (!Message(f->message_type(), depth + 1, &child)) return false;
        PutTag(out, number, kLengthDelimited);
        PutVarint(out, child.size());
        out->append(child);
        return true;
      }
      default:
        return IntegerValue(number, kind, out);
    }
  }

  bool IntegerValue(int number, Kind kind, std::string* out) {
    bool negative = false;
    uint64_t m = 0;
    if (!reader_.Integer(&negative, &m)) return false;
    const bool is_signed = kind == Kind::kInt32 || kind == Kind::kInt64 || kind == Kind::kSInt32 ||
                           kind == Kind::kSInt64 || kind == Kind::kSFixed32 ||
                           kind == Kind::kSFixed64;
    const bool is_64 = kind == Kind::kInt64 || kind == Kind::kUInt64 || kind == Kind::kSInt64 ||
                       kind == Kind::kFixed64 || kind == Kind::kSFixed64;
    if (negative && !is_signed) return false;
    uint64_t limit;
    if (is_signed) {
      limit = is_64 ? uint64_t{1} << 63 : uint64_t{1} << 31;  // |min|
      if (!negative) --limit;                                 // max
    } else {
      limit = is_64 ? std::numeric_limits<uint64_t>::max() : std::numeric_limits<uint32_t>::max();
    }
    if (m > limit) return false;
    // Two's complement of the value, as 64 bits.
    const uint64_t v = negative ? ~m + 1 : m;
    switch (kind) {
      case Kind::kInt32:
      case Kind::kInt64:
      case Kind::kUInt32:
      case Kind::kUInt64:
        PutTag(out, number, kVarint);
        PutVarint(out, v);
        return true;
      case Kind::kSInt32: {
        auto n = static_cast<uint32_t>(v);
        PutTag(out, number, kVarint);
        PutVarint(out, (n << 1) ^ static_cast<uint32_t>(-(n >> 31)));
        return true;
      }
      case Kind::kSInt64:
        PutTag(out, number, kVarint);
        PutVarint(out, (v << 1) ^ (0 - (v >> 63)));
        return true;
      case Kind::kFixed32:
      case Kind::kSFixed32:
        PutTag(out, number, kFixed32Wire);
        PutFixed(out, v, 4);
        return true;
      case Kind::kFixed64:
      case Kind::kSFixed64:
        PutTag(out, number, kFixed64Wire);
        PutFixed(out, v, 8);
        return true;
      default:
        return false;
    }
  }

  JsonReader reader_;
  size_t max_depth_;
};

// ---- Printing ----

class WireReader {
 public:
  explicit WireReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool Done() const { return p_ == end_; }
  const uint8_t* position() const { return p_; }
  void Rewind(const uint8_t* p) { p_ = p; }

  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      uint8_t b = *p_++;
      result |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }

  bool Fixed(int bytes, uint64_t* v) {
    if (end_ - p_ < bytes) return false;
    uint64_t result = 0;
    for (int i = 0; i < bytes; ++i) result |= static_cast<uint64_t>(p_[i]) << (8 * i);
    p_ += bytes;
    *v = result;
    return true;
  }

  bool Bytes(std::string_view* s) {
    uint64_t n = 0;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *s = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// As protobuf's JSON writer escapes printable ASCII; false for anything else.
bool AppendQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  // Runs of characters that need no escape are copied at once.
  size_t run = 0;
  while (run < s.size() && s[run] >= 0x20 && s[run] <= 0x7E && s[run] != '"' && s[run] != '\\' &&
         s[run] != '<' && s[run] != '>') {
    ++run;
  }
  out->append(s.data(), run);
  for (char c : s.substr(run)) {
    if (c < 0x20 || c > 0x7E) return false;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '<':
        out->append("\\u003c");
        break;
      case '>':
        out->append("\\u003e");
        break;
      default:
        out->push_back(c);
    }
  }
  out->push_back('"');
  return true;
}

template <typename T>
void AppendNumber(std::string* out, T v, bool quoted) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (quoted) out->push_back('"');
  out->append(buf, static_cast<size_t>(end - buf));
  if (quoted) out->push_back('"');
}

// A float or double as protobuf 3.21's JSON writer prints it (JsonObjectWriter::RenderFloat,
// RenderDouble): finite values as SimpleFtoa / SimpleDtoa do, i.e. printf("%.*g") with FLT_DIG
// (DBL_DIG) digits, or FLT_DIG + 3 (DBL_DIG + 2) when that does not read back as the same value;
// the others as the strings "NaN", "Infinity", "-Infinity". std::to_chars with a precision is
// specified as printf's %g, and it and from_chars are exact, so the bytes are the same; they
// avoid printf's multi-precision arithmetic and strtof, which were two thirds of the proxy's
// CPU time rendering 32 embeddings (tests/transcoder/fast_json_test.cc compares them).
template <typename T>
void AppendReal(std::string* out, T v) {
  if (!std::isfinite(v)) {
    out->append(std::isnan(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  constexpr int kDigits = std::numeric_limits<T>::digits10;  // FLT_DIG, DBL_DIG
  constexpr int kMoreDigits = kDigits + (sizeof(T) == 4 ? 3 : 2);
  char buf[40];
  char* end = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general, kDigits).ptr;
  T back{};
  auto [parsed, pec] = std::from_chars(buf, end, back);
  // protobuf reads a float back with strtof and errno, which glibc sets (ERANGE) for every
  // subnormal result, so subnormal floats always get the longer form; doubles are read back
  // without errno.
  const bool subnormal_float = sizeof(T) == 4 && std::fpclassify(v) == FP_SUBNORMAL;
  if (subnormal_float || pec != std::errc() || parsed != end || back != v) {
    end = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general, kMoreDigits).ptr;
  }
  out->append(buf, static_cast<size_t>(end - buf));
}

class Printer {
 public:
  Printer(const FastPrintOptions& options, size_t max_depth)
      : options_(options), max_depth_(max_depth) {}

  bool Message(const pb::Descriptor* type, std::string_view bytes, size_t depth, std::string* out) {
    if (depth > max_depth_) return false;
    out->push_back('{');
    WireReader r(bytes);
    SeenFields seen;
    while (!r.Done()) {
      uint64_t tag = 0;
      if (!r.Varint(&tag) || tag > std::numeric_limits<uint32_t>::max()) return false;
      const auto number = static_cast<int>(tag >> 3);
      const int wire_type = static_cast<int>(tag & 7);
      const pb::FieldDescriptor* f = type->FindFieldByNumber(number);
      // Unknown fields and a field seen again (protobuf would print its key twice) go to
      // protobuf.
      if (f == nullptr || !MarkSeen(seen, f)) return false;
      const Kind kind = KindOf(f, /*printing=*/true);
      if (kind == Kind::kUnsupported) return false;
      if (seen.size() > 1) out->push_back(',');
      const std::string& name = options_.preserve_proto_field_names ? f->name() : f->json_name();
      if (!AppendQuoted(out, name)) return false;
      out->push_back(':');
      if (!f->is_repeated()) {
        if (wire_type != WireTypeOf(kind) || !Value(r, f, kind, depth, out)) return false;
        continue;
      }
      out->push_back('[');
      if (IsPackable(kind) && wire_type == kLengthDelimited) {
        // One packed run is one list; a second run would be a second key (caught above).
        std::string_view run;
        if (!r.Bytes(&run)) return false;
        WireReader packed(run);
        for (bool first = true; !packed.Done(); first = false) {
          if (!first) out->push_back(',');
          if (!Value(packed, f, kind, depth, out)) return false;
        }
      } else {
        if (wire_type != WireTypeOf(kind)) return false;
        // Consecutive elements with the same tag make one list.
        for (bool first = true;; first = false) {
          if (!first) out->push_back(',');
          if (!Value(r, f, kind, depth, out)) return false;
          const uint8_t* next = r.position();
          uint64_t next_tag = 0;
          if (r.Done() || !r.Varint(&next_tag) || next_tag != tag) {
            r.Rewind(next);
            break;
          }
        }
      }
      out->push_back(']');
    }
    out->push_back('}');
    return true;
  }

 private:
  bool Value(WireReader& r, const pb::FieldDescriptor* f, Kind kind, size_t depth,
             std::string* out) {
    uint64_t v = 0;
    switch (kind) {
      case Kind::kString: {
        std::string_view s;
        return r.Bytes(&s) && AppendQuoted(out, s);
      }
      case Kind::kMessage: {
        std::string_view s;
        return r.Bytes(&s) && Message(f->message_type(), s, depth + 1, out);
      }
      case Kind::kDuration: {
        std::string_view s;
        return r.Bytes(&s) && Duration(s, out);
      }
      case Kind::kValue: {
        std::string_view s;
        return r.Bytes(&s) && StructValue(s, depth + 1, out);
      }
      case Kind::kListValue: {
        std::string_view s;
        return r.Bytes(&s) && ListValue(s, depth + 1, out);
      }
      case Kind::kFixed32:
      case Kind::kSFixed32:
      case Kind::kFloat:
        if (!r.Fixed(4, &v)) return false;
        break;
      case Kind::kFixed64:
      case Kind::kSFixed64:
      case Kind::kDouble:
        if (!r.Fixed(8, &v)) return false;
        break;
      default:
        if (!r.Varint(&v)) return false;
    }
    const auto v32 = static_cast<uint32_t>(v);
    switch (kind) {
      case Kind::kFloat:
        AppendReal(out, std::bit_cast<float>(v32));
        return true;
      case Kind::kDouble:
        AppendReal(out, std::bit_cast<double>(v));
        return true;
      case Kind::kBool:
        out->append(v != 0 ? "true" : "false");
        return true;
      case Kind::kInt32:
      case Kind::kSFixed32:
        AppendNumber(out, static_cast<int32_t>(v32), false);
        return true;
      case Kind::kUInt32:
      case Kind::kFixed32:
        AppendNumber(out, v32, false);
        return true;
      case Kind::kSInt32:
        AppendNumber(out, static_cast<int32_t>((v32 >> 1) ^ (0 - (v32 & 1))), false);
        return true;
      case Kind::kInt64:
      case Kind::kSFixed64:
        AppendNumber(out, static_cast<int64_t>(v), true);
        return true;
      case Kind::kUInt64:
      case Kind::kFixed64:
        AppendNumber(out, v, true);
        return true;
      case Kind::kSInt64:
        AppendNumber(out, static_cast<int64_t>((v >> 1) ^ (0 - (v & 1))), true);
        return true;
      case Kind::kEnum: {
        const auto number = static_cast<int32_t>(v32);
        if (options_.enums_as_ints) {
          AppendNumber(out, number, false);
          return true;
        }
        // Unknown values print as numbers in protobuf; left to it.
        const pb::EnumValueDescriptor* value = f->enum_type()->FindValueByNumber(number);
        return value != nullptr && AppendQuoted(out, value->name());
      }
      default:
        return false;
    }
  }

  // As protobuf's RenderDuration: "-1.5s", with 0, 3, 6 or 9 digits of fraction. Anything it
  // would reject (out of range, mixed signs) or read differently (a field twice, an unknown
  // field) is left to it.
  static bool Duration(std::string_view bytes, std::string* out) {
    constexpr int64_t kMaxSeconds = 315576000000;
    constexpr int64_t kNanosPerSecond = 1000000000;
    WireReader r(bytes);
    uint64_t raw_seconds = 0, raw_nanos = 0;
    bool has_seconds = false, has_nanos = false;
    while (!r.Done()) {
      uint64_t tag = 0;
      if (!r.Varint(&tag)) return false;
      if (tag == (1 << 3 | kVarint) && !has_seconds) {
        if (!r.Varint(&raw_seconds)) return false;
        has_seconds = true;
      } else if (tag == (2 << 3 | kVarint) && !has_nanos) {
        if (!r.Varint(&raw_nanos)) return false;
        has_nanos = true;
      } else {
        return false;
      }
    }
    const auto seconds = static_cast<int64_t>(raw_seconds);
    const auto nanos = static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(raw_nanos)));
    if (seconds < -kMaxSeconds || seconds > kMaxSeconds || nanos <= -kNanosPerSecond ||
        nanos >= kNanosPerSecond || (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0)) {
      return false;
    }
    const bool negative = seconds < 0 || nanos < 0;
    const uint64_t abs_seconds = static_cast<uint64_t>(negative ? -seconds : seconds);
    const auto abs_nanos = static_cast<uint32_t>(negative ? -nanos : nanos);
    out->push_back('"');
    if (negative) out->push_back('-');
    AppendNumber(out, abs_seconds, false);
    if (abs_nanos != 0) {
      const int digits = abs_nanos % 1000 != 0 ? 9 : abs_nanos % 1000000 != 0 ? 6 : 3;
      uint32_t fraction = abs_nanos;
      for (int i = digits; i < 9; ++i) fraction /= 10;
      char buf[10];
      for (int i = digits - 1; i >= 0; --i, fraction /= 10)
        buf[i] = static_cast<char>('0' + fraction % 10);
      out->push_back('.');
      out->append(buf, static_cast<size_t>(digits));
    }
    out->append("s\"");
    return true;
  }

  // google.protobuf.Value with exactly one of null, a finite number, an ASCII string, a bool or
  // a list set; anything else (none, several, a struct, NaN) is left to protobuf.
  bool StructValue(std::string_view bytes, size_t depth, std::string* out) {
    if (depth > max_depth_) return false;
    WireReader r(bytes);
    uint64_t tag = 0;
    if (r.Done() || !r.Varint(&tag)) return false;
    uint64_t v = 0;
    std::string_view s;
    bool ok = false;
    switch (tag) {
      case 1 << 3 | kVarint:  // null_value
        ok = r.Varint(&v) && v == 0;
        if (ok) out->append("null");
        break;
      case 2 << 3 | kFixed64Wire: {  // number_value
        ok = r.Fixed(8, &v) && std::isfinite(std::bit_cast<double>(v));
        if (ok) AppendReal(out, std::bit_cast<double>(v));
        break;
      }
      case 3 << 3 | kLengthDelimited:  // string_value
        ok = r.Bytes(&s) && AppendQuoted(out, s);
        break;
      case 4 << 3 | kVarint:  // bool_value
        ok = r.Varint(&v) && v <= 1;
        if (ok) out->append(v != 0 ? "true" : "false");
        break;
      case 6 << 3 | kLengthDelimited:  // list_value
        ok = r.Bytes(&s) && ListValue(s, depth + 1, out);
        break;
      default:
        return false;
    }
    return ok && r.Done();
  }

  // google.protobuf.ListValue: its values in order.
  bool ListValue(std::string_view bytes, size_t depth, std::string* out) {
    if (depth > max_depth_) return false;
    WireReader r(bytes);
    out->push_back('[');
    for (bool first = true; !r.Done(); first = false) {
      uint64_t tag = 0;
      std::string_view s;
      if (!r.Varint(&tag) || tag != (1 << 3 | kLengthDelimited) || !r.Bytes(&s)) return false;
      if (!first) out->push_back(',');
      if (!StructValue(s, depth + 1, out)) return false;
    }
    out->push_back(']');
    return true;
  }

  const FastPrintOptions& options_;
  size_t max_depth_;
};

}  // namespace

bool FastJsonToBinary(const pb::Descriptor* type, std::string_view json, size_t max_depth,
                      std::string* out) {
  std::string result;
  if (!Encoder(json, max_depth).Run(type, &result)) return false;
  *out = std::move(result);
  return true;
}

bool FastBinaryToJson(const pb::Descriptor* type, std::string_view binary,
                      const FastPrintOptions& options, size_t max_depth, std::string* out) {
  if (!IsPlainMessage(type)) return false;
  const size_t start = out->size();
  if (Printer(options, max_depth).Message(type, binary, 1, out)) return true;
  out->resize(start);
  return false;
}

}  // namespace tipperary::transcoder::internal

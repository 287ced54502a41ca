#include "tipperary/config/units.h"

#include <array>
#include <cstdint>
#include <limits>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tipperary::config {
namespace {

constexpr char kDurationHint[] = " (use e.g. 250ms, 2s, 1m)";
constexpr char kSizeHint[] = " (use e.g. 4096, 512KiB, 8MiB, 1GB)";

// Enough digits for any uint64 in the integer part; the fraction keeps 18 digits so that
// fraction * unit stays inside 128 bits.
constexpr size_t kMaxIntegerDigits = 20;
constexpr size_t kMaxFractionDigits = 18;

struct Unit {
  std::string_view name;
  uint64_t scale;
};

// Longer names first so that "ms" is not read as "m" followed by junk.
constexpr std::array<Unit, 7> kDurationUnits = {{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // µs
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
}};

constexpr std::array<Unit, 9> kSizeUnits = {{
    {"KiB", uint64_t{1} << 10},
    {"MiB", uint64_t{1} << 20},
    {"GiB", uint64_t{1} << 30},
    {"TiB", uint64_t{1} << 40},
    {"KB", 1'000},
    {"MB", 1'000'000},
    {"GB", 1'000'000'000},
    {"TB", 1'000'000'000'000},
    {"B", 1},
}};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::string_view(text.data(), text.size()), "\"");
}

// A decimal number "123" or "1.25" at the front of `text`, consumed.
struct Number {
  absl::uint128 integer = 0;
  absl::uint128 fraction = 0;        // Digits after the point, as an integer...
  absl::uint128 fraction_scale = 1;  // ...over this power of ten.
  bool has_fraction = false;
};

enum class NumberResult { kOk, kNone, kTooLong };

NumberResult ConsumeNumber(std::string_view& text, Number* out) {
  size_t i = 0;
  while (i < text.size() && IsDigit(text[i])) {
    if (i >= kMaxIntegerDigits) return NumberResult::kTooLong;
    out->integer = out->integer * 10 + static_cast<uint64_t>(text[i] - '0');
    ++i;
  }
  if (i == 0) return NumberResult::kNone;
  if (i < text.size() && text[i] == '.') {
    size_t start = ++i;
    while (i < text.size() && IsDigit(text[i])) {
      if (i - start >= kMaxFractionDigits) return NumberResult::kTooLong;
      out->fraction = out->fraction * 10 + static_cast<uint64_t>(text[i] - '0');
      out->fraction_scale *= 10;
      ++i;
    }
    if (i == start) return NumberResult::kNone;  // "1." is junk.
    out->has_fraction = true;
  }
  text.remove_prefix(i);
  return NumberResult::kOk;
}

// number * scale, exactly; false when it is not a whole number of base units.
bool Scale(const Number& number, uint64_t scale, absl::uint128* out) {
  absl::uint128 fraction_part = number.fraction * scale;
  if (fraction_part % number.fraction_scale != 0) return false;
  *out = number.integer * scale + fraction_part / number.fraction_scale;
  return true;
}

bool AllDigits(std::string_view text) {
  bool any_digit = false;
  for (char c : text) {
    if (IsDigit(c)) {
      any_digit = true;
    } else if (c != '.') {
      return false;
    }
  }
  return any_digit;
}

}  // namespace

absl::StatusOr<Duration> ParseDuration(std::string_view text) {
  if (text == "0") return Duration::zero();
  if (!text.empty() && text[0] == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("bad duration ", Quote(text), ": must not be negative"));
  }
  if (AllDigits(text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad duration ", Quote(text), ": missing unit", kDurationHint));
  }
  auto junk = [&] {
    return absl::InvalidArgumentError(absl::StrCat("bad duration ", Quote(text), kDurationHint));
  };
  if (text.empty()) return junk();
  std::string_view rest = text;
  absl::uint128 total = 0;
  const absl::uint128 max_ns = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  while (!rest.empty()) {
    Number number;
    switch (ConsumeNumber(rest, &number)) {
      case NumberResult::kOk:
        break;
      case NumberResult::kNone:
        return junk();
      case NumberResult::kTooLong:
        return absl::InvalidArgumentError(
            absl::StrCat("bad duration ", Quote(text), ": too many digits"));
    }
    const Unit* unit = nullptr;
    for (const Unit& candidate : kDurationUnits) {
      if (rest.substr(0, candidate.name.size()) == candidate.name) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return junk();
    rest.remove_prefix(unit->name.size());
    absl::uint128 part;
    if (!Scale(number, unit->scale, &part)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad duration ", Quote(text), ": finer than 1ns"));
    }
    total += part;
    if (total > max_ns) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad duration ", Quote(text), ": too large (at most about 292 years)"));
    }
  }
  return Duration(static_cast<int64_t>(absl::Uint128Low64(total)));
}

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  if (!text.empty() && text[0] == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size ", Quote(text), ": must not be negative"));
  }
  auto junk = [&] {
    return absl::InvalidArgumentError(absl::StrCat("bad size ", Quote(text), kSizeHint));
  };
  std::string_view rest = text;
  Number number;
  switch (ConsumeNumber(rest, &number)) {
    case NumberResult::kOk:
      break;
    case NumberResult::kNone:
      return junk();
    case NumberResult::kTooLong:
      return absl::InvalidArgumentError(absl::StrCat("bad size ", Quote(text), ": too large"));
  }
  uint64_t scale = 1;
  if (!rest.empty()) {
    const Unit* unit = nullptr;
    for (const Unit& candidate : kSizeUnits) {
      if (rest == candidate.name) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return junk();
    scale = unit->scale;
  }
  absl::uint128 bytes;
  if (!Scale(number, scale, &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size ", Quote(text), ": not a whole number of bytes"));
  }
  if (absl::Uint128High64(bytes) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad size ", Quote(text), ": too large"));
  }
  return absl::Uint128Low64(bytes);
}

std::string FormatDuration(Duration duration) {
  int64_t ns = duration.count();
  if (ns == 0) return "0s";
  if (ns < 0) {
    // -(min) does not fit; no config value gets near it.
    if (ns == std::numeric_limits<int64_t>::min()) return "-292y";
    return absl::StrCat("-", FormatDuration(Duration(-ns)));
  }
  static constexpr std::array<Unit, 6> kByLargest = {{
      {"h", 3'600'000'000'000},
      {"m", 60'000'000'000},
      {"s", 1'000'000'000},
      {"ms", 1'000'000},
      {"us", 1'000},
      {"ns", 1},
  }};
  for (const Unit& unit : kByLargest) {
    uint64_t value = static_cast<uint64_t>(ns);
    if (value % unit.scale == 0) {
      return absl::StrCat(value / unit.scale,
                          absl::string_view(unit.name.data(), unit.name.size()));
    }
  }
  return absl::StrCat(ns, "ns");  // Unreachable: every value is a multiple of 1ns.
}

std::string FormatSize(uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr std::array<Unit, 8> kByLargest = {{
      {"TiB", uint64_t{1} << 40},
      {"GiB", uint64_t{1} << 30},
      {"MiB", uint64_t{1} << 20},
      {"KiB", uint64_t{1} << 10},
      {"TB", 1'000'000'000'000},
      {"GB", 1'000'000'000},
      {"MB", 1'000'000},
      {"KB", 1'000},
  }};
  for (const Unit& unit : kByLargest) {
    if (bytes % unit.scale == 0) {
      return absl::StrCat(bytes / unit.scale,
                          absl::string_view(unit.name.data(), unit.name.size()));
    }
  }
  return absl::StrCat(bytes);
}

}  // namespace tipperary::config

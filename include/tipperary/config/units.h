// Durations and byte sizes as operators write them in YAML files.
//
// Durations are a number and a unit (ns, us, ms, s, m, h), optionally with a fraction and
// optionally chained Go-style; a bare "0" is also accepted. Sizes are a whole or fractional
// number with an optional unit: B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers
// of 1024). The Format functions produce text the Parse functions read back to the same value.
//
//   absl::StatusOr<Duration> d = ParseDuration("1.5s");   // 1500ms
//   absl::StatusOr<uint64_t> n = ParseSize("8MiB");        // 8388608
//   FormatDuration(*d) == "1500ms";  FormatSize(*n) == "8MiB";
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tipperary/config/proxy_config.h"

namespace tipperary::config {

// Accepts 250ms, 2s, 1.5s, 1m, 1h, 500us, 100ns, 1m30s, 0. Rejects negatives, bare numbers
// other than 0, spaces, unknown units and values that overflow or are finer than 1ns. The
// error message quotes the input, e.g.: bad duration "2 parsecs" (use e.g. 250ms, 2s, 1m).
absl::StatusOr<Duration> ParseDuration(std::string_view text);

// Accepts 4096, 4096B, 512KiB, 8MiB, 1GiB, 100KB (=100000), 1MB, 1.5MiB. Rejects negatives,
// junk, fractions of a byte and values over 2^64-1.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// Largest unit that divides exactly: 2h, 90m, 1500ms, 0s. Negative values get a leading '-'
// (which ParseDuration rejects).
std::string FormatDuration(Duration duration);

// Largest binary unit that divides exactly, else the largest decimal one, else bytes:
// 64MiB, 16KiB, 100KB, 65535.
std::string FormatSize(uint64_t bytes);

}  // namespace tipperary::config

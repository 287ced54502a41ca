// What a configuration reload did, in the same words for both binaries: SIGHUP logs it,
// POST /reload answers it as JSON, and the metrics count its result.
//
//   ReloadReport report = ...;                  // filled by the binary's reload
//   reply.status = report.HttpStatus();         // 200, or 422 when the new file was rejected
//   reply.body = report.ToJson();
//   // {"result":"applied","config_hash":"9f..","changed":["limits.max_header_bytes"],
//   //  "restart_required":["threads"]}
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tipperary::config {

// The identity of an effective configuration: the lowercase hex SHA-256 of its unredacted dump
// (Dump*Config(config, /*redact_secrets=*/false)), so comments, key order and spelling of
// durations do not change it, and any effective change does.
std::string ConfigHash(std::string_view effective_config_dump);

// The keys whose values differ between two dumps, as dotted paths: a top-level section's
// changed keys ("limits.max_header_bytes"), or the section itself for a list or scalar
// ("upstreams", "threads"). Both inputs are YAML maps as the dumps write them.
std::vector<std::string> ChangedKeys(std::string_view old_dump, std::string_view new_dump);

struct ReloadReport {
  enum class Result { kApplied, kUnchanged, kRejected };
  Result result = Result::kUnchanged;
  std::string config_hash;                    // Of the configuration in effect afterwards.
  std::vector<std::string> changed;           // Applied live.
  std::vector<std::string> restart_required;  // Changed in the file, NOT applied: need a restart.
  std::string error;  // kRejected: "file:line:col: key: message"; nothing was changed.

  // "applied", "unchanged" or "rejected": the label of tipperary_config_reload_total{result}.
  std::string_view ResultName() const;
  int HttpStatus() const;  // 200, or 422 (Unprocessable Content) when rejected.
  std::string ToJson() const;
};

}  // namespace tipperary::config

// Early returns on error, for the config component's internals only.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TIPPERARY_CONFIG_CONCAT_INNER(a, b) a##b
#define TIPPERARY_CONFIG_CONCAT(a, b) TIPPERARY_CONFIG_CONCAT_INNER(a, b)

#define TIPPERARY_RETURN_IF_ERROR(expr)                 \
  do {                                                  \
    if (absl::Status _status = (expr); !_status.ok()) { \
      return _status;                                   \
    }                                                   \
  } while (false)

#define TIPPERARY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = *std::move(tmp)

#define TIPPERARY_ASSIGN_OR_RETURN(lhs, expr) \
  TIPPERARY_ASSIGN_OR_RETURN_IMPL(TIPPERARY_CONFIG_CONCAT(_statusor_, __LINE__), lhs, expr)

// Standard process_* metrics (as the Prometheus client libraries export them), read from /proc
// by a collect hook at every scrape:
//   process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
//   process_open_fds, process_max_fds, process_start_time_seconds.
//
//   Registry registry;
//   RegisterProcessMetrics(registry);
#pragma once

#include "tipperary/metrics/registry.h"

namespace tipperary::metrics {

// Idempotent: a second call on the same registry does nothing.
void RegisterProcessMetrics(Registry& registry);

}  // namespace tipperary::metrics

// Names the calling thread, as `top -H`, `perf sched` and debuggers show it: a worker's encoder
// threads, batcher threads and bulk threads, a proxy's event loops, told apart at a glance.
//
//   std::thread t([] { SetThreadName("batch-exec"); ... });
#pragma once

#include <string_view>

namespace tipperary::common {

// Linux keeps 15 bytes of it; longer names are cut. A no-op elsewhere.
void SetThreadName(std::string_view name);

}  // namespace tipperary::common

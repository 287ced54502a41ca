#include "tipperary/metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "tipperary/metrics/builder.h"

namespace tipperary::metrics {
namespace {

struct ProcStat {
  double cpu_seconds = 0;
  double start_ticks = 0;
  double virtual_bytes = 0;
  double resident_pages = 0;
  bool ok = false;
};

// /proc/self/stat: "pid (comm) state ..." where comm may contain spaces and parentheses, so
// fields are counted from the last ')'. Field numbers as in proc(5).
ProcStat ReadProcStat() {
  ProcStat stat;
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return stat;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return stat;
  std::istringstream fields(line.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string field; fields >> field;) f.push_back(field);
  auto field = [&](int n) { return std::stod(f.at(static_cast<std::size_t>(n - 3))); };
  try {
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    stat.cpu_seconds = (field(14) + field(15)) / ticks;  // utime + stime
    stat.start_ticks = field(22);
    stat.virtual_bytes = field(23);
    stat.resident_pages = field(24);
    stat.ok = true;
  } catch (const std::exception&) {
    stat.ok = false;
  }
  return stat;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) {
      try {
        return std::stod(line.substr(6));
      } catch (const std::exception&) {
        return 0;
      }
    }
  }
  return 0;
}

double OpenFds() {
  std::error_code ec;
  double count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++count;
  }
  return count;
}

double MaxFds() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return limit.rlim_cur == RLIM_INFINITY ? 0 : static_cast<double>(limit.rlim_cur);
}

struct ProcessMetrics {
  std::mutex mu;
  double cpu_reported = 0;  // what cpu has been incremented by so far
  Counter* cpu = nullptr;
  Gauge* resident = nullptr;
  Gauge* virtual_memory = nullptr;
  Gauge* open_fds = nullptr;
  Gauge* max_fds = nullptr;
  Gauge* start_time = nullptr;

  void Collect() {
    const ProcStat stat = ReadProcStat();
    std::lock_guard lock(mu);
    if (stat.ok) {
      // Counters only increment: add what the kernel counted since the last scrape.
      if (stat.cpu_seconds > cpu_reported) {
        cpu->Increment(stat.cpu_seconds - cpu_reported);
        cpu_reported = stat.cpu_seconds;
      }
      resident->Set(stat.resident_pages * static_cast<double>(sysconf(_SC_PAGESIZE)));
      virtual_memory->Set(stat.virtual_bytes);
    }
    open_fds->Set(OpenFds());
    max_fds->Set(MaxFds());
  }
};

}  // namespace

void RegisterProcessMetrics(Registry& registry) {
  if (registry.HasFamily("process_cpu_seconds_total")) return;
  auto metrics = std::make_shared<ProcessMetrics>();
  metrics->cpu = &BuildCounter()
                      .Name("process_cpu_seconds_total")
                      .Help("Total user and system CPU time spent in seconds.")
                      .Register(registry)
                      .Add({});
  metrics->resident = &BuildGauge()
                           .Name("process_resident_memory_bytes")
                           .Help("Resident memory size in bytes.")
                           .Register(registry)
                           .Add({});
  metrics->virtual_memory = &BuildGauge()
                                 .Name("process_virtual_memory_bytes")
                                 .Help("Virtual memory size in bytes.")
                                 .Register(registry)
                                 .Add({});
  metrics->open_fds = &BuildGauge()
                           .Name("process_open_fds")
                           .Help("Number of open file descriptors.")
                           .Register(registry)
                           .Add({});
  metrics->max_fds = &BuildGauge()
                          .Name("process_max_fds")
                          .Help("Maximum number of open file descriptors.")
                          .Register(registry)
                          .Add({});
  metrics->start_time = &BuildGauge()
                             .Name("process_start_time_seconds")
                             .Help("Start time of the process since unix epoch in seconds.")
                             .Register(registry)
                             .Add({});
  const ProcStat stat = ReadProcStat();
  if (stat.ok) {
    metrics->start_time->Set(BootTimeSeconds() +
                             stat.start_ticks / static_cast<double>(sysconf(_SC_CLK_TCK)));
  }
  registry.AddCollectHook([metrics] { metrics->Collect(); });
}

}  // namespace tipperary::metrics

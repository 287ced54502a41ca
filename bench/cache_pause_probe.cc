// What a pause does to the caches of this machine, without the worker: reads a buffer the size
// of the bf16 encoder's weights (21 MiB for the default model) back to back, then after a pause
// (sleeping, or spinning without touching memory), and prints the medians
// (docs/benchmarks.md, "Warm-up and the first request").
//
//   build/release/bench/cache_pause_probe [--mib 21] [--pause-ms 200] [--spin] [--rounds 15]
//
// A longer read after a pause than back to back means the data left the core's caches during
// the pause; with --spin the thread never leaves the CPU, so whatever evicts them is not this
// process (another tenant of the host, the hypervisor).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Reads one word per 64-byte line (every line of the buffer), so the time is the buffer's
// transfer into the core, not arithmetic.
double ReadAll(const std::vector<uint64_t>& buffer) {
  const auto start = Clock::now();
  uint64_t sum = 0;
  for (size_t i = 0; i < buffer.size(); i += 8) sum += buffer[i];
  // Keeps the loads: the sum is "used" without costing a store per call.
  asm volatile("" : : "r"(sum) : "memory");
  const auto end = Clock::now();
  return std::chrono::duration<double, std::milli>(end - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int mib = 21, pause_ms = 200, rounds = 15;
  bool spin = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (arg == "--mib") {
      mib = value();
    } else if (arg == "--pause-ms") {
      pause_ms = value();
    } else if (arg == "--rounds") {
      rounds = value();
    } else if (arg == "--spin") {
      spin = true;
    } else {
      std::fprintf(stderr,
                   "usage: cache_pause_probe [--mib N] [--pause-ms N] [--spin] [--rounds N]\n");
      return 2;
    }
  }
  if (mib < 1 || pause_ms < 0 || rounds < 1) {
    std::fprintf(stderr, "cache_pause_probe: --mib and --rounds >= 1, --pause-ms >= 0\n");
    return 2;
  }
  std::vector<uint64_t> buffer(static_cast<size_t>(mib) << 17, 1);  // 8-byte words
  std::vector<double> back_to_back, after_pause;
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < 5; ++i) back_to_back.push_back(ReadAll(buffer));
    const auto until = Clock::now() + std::chrono::milliseconds(pause_ms);
    if (spin) {
      while (Clock::now() < until) {
      }
    } else {
      std::this_thread::sleep_until(until);
    }
    after_pause.push_back(ReadAll(buffer));
  }
  std::printf("%d MiB: back to back %.3f ms, after %d ms %s %.3f ms (medians, %d rounds)\n", mib,
              Median(back_to_back), pause_ms, spin ? "spinning" : "sleeping", Median(after_pause),
              rounds);
  return 0;
}

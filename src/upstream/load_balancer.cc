#include "load_balancer.h"

namespace tipperary::upstream {

size_t LoadBalancer::Pick(const std::vector<size_t>& eligible,
                          const std::function<uint64_t(size_t)>& outstanding) {
  const size_t n = eligible.size();
  if (n == 1) return eligible[0];
  if (policy_ == LoadBalancing::kRoundRobin) {
    for (size_t endpoint : eligible) {
      if (endpoint >= rr_next_) {
        rr_next_ = endpoint + 1;
        return endpoint;
      }
    }
    rr_next_ = eligible[0] + 1;
    return eligible[0];
  }
  std::uniform_int_distribution<size_t> first(0, n - 1);
  const size_t a = first(rng_);
  size_t b = std::uniform_int_distribution<size_t>(0, n - 2)(rng_);
  if (b >= a) ++b;  // Distinct from a, uniformly.
  return outstanding(eligible[b]) < outstanding(eligible[a]) ? eligible[b] : eligible[a];
}

}  // namespace tipperary::upstream

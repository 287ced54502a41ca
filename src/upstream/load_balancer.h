// Chooses the endpoint of a new attempt among those that may take it. Internal to
// tipperary::upstream.
//
// Power of two choices (the default): two distinct endpoints at random, the one with fewer
// outstanding requests (ties: the first drawn). It follows load as least-request does without
// herding every call onto the one endpoint that just became least loaded, and a slow or hung
// endpoint, whose requests pile up, loses nearly every draw. Round-robin: each in turn.
//
//   LoadBalancer lb(LoadBalancing::kPowerOfTwoChoices, seed);
//   size_t i = lb.Pick({0, 2, 3}, [&](size_t e) { return outstanding[e]; });
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::upstream {

class LoadBalancer {
 public:
  LoadBalancer(LoadBalancing policy, uint64_t seed) : policy_(policy), rng_(seed) {}

  // `eligible`: endpoint indexes, ascending, not empty.
  size_t Pick(const std::vector<size_t>& eligible,
              const std::function<uint64_t(size_t)>& outstanding);

  std::mt19937_64& rng() { return rng_; }

 private:
  LoadBalancing policy_;
  std::mt19937_64 rng_;
  size_t rr_next_ = 0;  // Round-robin: the endpoint index to start from.
};

}  // namespace tipperary::upstream

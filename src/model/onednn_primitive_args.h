// Internal: the oneDNN memory objects a matmul primitive's execute call takes (source,
// destination, scratchpad), made once per primitive and calling thread, for Bf16Linear and
// Int8Linear (creating them costs two allocations each; per call only their pointers change).
//
//   PrimitiveArgs& args = ArgsFor(prim, {&full, &tail}, Engine(), &thread_state->args);
//   args.src.set_data_handle(a); ...
#pragma once

#include <cassert>
#include <initializer_list>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace tipperary::model::internal {

struct PrimitiveArgs {
  dnnl::memory src, dst, pad;
};

// Keyed by primitive; one per thread that runs them.
using PrimitiveArgsMap = std::unordered_map<const void*, PrimitiveArgs>;

// The arguments of `p`, one of the primitives in `weight` (a weight's full-block and tail
// primitives; `Prim` has memory::desc src, dst, pad). The first time a thread runs any primitive
// of a weight, those of all of them are made at once. Made one by one, a request whose row count
// no batch had run before (12 tokens: M = 12, while the warm-up's texts are 2, 4, 8, 16 ...
// tokens long) paid for them in its first batch: ~0.5 ms more model time at 1 x 12 tokens.
template <typename Prim>
PrimitiveArgs& ArgsFor(const Prim& p, std::initializer_list<const std::vector<Prim>*> weight,
                       const dnnl::engine& engine, PrimitiveArgsMap* map) {
  if (auto it = map->find(&p); it != map->end()) return it->second;
  for (const std::vector<Prim>* prims : weight) {
    for (const Prim& q : *prims) {
      auto [it, added] = map->try_emplace(&q);
      if (!added) continue;
      it->second.src = dnnl::memory(q.src, engine, DNNL_MEMORY_NONE);
      it->second.dst = dnnl::memory(q.dst, engine, DNNL_MEMORY_NONE);
      it->second.pad = dnnl::memory(q.pad, engine, DNNL_MEMORY_NONE);
    }
  }
  assert(map->count(&p) == 1 && "p is one of the weight's primitives");
  return (*map)[&p];
}

}  // namespace tipperary::model::internal

#include "warmup_plan.h"

#include <algorithm>
#include <set>
#include <utility>

namespace tipperary::worker {
namespace {

// 1 (or `from`), 2, 4 ... below `limit`, then `limit` itself.
std::vector<int> PowersOfTwoUpTo(int from, int limit) {
  std::vector<int> out;
  for (int64_t v = from; v < limit; v *= 2) out.push_back(static_cast<int>(v));
  if (limit >= from) out.push_back(limit);
  return out;
}

}  // namespace

std::vector<WarmupShape> WarmupShapes(const std::string& mode, int max_batch_size,
                                      int max_batch_tokens, int max_seq_length) {
  if (mode == "minimal") return {{2, 2}};
  if (mode != "all") return {};
  // [CLS][SEP]: the shortest text a request can send.
  constexpr int kShortest = 2;
  max_batch_size = std::max(1, max_batch_size);
  max_batch_tokens = std::max(1, max_batch_tokens);
  max_seq_length = std::max(kShortest, max_seq_length);
  // Ordered by (length, batch), without repeats.
  std::set<std::pair<int, int>> shapes;
  for (int length : PowersOfTwoUpTo(kShortest, max_seq_length)) {
    // The fullest batch of this length: what a busy queue of such texts forms.
    const int fullest = std::clamp(max_batch_tokens / length, 1, max_batch_size);
    for (int batch : PowersOfTwoUpTo(1, fullest)) shapes.insert({length, batch});
  }
  std::vector<WarmupShape> out;
  out.reserve(shapes.size());
  for (const auto& [length, batch] : shapes) out.push_back({batch, length});
  return out;
}

std::vector<std::vector<int32_t>> WarmupBatch(const WarmupShape& shape, int32_t cls, int32_t filler,
                                              int32_t sep) {
  std::vector<int32_t> text(static_cast<size_t>(std::max(2, shape.length)), filler);
  text.front() = cls;
  text.back() = sep;
  return std::vector<std::vector<int32_t>>(static_cast<size_t>(std::max(0, shape.batch)), text);
}

}  // namespace tipperary::worker

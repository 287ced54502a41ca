#include "stream_timing.h"

#include <algorithm>

namespace tipperary::worker {

void StreamTiming::Add(const ModelRuntime& model, const EmbedTask& task) {
  const CallTiming one = TimingOf(model, task);
  if (tasks_++ == 0) {
    sum_.backend = one.backend;
    sum_.characters = one.characters;
  } else {
    sum_.characters =
        sum_.characters < 0 || one.characters < 0 ? -1 : sum_.characters + one.characters;
  }
  sum_.tokenization += one.tokenization;
  sum_.queue = std::max(sum_.queue, one.queue);
  sum_.tokens += one.tokens;
  if (task.batches() > 0) spans_.emplace_back(task.inference_start(), task.inference_end());
}

CallTiming StreamTiming::Total() const {
  CallTiming total = sum_;
  std::vector<Span> spans = spans_;
  std::sort(spans.begin(), spans.end());
  // The union's length: overlapping spans (tasks sharing a batch, or run at once on several
  // instances) count once.
  total.inference = std::chrono::nanoseconds(0);
  for (size_t i = 0; i < spans.size();) {
    auto [start, end] = spans[i];
    for (++i; i < spans.size() && spans[i].first <= end; ++i) end = std::max(end, spans[i].second);
    total.inference += end - start;
  }
  return total;
}

}  // namespace tipperary::worker

// The timing a streaming embedding call (EmbedStream, EmbedBidi) sends as trailing metadata once
// it succeeds, under the names of the unary calls' initial metadata (rpc_support.h, TEI's
// headers). A stream's texts go through the model in several tasks (chunks, messages), so their
// figures are summed up (docs/streaming.md, "Timing trailers"):
//   x-tokenization-time  the sum over the tasks (each was tokenised on its own);
//   x-queue-time         the longest any text of the stream waited for a batch (as unary);
//   x-inference-time     the wall-clock time the model worked on at least one of the stream's
//                        texts: the union of the tasks' spans from their first batch's start to
//                        their last batch's end, so a batch two chunks share counts once and
//                        the gaps between a bidi stream's messages do not count;
//   x-compute-tokens, x-compute-characters  sums (characters only when every task knew them);
//   x-tokens-per-second  the tokens over that inference time;
//   x-total-time, x-compute-time  the whole call, from its start to the trailers;
//   x-compute-type       the backend of the first task's model.
// Not thread-safe: the reactor's mutex guards it.
//
//   StreamTiming timing;
//   timing.Add(model, task);  // for every task whose response is sent
//   for (auto& [k, v] : TimingMetadata(timing.Total(), received, now)) AddTrailingMetadata(k, v);
#pragma once

#include <chrono>
#include <utility>
#include <vector>

#include "embed_task.h"
#include "model_runtime.h"
#include "rpc_support.h"

namespace tipperary::worker {

class StreamTiming {
 public:
  void Add(const ModelRuntime& model, const EmbedTask& task);
  CallTiming Total() const;

 private:
  using Span =
      std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>;
  CallTiming sum_;
  size_t tasks_ = 0;
  std::vector<Span> spans_;  // One per task that ran the model.
};

}  // namespace tipperary::worker

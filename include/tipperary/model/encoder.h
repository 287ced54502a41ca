// A loaded sentence encoder on one backend: token ids in, pooled vectors out.
//
// Encoders know nothing of requests, queues or gRPC: the worker's batcher hands them a batch
// of already tokenized sequences and gets one pooled (not yet normalised) vector per sequence.
//
//   std::unique_ptr<Encoder> enc = *CreateCpuEncoder(*bundle, {.threads = 2});
//   std::vector<float> out;   // batch.size() x enc->hidden_size(), row-major
//   absl::Status s = enc->Encode({{101, 7592, 102}, {101, 2088, 2003, 102}}, &out);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace tipperary::model {

class Encoder {
 public:
  virtual ~Encoder() = default;

  // token_ids: one row per sequence, each already with [CLS] ... [SEP] and at most
  // max_seq_length long; rows may differ in length (the encoder pads and masks). Writes
  // batch x hidden_size floats: the pooled output (mean over real tokens or CLS, per the
  // model's pooling config), NOT L2-normalised. Thread-compatible: one caller at a time.
  virtual absl::Status Encode(const std::vector<std::vector<int32_t>>& token_ids,
                              std::vector<float>* out) = 0;

  virtual int hidden_size() const = 0;
  virtual std::string backend_name() const = 0;  // "cpu" or "cuda"
  virtual std::string dtype() const = 0;         // "float32", "float16", "bfloat16"
  // Whether the encoder computes at the OS's idle priority (CPU, CpuEncoderOptions).
  virtual bool idle_priority() const { return false; }
};

// L2-normalises each row of a batch x dim matrix in place (rows of zeros stay zero).
void L2NormalizeRows(std::vector<float>& data, int dim);

// The payload that marks an Encode error as permanent: the encoder can never succeed again (a
// sticky CUDA error has corrupted its GPU context). The worker then reports the model unhealthy
// and, by default, exits so that it is restarted with a fresh context.
inline constexpr absl::string_view kEncoderUnusablePayload = "type.tipperary.dev/encoder-unusable";

inline absl::Status EncoderUnusableError(absl::string_view message) {
  absl::Status s = absl::InternalError(message);
  s.SetPayload(kEncoderUnusablePayload, absl::Cord("1"));
  return s;
}

inline bool IsEncoderUnusable(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kEncoderUnusablePayload).has_value();
}

}  // namespace tipperary::model

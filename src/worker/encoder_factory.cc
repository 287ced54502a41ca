#include "encoder_factory.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cuda_backend_loader.h"
#include "tipperary/common/log.h"
#include "tipperary/kernels/cuda_encoder.h"
#include "tipperary/model/cpu_encoder.h"

namespace tipperary::worker {
namespace {

// The CUDA encoder takes float32 host arrays; they are converted here from whatever dtype the
// safetensors file holds and only need to live until CreateCudaEncoder returns.
class HostWeights {
 public:
  explicit HostWeights(const model::ModelBundle& bundle) : bundle_(bundle) {}

  absl::StatusOr<const float*> Get(const std::string& name) {
    absl::StatusOr<std::vector<float>> tensor = bundle_.TensorFloat32(name);
    if (!tensor.ok()) return tensor.status();
    storage_.push_back(std::move(*tensor));
    return storage_.back().data();
  }

 private:
  const model::ModelBundle& bundle_;
  std::vector<std::vector<float>> storage_;
};

#define TIPPERARY_WORKER_ASSIGN_TENSOR(lhs, name)          \
  do {                                                     \
    absl::StatusOr<const float*> tensor_ = host.Get(name); \
    if (!tensor_.ok()) return tensor_.status();            \
    lhs = *tensor_;                                        \
  } while (false)

absl::StatusOr<std::unique_ptr<model::Encoder>> CreateCuda(
    std::shared_ptr<const model::ModelBundle> bundle, const config::WorkerModelConfig& config,
    const config::WorkerBatchingConfig& batching, int max_seq_length) {
  absl::StatusOr<const kernels::CudaBackendApi*> cuda = LoadCudaBackend();
  if (!cuda.ok()) return cuda.status();
  const model::ModelConfig& mc = bundle->config();
  HostWeights host(*bundle);
  kernels::BertWeightsHost w;
  w.layers = mc.num_hidden_layers;
  w.hidden = mc.hidden_size;
  w.heads = mc.num_attention_heads;
  w.intermediate = mc.intermediate_size;
  w.vocab = mc.vocab_size;
  w.max_position = mc.max_position_embeddings;
  w.type_vocab = mc.type_vocab_size;
  w.ln_eps = mc.layer_norm_eps;
  w.cls_pooling = mc.pooling == model::PoolingMode::kCls;
  TIPPERARY_WORKER_ASSIGN_TENSOR(w.word_emb, "embeddings.word_embeddings.weight");
  TIPPERARY_WORKER_ASSIGN_TENSOR(w.pos_emb, "embeddings.position_embeddings.weight");
  TIPPERARY_WORKER_ASSIGN_TENSOR(w.type_emb, "embeddings.token_type_embeddings.weight");
  TIPPERARY_WORKER_ASSIGN_TENSOR(w.emb_ln_gamma, "embeddings.LayerNorm.weight");
  TIPPERARY_WORKER_ASSIGN_TENSOR(w.emb_ln_beta, "embeddings.LayerNorm.bias");
  w.layer.resize(static_cast<size_t>(mc.num_hidden_layers));
  for (int i = 0; i < mc.num_hidden_layers; ++i) {
    kernels::BertLayerWeightsHost& l = w.layer[static_cast<size_t>(i)];
    std::string p = absl::StrCat("encoder.layer.", i, ".");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.query_w, p + "attention.self.query.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.query_b, p + "attention.self.query.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.key_w, p + "attention.self.key.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.key_b, p + "attention.self.key.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.value_w, p + "attention.self.value.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.value_b, p + "attention.self.value.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.attn_out_w, p + "attention.output.dense.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.attn_out_b, p + "attention.output.dense.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.attn_ln_gamma, p + "attention.output.LayerNorm.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.attn_ln_beta, p + "attention.output.LayerNorm.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.ffn_in_w, p + "intermediate.dense.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.ffn_in_b, p + "intermediate.dense.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.ffn_out_w, p + "output.dense.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.ffn_out_b, p + "output.dense.bias");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.ffn_ln_gamma, p + "output.LayerNorm.weight");
    TIPPERARY_WORKER_ASSIGN_TENSOR(l.ffn_ln_beta, p + "output.LayerNorm.bias");
  }
  kernels::CudaEncoderOptions options;
  options.device = 0;
  options.dtype = config.dtype == "auto" ? "float16" : config.dtype;
  if (options.dtype == "float32") {
    // The CUDA kernels have fp16 and bf16 paths only.
    TIPPERARY_LOG(kWarn, "the CUDA backend computes in float16 when dtype is float32",
                  {{"model", config.name}});
    options.dtype = "float16";
  }
  options.variant = config.cuda_variant;
  options.max_batch_size = static_cast<int>(std::max<uint32_t>(batching.max_batch_size, 1));
  options.max_seq_len = max_seq_length;
  // One pass must hold at least one full-length sequence.
  options.max_batch_tokens = static_cast<int>(
      std::max<uint64_t>(std::min<uint64_t>(batching.max_batch_tokens, uint64_t{1} << 20),
                         static_cast<uint64_t>(max_seq_length + 8)));
  options.debug_sync = config.cuda_debug_sync;
  options.use_graphs = config.cuda_graphs;
  return (*cuda)->create_encoder(options, w);
}
#undef TIPPERARY_WORKER_ASSIGN_TENSOR

// A test double for a device fault (there is no GPU to break in the tests): with the environment
// variable TIPPERARY_TEST_DEVICE_FAULT_AFTER=N, every encoder answers its first N Encode calls
// (the warm-up is the first) and then returns model::EncoderUnusableError, as CudaEncoder does
// after a sticky CUDA error. tests/integration/test_device_fault.py drives the worker with it.
class FaultAfterEncoder final : public model::Encoder {
 public:
  FaultAfterEncoder(std::unique_ptr<model::Encoder> inner, int64_t ok_calls)
      : inner_(std::move(inner)), ok_calls_left_(ok_calls) {}
  absl::Status Encode(const std::vector<std::vector<int32_t>>& token_ids,
                      std::vector<float>* out) override {
    if (ok_calls_left_ <= 0) {
      return model::EncoderUnusableError(
          "injected device fault (TIPPERARY_TEST_DEVICE_FAULT_AFTER): cudaErrorIllegalAddress");
    }
    --ok_calls_left_;
    return inner_->Encode(token_ids, out);
  }
  int hidden_size() const override { return inner_->hidden_size(); }
  std::string backend_name() const override { return inner_->backend_name(); }
  std::string dtype() const override { return inner_->dtype(); }

 private:
  std::unique_ptr<model::Encoder> inner_;
  int64_t ok_calls_left_;  // one caller at a time (the Encoder contract)
};

absl::StatusOr<std::unique_ptr<model::Encoder>> MaybeInjectFault(
    absl::StatusOr<std::unique_ptr<model::Encoder>> encoder) {
  const char* env = std::getenv("TIPPERARY_TEST_DEVICE_FAULT_AFTER");
  if (!encoder.ok() || env == nullptr || *env == '\0') return encoder;
  int64_t n = 0;
  if (!absl::SimpleAtoi(env, &n) || n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TIPPERARY_TEST_DEVICE_FAULT_AFTER=", env, ": not a count"));
  }
  TIPPERARY_LOG(kWarn, "TIPPERARY_TEST_DEVICE_FAULT_AFTER is set: encoders will fail on purpose",
                {{"ok_calls", absl::StrCat(n)}});
  return std::unique_ptr<model::Encoder>(
      std::make_unique<FaultAfterEncoder>(std::move(*encoder), n));
}

}  // namespace

absl::StatusOr<std::string> ResolveBackend(const std::string& backend) {
  if (backend == "cpu") return std::string("cpu");
  // Only now is the CUDA backend loaded (never for backend: cpu).
  absl::StatusOr<const kernels::CudaBackendApi*> backend_api = LoadCudaBackend();
  const absl::Status cuda =
      backend_api.ok() ? (*backend_api)->device_status() : backend_api.status();
  if (backend == "auto") {
    if (cuda.ok()) return std::string("cuda");
    // Say why: a driver problem must not pass for "no GPU here" unnoticed.
    TIPPERARY_LOG(kInfo, "backend auto: using the CPU, CUDA is not usable",
                  {{"reason", std::string(cuda.message())}});
    return std::string("cpu");
  }
  if (backend == "cuda") {
    if (cuda.ok()) return std::string("cuda");
    return absl::FailedPreconditionError(absl::StrCat("backend cuda: ", cuda.message()));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown backend \"", backend, "\""));
}

absl::StatusOr<std::unique_ptr<model::Encoder>> CreateEncoder(
    std::shared_ptr<const model::ModelBundle> bundle, const std::string& backend,
    const config::WorkerModelConfig& config, const config::WorkerBatchingConfig& batching,
    int max_seq_length, int threads, bool idle_priority,
    std::shared_ptr<const model::CpuEncoderWeights>* cpu_weights) {
  if (backend == "cuda") {
    return MaybeInjectFault(CreateCuda(std::move(bundle), config, batching, max_seq_length));
  }
  model::CpuEncoderOptions options;
  options.threads = threads;
  options.idle_priority = idle_priority;
  // The CPU backend computes in float32, with bfloat16 GEMMs on AMX or AVX512-BF16, or with int8
  // GEMMs on AMX-INT8/VNNI. `auto` takes bfloat16 where the CPU has it: it stays within cosine
  // 0.9999 of the reference (tests/model/cpu_encoder_test.cc), and it is what makes batch-1 latency
  // a few ms. Never int8: its worst cosine to float32 on the fixture corpus is 0.985 and it keeps
  // 93 % of a small retrieval fixture's top-10 neighbours (tests/model/int8_encoder_test.cc), below
  // the 0.99 a default must keep; it is there for those who choose that trade.
  const bool bf16 = model::CpuEncoderSupportsBfloat16();
  const bool cpu_dtype = config.dtype == "auto" || config.dtype == "float32" ||
                         (config.dtype == "bfloat16" && bf16) ||
                         (config.dtype == "int8" && model::CpuEncoderSupportsInt8());
  if (cpu_dtype) {
    options.dtype = config.dtype != "auto" ? config.dtype : (bf16 ? "bfloat16" : "float32");
  } else if (config.backend == "cpu") {
    const char* why =
        config.dtype == "bfloat16" ? " on this CPU (bfloat16 needs AMX or AVX512-BF16)"
        : config.dtype == "int8"   ? " on this CPU (int8 needs AMX-INT8 or AVX-512 VNNI)"
                                   : ", bfloat16 (AMX or AVX512-BF16) or int8 (AMX-INT8/VNNI)";
    return absl::InvalidArgumentError(absl::StrCat("model ", config.name,
                                                   ": the CPU backend computes in float32", why,
                                                   "; set dtype: float32"));
  } else {
    TIPPERARY_LOG(kWarn, "no GPU: the CPU backend computes in float32",
                  {{"model", config.name}, {"dtype", config.dtype}});
  }
  std::shared_ptr<const model::CpuEncoderWeights> own;
  std::shared_ptr<const model::CpuEncoderWeights>& weights =
      cpu_weights != nullptr ? *cpu_weights : own;
  if (weights == nullptr) {
    absl::StatusOr<std::shared_ptr<const model::CpuEncoderWeights>> loaded =
        model::LoadCpuEncoderWeights(std::move(bundle), options.dtype);
    if (!loaded.ok()) return loaded.status();
    weights = *std::move(loaded);
  }
  return MaybeInjectFault(model::CreateCpuEncoder(weights, options));
}

}  // namespace tipperary::worker

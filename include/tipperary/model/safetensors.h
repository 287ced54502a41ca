// Read-only view of a .safetensors file (the Hugging Face weight format), memory-mapped.
//
// The format is an 8-byte little-endian header length, a JSON header mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte after the
// header), an optional "__metadata__" string map, then the raw little-endian tensor bytes.
// Open() validates every entry (dtype known, shape non-negative, offsets inside the file and
// matching the shape's byte size) so that a hostile or truncated file yields an error, never a
// read out of bounds.
//
//   auto file = SafetensorsFile::Open("/models/minilm/model.safetensors");
//   if (!file.ok()) return file.status();
//   const SafetensorsTensor* t = (*file)->Find("embeddings.word_embeddings.weight");
//   absl::StatusOr<std::vector<float>> w = (*file)->ReadFloat32(t->name);
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tipperary::model {

enum class SafetensorsDType {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU8,
  kBool,
};

// "F32", "BF16", ... as spelled in the header.
const char* SafetensorsDTypeName(SafetensorsDType dtype);
size_t SafetensorsDTypeSize(SafetensorsDType dtype);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping; not aligned beyond 1 byte in general
  size_t size_bytes = 0;

  int64_t NumElements() const;
  std::string ShapeString() const;  // "[384, 1536]"
};

class SafetensorsFile {
 public:
  // Maps and validates the file. Errors name the path.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory copy (tests, fuzzing). `label` names it in errors.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBuffer(std::string bytes,
                                                                     const std::string& label);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // nullptr when absent.
  const SafetensorsTensor* Find(const std::string& name) const;
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& label() const { return label_; }

  // Copies a floating-point tensor (F32, F16 or BF16) as float32. Errors when absent, of
  // another dtype, or, when `expected_shape` is non-empty, of another shape.
  absl::StatusOr<std::vector<float>> ReadFloat32(
      const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;

  // Drops the file's pages from this process (madvise MADV_DONTNEED on the mapping) once the
  // encoders have copied what they need: they stay in the page cache, nothing is unmapped, and
  // a later read faults them back in. Without it, a worker kept the whole model file resident
  // (88 MiB for the default model) beside its own converted copy. No-op for FromBuffer.
  void ReleasePages() const;

 private:
  SafetensorsFile() = default;
  absl::Status Parse();

  std::string label_;
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // munmap'ed in the destructor when set
  std::string owned_;        // FromBuffer's storage
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Half-precision conversions, exact (used by ReadFloat32 and by tests).
float HalfToFloat(uint16_t h);
float BFloat16ToFloat(uint16_t b);

}  // namespace tipperary::model

#include "tipperary/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "json_object.h"

namespace tipperary::model {
namespace {

// The reference implementation refuses headers above 100 MB; so do we, before parsing.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  const char* name;
  SafetensorsDType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F64", SafetensorsDType::kF64, 8}, {"F32", SafetensorsDType::kF32, 4},
    {"F16", SafetensorsDType::kF16, 2}, {"BF16", SafetensorsDType::kBF16, 2},
    {"I64", SafetensorsDType::kI64, 8}, {"I32", SafetensorsDType::kI32, 4},
    {"I16", SafetensorsDType::kI16, 2}, {"I8", SafetensorsDType::kI8, 1},
    {"U8", SafetensorsDType::kU8, 1},   {"BOOL", SafetensorsDType::kBool, 1},
};

const DTypeInfo* FindDType(const std::string& name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

const char* SafetensorsDTypeName(SafetensorsDType dtype) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

size_t SafetensorsDTypeSize(SafetensorsDType dtype) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 0;
}

int64_t SafetensorsTensor::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated not to overflow at parse time
  return n;
}

std::string SafetensorsTensor::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->label_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* m = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
    }
    file->mapping_ = m;
    file->bytes_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  if (absl::Status s = file->Parse(); !s.ok()) return s;
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBuffer(
    std::string bytes, const std::string& label) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->label_ = label;
  file->owned_ = std::move(bytes);
  file->bytes_ = reinterpret_cast<const uint8_t*>(file->owned_.data());
  file->size_ = file->owned_.size();
  if (absl::Status s = file->Parse(); !s.ok()) return s;
  return file;
}

void SafetensorsFile::ReleasePages() const {
  // A hint: on failure the pages simply stay resident.
  if (mapping_ != nullptr) ::madvise(mapping_, size_, MADV_DONTNEED);
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

absl::Status SafetensorsFile::Parse() {
  auto error = [this](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(label_, ": ", parts...));
  };
  if (size_ < 8) return error("truncated: ", size_, " bytes, no header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes_[i];
  if (header_len > kMaxHeaderBytes) return error("header length ", header_len, " exceeds 100 MB");
  if (header_len > size_ - 8) {
    return error("truncated: header length ", header_len, " but only ", size_ - 8, " bytes follow");
  }
  const size_t data_start = 8 + header_len;
  const size_t data_size = size_ - data_start;
  std::string header(reinterpret_cast<const char*>(bytes_ + 8), header_len);
  absl::StatusOr<google::protobuf::Struct> root =
      internal::ParseJsonObject(header, absl::StrCat(label_, " header"));
  if (!root.ok()) return root.status();

  for (const auto& [name, value] : root->fields()) {
    if (name == "__metadata__") {
      if (value.kind_case() != google::protobuf::Value::kStructValue) {
        return error("__metadata__ must be an object");
      }
      for (const auto& [k, v] : value.struct_value().fields()) {
        if (v.kind_case() != google::protobuf::Value::kStringValue) {
          return error("__metadata__.", k, " must be a string");
        }
        metadata_[k] = v.string_value();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", name, "'");
    if (value.kind_case() != google::protobuf::Value::kStructValue) {
      return error(where, " must be an object");
    }
    const auto& fields = value.struct_value().fields();
    auto dtype_it = fields.find("dtype");
    auto shape_it = fields.find("shape");
    auto offsets_it = fields.find("data_offsets");
    if (dtype_it == fields.end() || shape_it == fields.end() || offsets_it == fields.end()) {
      return error(where, " needs dtype, shape and data_offsets");
    }
    if (dtype_it->second.kind_case() != google::protobuf::Value::kStringValue) {
      return error(where, " dtype must be a string");
    }
    const DTypeInfo* dtype = FindDType(dtype_it->second.string_value());
    if (dtype == nullptr) {
      return error(where, " has unknown dtype '", dtype_it->second.string_value(), "'");
    }
    SafetensorsTensor t;
    t.name = name;
    t.dtype = dtype->dtype;
    if (shape_it->second.kind_case() != google::protobuf::Value::kListValue) {
      return error(where, " shape must be an array");
    }
    // Bound the element count by the data size so the product cannot overflow.
    uint64_t elements = 1;
    bool overflow = false;
    bool has_zero = false;
    for (const auto& dim_value : shape_it->second.list_value().values()) {
      absl::StatusOr<int64_t> dim = internal::JsonToInt(dim_value, where + " shape entry");
      if (!dim.ok()) return error(dim.status().message());
      t.shape.push_back(*dim);
      has_zero |= *dim == 0;
      overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(*dim), &elements);
    }
    uint64_t expected = 0;
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(dtype->size), &expected);
    if (has_zero) {
      elements = 0;
      expected = 0;
    } else if (overflow) {
      return error(where, " shape ", t.ShapeString(), " overflows");
    }
    if (offsets_it->second.kind_case() != google::protobuf::Value::kListValue ||
        offsets_it->second.list_value().values_size() != 2) {
      return error(where, " data_offsets must be [begin, end]");
    }
    absl::StatusOr<int64_t> begin =
        internal::JsonToInt(offsets_it->second.list_value().values(0), where + " data_offsets");
    if (!begin.ok()) return error(begin.status().message());
    absl::StatusOr<int64_t> end =
        internal::JsonToInt(offsets_it->second.list_value().values(1), where + " data_offsets");
    if (!end.ok()) return error(end.status().message());
    if (*begin > *end) return error(where, " data_offsets begin ", *begin, " > end ", *end);
    if (static_cast<uint64_t>(*end) > data_size) {
      return error(where, " data_offsets end ", *end, " is beyond the data (", data_size,
                   " bytes)");
    }
    if (static_cast<uint64_t>(*end - *begin) != expected) {
      return error(where, " has ", *end - *begin, " bytes but ", dtype->name, " ", t.ShapeString(),
                   " needs ", expected);
    }
    t.data = bytes_ + data_start + *begin;
    t.size_bytes = static_cast<size_t>(expected);
    tensors_.emplace(name, std::move(t));
  }
  return absl::OkStatus();
}

const SafetensorsTensor* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat32(
    const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const SafetensorsTensor* t = Find(name);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat(label_, ": no tensor '", name, "'"));
  if (!expected_shape.empty() && t->shape != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(label_, ": tensor '", name, "' has shape ",
                                                   t->ShapeString(), ", expected [",
                                                   absl::StrJoin(expected_shape, ", "), "]"));
  }
  const size_t n = static_cast<size_t>(t->NumElements());
  std::vector<float> out(n);
  switch (t->dtype) {
    case SafetensorsDType::kF32:
      if (n > 0) std::memcpy(out.data(), t->data, n * sizeof(float));  // host is little-endian
      break;
    case SafetensorsDType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = HalfToFloat(LoadU16(t->data + 2 * i));
      break;
    case SafetensorsDType::kBF16:
      for (size_t i = 0; i < n; ++i) out[i] = BFloat16ToFloat(LoadU16(t->data + 2 * i));
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(label_, ": tensor '", name, "' has dtype ",
                                                     SafetensorsDTypeName(t->dtype),
                                                     ", expected F32, F16 or BF16"));
  }
  return out;
}

}  // namespace tipperary::model

// A minimal safetensors reader for the kernels tests: every F32, F16 and BF16 tensor of a file
// as float32, by name. src/model's SafetensorsFile is the product's reader; it parses the header
// with protobuf, which the kernels component must not depend on (it is built alone on the GPU
// machine, where only Abseil and GoogleTest travel), hence this small one.
//
//   std::map<std::string, std::vector<float>> tensors;
//   std::string error;
//   if (!ReadSafetensorsAsFloat(dir + "/model.safetensors", &tensors, &error)) FAIL() << error;
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tipperary/kernels/math.h"

namespace tipperary::kernels::testing {

// Tensor dtypes seen while reading, e.g. {"F16": 36, "F32": 65}: the GPU check reports them.
using DTypeCounts = std::map<std::string, int>;

// Reads every floating-point tensor; skips other dtypes (I64 position_ids). The header is flat
// JSON: "name":{"dtype":"..","shape":[..],"data_offsets":[a,b]}, with no nesting inside entries.
inline bool ReadSafetensorsAsFloat(const std::string& path,
                                   std::map<std::string, std::vector<float>>* tensors,
                                   std::string* error, DTypeCounts* dtypes = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open " + path;
    return false;
  }
  uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), 8);
  if (!in || header_size > (uint64_t{100} << 20)) {
    *error = path + ": bad header size";
    return false;
  }
  std::string header(header_size, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_size));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 1;
  while (true) {
    const size_t key_begin = header.find('"', pos);
    if (key_begin == std::string::npos) break;
    const size_t key_end = header.find('"', key_begin + 1);
    const size_t obj_begin = header.find('{', key_end);
    const size_t obj_end = header.find('}', obj_begin);
    if (key_end == std::string::npos || obj_begin == std::string::npos ||
        obj_end == std::string::npos) {
      *error = path + ": malformed header";
      return false;
    }
    const std::string name = header.substr(key_begin + 1, key_end - key_begin - 1);
    const std::string obj = header.substr(obj_begin, obj_end - obj_begin + 1);
    pos = obj_end + 1;
    if (name == "__metadata__") continue;
    const size_t dtype_at = obj.find("\"dtype\":\"");
    if (dtype_at == std::string::npos) {
      *error = "no dtype for " + name;
      return false;
    }
    const size_t dtype_begin = dtype_at + 9;
    const std::string dtype = obj.substr(dtype_begin, obj.find('"', dtype_begin) - dtype_begin);
    const size_t width = dtype == "F32" ? 4 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
    if (width == 0) continue;
    const size_t off = obj.find("\"data_offsets\":[");
    size_t a = 0, b = 0;
    if (off == std::string::npos ||
        std::sscanf(obj.c_str() + off, "\"data_offsets\":[%zu,%zu]", &a, &b) != 2 || b < a ||
        b > data.size() || (b - a) % width != 0) {
      *error = "bad data_offsets for " + name;
      return false;
    }
    std::vector<float> values((b - a) / width);
    const char* src = data.data() + a;
    for (size_t i = 0; i < values.size(); ++i) {
      if (width == 4) {
        std::memcpy(&values[i], src + 4 * i, 4);  // the host is little-endian, like the file
      } else {
        uint16_t bits = 0;
        std::memcpy(&bits, src + 2 * i, 2);
        values[i] = dtype == "F16" ? HalfBitsToFloat(bits) : Bf16BitsToFloat(bits);
      }
    }
    (*tensors)[name] = std::move(values);
    if (dtypes != nullptr) ++(*dtypes)[dtype];
  }
  return true;
}

}  // namespace tipperary::kernels::testing

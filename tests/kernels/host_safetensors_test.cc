// The kernels tests' safetensors reader on small hand-made files: F32, F16 (normal, negative,
// subnormal) and BF16 tensors read as float32, other dtypes skipped, broken offsets refused.
// The carried fp16 model (scripts/gpu-carry) is read through it on the GPU machine.
#include "host_safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace tipperary::kernels::testing {
namespace {

class HostSafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("host_safetensors_test_" + std::to_string(::getpid()) + ".safetensors");
  }
  void TearDown() override { std::filesystem::remove(path_); }

  // Writes an 8-byte little-endian header length, the header, then the data bytes.
  void Write(const std::string& header, const std::string& bytes) {
    std::ofstream out(path_, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << bytes;
  }

  std::filesystem::path path_;
};

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST_F(HostSafetensorsTest, ReadsF32F16AndBf16AsFloat) {
  const std::string data = Bytes(std::vector<float>{1.5f, -2.0f}) +
                           Bytes(std::vector<uint16_t>{0x3c00, 0xc000, 0x0001, 0x7bff}) +
                           Bytes(std::vector<uint16_t>{0x3f80, 0x4049}) +
                           Bytes(std::vector<int64_t>{7});
  Write(R"({"__metadata__":{"format":"pt"},)"
        R"("f":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("h":{"dtype":"F16","shape":[2,2],"data_offsets":[8,16]},)"
        R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},)"
        R"("ids":{"dtype":"I64","shape":[1],"data_offsets":[20,28]}})",
        data);
  std::map<std::string, std::vector<float>> t;
  std::string error;
  DTypeCounts dtypes;
  ASSERT_TRUE(ReadSafetensorsAsFloat(path_.string(), &t, &error, &dtypes)) << error;
  EXPECT_EQ(t.size(), 3u);  // the I64 tensor is skipped
  EXPECT_EQ(t["f"], (std::vector<float>{1.5f, -2.0f}));
  ASSERT_EQ(t["h"].size(), 4u);
  EXPECT_EQ(t["h"][0], 1.0f);
  EXPECT_EQ(t["h"][1], -2.0f);
  EXPECT_EQ(t["h"][2], 5.9604645e-8f);  // 2^-24, the smallest fp16 subnormal
  EXPECT_EQ(t["h"][3], 65504.0f);       // the largest finite fp16
  EXPECT_EQ(t["b"], (std::vector<float>{1.0f, 3.140625f}));
  EXPECT_EQ(dtypes, (DTypeCounts{{"BF16", 1}, {"F16", 1}, {"F32", 1}}));
}

TEST_F(HostSafetensorsTest, RefusesOffsetsOutsideTheFileOrOfOddLength) {
  std::map<std::string, std::vector<float>> t;
  std::string error;
  Write(R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", std::string(6, '\0'));
  EXPECT_FALSE(ReadSafetensorsAsFloat(path_.string(), &t, &error));
  EXPECT_EQ(error, "bad data_offsets for h");
  Write(R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,3]}})", std::string(4, '\0'));
  EXPECT_FALSE(ReadSafetensorsAsFloat(path_.string(), &t, &error));
  EXPECT_FALSE(ReadSafetensorsAsFloat(path_.string() + ".missing", &t, &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace tipperary::kernels::testing

// Runs the fuzz entry over pseudo-random and mutated inputs, so g++ builds exercise it too.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tipperary/testing/v1/test_service.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int RunFuzz(const std::string& s) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(TranscoderFuzzSmoke, SeedsAndMutations) {
  tipperary::testing::v1::AllTypes all;
  all.set_f_string("x");
  all.mutable_f_nested()->set_name("n");
  all.add_r_int64(5);
  (*all.mutable_m_string_int64())["k"] = 1;
  const std::vector<std::string> seeds = {
      std::string("\x02/v1/shelves/s/things/t\nview=a&page_size=3&filter.name=x\n"),
      std::string("\x03/v1/echo\npretty\n{\"fString\":\"x\",\"fNested\":{\"child\":{}}}"),
      std::string("\x07/v1/shelves/s/things/t\nupdate_mask=a\n{\"displayName\":\"d\"}"),
      std::string("\x13/v1/echo\n\n") + all.SerializeAsString(),
      std::string("\x05/v1/echo/n/42\nm_string_int64[a]=1\n{\"name\":\"q\"}"),
      std::string("\x0b/v1/locks/l%2F1\n\n"),
      std::string("\x61/v1/files/a/b%2Fc\nt=1\n") + all.SerializeAsString(),
      std::string("\x20/v1/{name=**}:x\n/v1/a:x\n\x0a\x02\x08\x01"),
  };
  std::mt19937 rng(12345);
  for (const std::string& seed : seeds) EXPECT_EQ(RunFuzz(seed), 0);
  for (int i = 0; i < 400; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[pos] = static_cast<char>(rng());
          break;
        case 1:
          s.insert(pos, 1, "{}[]\":,%/\n*=&.\\"[rng() % 16]);
          break;
        case 2:
          s.erase(pos, 1);
          break;
        default:
          s.insert(pos, s.substr(pos, rng() % 16));
      }
    }
    EXPECT_EQ(RunFuzz(s), 0);
  }
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    EXPECT_EQ(RunFuzz(s), 0);
  }
}

}  // namespace

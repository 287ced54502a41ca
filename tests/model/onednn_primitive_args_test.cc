// ArgsFor (src/model/onednn_primitive_args.h): the first primitive of a weight a thread runs
// makes the memory objects of all of the weight's primitives, once.
#include "../../src/model/onednn_primitive_args.h"  // internal; tested directly

#include <gtest/gtest.h>

#include <vector>

namespace tipperary::model::internal {
namespace {

using dnnl::memory;

struct FakePrim {
  memory::desc src, dst, pad;
};

FakePrim Prim(int m) {
  const memory::desc d({m, 4}, memory::data_type::f32, memory::format_tag::ab);
  return {d, d, memory::desc({m * 8}, memory::data_type::u8, memory::format_tag::a)};
}

TEST(PrimitiveArgsTest, TheFirstRunOfAWeightMakesTheArgumentsOfAllItsPrimitives) {
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  const std::vector<FakePrim> full = {Prim(16), Prim(32)};
  const std::vector<FakePrim> tail = {Prim(1), Prim(2), Prim(3)};
  const std::vector<FakePrim> other = {Prim(16)};
  PrimitiveArgsMap map;

  PrimitiveArgs& first = ArgsFor(tail[1], {&full, &tail}, engine, &map);
  EXPECT_EQ(map.size(), 5u);
  for (const std::vector<FakePrim>* prims : {&full, &tail}) {
    for (const FakePrim& p : *prims) {
      ASSERT_EQ(map.count(&p), 1u);
      EXPECT_EQ(map.at(&p).src.get_desc(), p.src);
      EXPECT_EQ(map.at(&p).pad.get_desc(), p.pad);
      EXPECT_EQ(map.at(&p).src.get_data_handle(), nullptr);  // set per call
    }
  }
  // Made once: the same objects come back, and a second weight adds only its own.
  EXPECT_EQ(&ArgsFor(tail[1], {&full, &tail}, engine, &map), &first);
  EXPECT_EQ(ArgsFor(full[0], {&full, &tail}, engine, &map).dst.get(), map.at(&full[0]).dst.get());
  ArgsFor(other[0], {&other}, engine, &map);
  EXPECT_EQ(map.size(), 6u);
}

}  // namespace
}  // namespace tipperary::model::internal

// FUZZ_CHECK(condition): a fuzz target's invariant. When it does not hold, says which (file,
// line, the condition's text) and aborts, so libFuzzer keeps the input as a finding; the replay
// build (replay_main.cc) fails the same way. Test code, header-only.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

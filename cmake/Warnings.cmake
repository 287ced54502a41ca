# Warnings live on an interface target that each of our targets links privately, so that
# generated code and third-party headers are never compiled with them. -Wshadow=local is GCC's
# spelling (clang, in the fuzz preset, has no such option).
add_library(tipperary_warnings INTERFACE)
add_library(tipperary::warnings ALIAS tipperary_warnings)
target_compile_options(tipperary_warnings INTERFACE
  -Wall -Wextra -Wpedantic $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local> -Wnon-virtual-dtor
  -Wcast-align -Wunused -Woverloaded-virtual -Wimplicit-fallthrough -Wno-unused-parameter)

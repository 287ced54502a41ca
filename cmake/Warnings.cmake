# Warnings live on an interface target that each of our targets links privately, so that
# generated code and third-party headers are never compiled with them.
add_library(tipperary_warnings INTERFACE)
add_library(tipperary::warnings ALIAS tipperary_warnings)
target_compile_options(tipperary_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor -Wcast-align -Wunused
  -Woverloaded-virtual -Wimplicit-fallthrough -Wno-unused-parameter)

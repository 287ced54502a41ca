# ThreadSanitizer builds (the tsan preset, CMAKE_CXX_FLAGS with -fsanitize=thread): what
# Debian's uninstrumented libraries need so that TSan keeps their ABI and sees their locking.
# Nothing here is part of any other build. docs/sanitizers.md explains each piece.
if(NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
  return()
endif()

# GCC defines __SANITIZE_THREAD__ under -fsanitize=thread, and protobuf's map_field.h then gives
# MapFieldBase a layout that Debian's libprotobuf does not have. The header in cmake/tsan/include
# hides the macro from it.
include_directories(BEFORE SYSTEM ${PROJECT_SOURCE_DIR}/cmake/tsan/include)

# absl::Mutex and absl::CondVar, annotated for TSan for every caller (ours and gRPC's); see
# cmake/tsan/absl_mutex_annotations.cc. Linked first into every target defined after this, so it
# comes before libabsl_synchronization in each binary's list of libraries.
add_library(tipperary_tsan_absl SHARED ${PROJECT_SOURCE_DIR}/cmake/tsan/absl_mutex_annotations.cc)
target_link_libraries(tipperary_tsan_absl PRIVATE absl::synchronization absl::time ${CMAKE_DL_LIBS})
link_libraries(tipperary_tsan_absl)

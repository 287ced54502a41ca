"""Fixtures for the end-to-end tests: the real tipperary-proxy in front of the real test backend.

Binaries come from environment variables that ctest sets (tests/integration/CMakeLists.txt):
  TIPPERARY_PROXY_BIN, TIPPERARY_BACKEND_BIN, TIPPERARY_DESCRIPTOR_SET
When one is unset the newest build under <repo>/build/*/ is used, so that a developer can run
  .venv/bin/python -m pytest tests/integration
straight after building. A missing proxy binary fails the tests; TIPPERARY_ALLOW_MISSING_PROXY=1
turns that into a skip (only for working on the tests before the proxy exists).

Every process is started on port 0 and announces its real address in a JSON "listening" line;
nothing here uses a fixed port.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pathlib
import re
import shutil
import sys
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pytest
import requests

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICE = "tipperary.testing.v1.TestService"
HTTP_TIMEOUT = 15  # Seconds; a hang guard for every client call, never a performance bound.
START_TIMEOUT = 30

# --------------------------------------------------------------------------------------------
# Locating binaries.


def _newest(candidates: Iterable[pathlib.Path]) -> pathlib.Path | None:
    existing = [c for c in candidates if c.is_file()]
    return max(existing, key=lambda c: c.stat().st_mtime) if existing else None


def _find(env: str, pattern: str) -> pathlib.Path | None:
    value = os.environ.get(env)
    if value:
        path = pathlib.Path(value)
        return path if path.is_file() else None
    return _newest((REPO_ROOT / "build").glob(pattern))


def proxy_bin() -> pathlib.Path:
    path = _find("TIPPERARY_PROXY_BIN", "*/src/proxy/tipperary-proxy")
    if path is None:
        message = ("tipperary-proxy binary not found (set TIPPERARY_PROXY_BIN or build the "
                   "tipperary_proxy target)")
        if os.environ.get("TIPPERARY_ALLOW_MISSING_PROXY") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    return path


def backend_bin() -> pathlib.Path:
    path = _find("TIPPERARY_BACKEND_BIN", "*/tests/backend/tipperary-test-backend")
    if path is None:
        pytest.fail("tipperary-test-backend not found (set TIPPERARY_BACKEND_BIN or build the "
                    "tipperary_test_backend target)", pytrace=False)
    return path


def descriptor_set() -> pathlib.Path:
    path = _find("TIPPERARY_DESCRIPTOR_SET", "*/proto/test_service.pb")
    if path is None:
        pytest.fail("test_service.pb not found (set TIPPERARY_DESCRIPTOR_SET or build the "
                    "tipperary_test_descriptor_set target)", pytrace=False)
    return path


# --------------------------------------------------------------------------------------------
# Processes.

_ALL_PROCS: list["Proc"] = []


class Proc:
    """A child process whose stdout and stderr are read line by line on background threads."""

    def __init__(self, name: str, args: list[str], cwd: str | None = None):
        self.name = name
        self.args = [str(a) for a in args]
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, cwd=cwd)
        self._readers = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        _ALL_PROCS.append(self)

    def _pump(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def json_lines(self, stream: str = "stderr") -> list[dict]:
        with self._cond:
            lines = list(self.stderr if stream == "stderr" else self.stdout)
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def wait_for_json(self, predicate: Callable[[dict], bool], timeout: float = START_TIMEOUT,
                      stream: str = "stderr", count: int = 1) -> list[dict]:
        """Waits until `count` JSON lines match; fails with the log tail on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.json_lines(stream) if predicate(line)]
            if len(found) >= count:
                return found
            if not self.alive() and all(not r.is_alive() for r in self._readers):
                found = [line for line in self.json_lines(stream) if predicate(line)]
                if len(found) >= count:
                    return found
                pytest.fail(f"{self.name} exited with {self.popen.returncode} while waiting; "
                            f"log:\n{self.tail()}", pytrace=False)
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{self.name}: timed out waiting for a log line; log:\n{self.tail()}",
                            pytrace=False)
            with self._cond:
                self._cond.wait(min(left, 0.2))

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.name} did not exit within {timeout}s; log:\n{self.tail()}",
                        pytrace=False)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Best-effort teardown: signal, then SIGKILL after `timeout`."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for reader in self._readers:
            reader.join(2)
        return self.popen.returncode

    def tail(self, n: int = 60) -> str:
        with self._cond:
            err = self.stderr[-n:]
            out = self.stdout[-n // 2:]
        return ("--- stderr ---\n" + "\n".join(err) + "\n--- stdout ---\n" + "\n".join(out))

    def sanitizer_report(self) -> str | None:
        """The stderr from the first sanitizer report on, if the process printed one."""
        with self._cond:
            err = list(self.stderr)
        for i, line in enumerate(err):
            if SANITIZER_REPORT.search(line):
                return "\n".join(err[i:i + 80])
        return None


# A sanitizer report in a child process (the sanitizer presets' builds) fails the run even when
# every request still got its answer: one printed during shutdown, after the last assertion,
# would otherwise go unnoticed. ThreadSanitizer, AddressSanitizer/LeakSanitizer and
# UndefinedBehaviorSanitizer ("file:line:col: runtime error: ..."), and the debug assertions of
# tipperary/common/check.h ("file:line: invariant failed: ...", Debug builds: both presets).
SANITIZER_REPORT = re.compile(
    r"WARNING: ThreadSanitizer:|ERROR: (Address|Leak)Sanitizer:|:\d+:\d+: runtime error: "
    r"|:\d+: invariant failed: ")


def pytest_sessionfinish(session, exitstatus):
    for proc in _ALL_PROCS:
        if proc.alive():
            continue  # Still running: its reader threads are still filling stderr.
        for reader in proc._readers:
            reader.join(2)
        report = proc.sanitizer_report()
        if report is not None:
            print(f"\n{proc.name} (pid {proc.pid}, rc {proc.popen.returncode}) printed a "
                  f"sanitizer report:\n{report}", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in _ALL_PROCS[-6:]:
            report.sections.append((f"{proc.name} (pid {proc.pid}, rc {proc.popen.poll()})",
                                    proc.tail(40)))


# --------------------------------------------------------------------------------------------
# The backend.


@dataclass
class Backend:
    proc: Proc
    address: str  # As the backend announced it: "127.0.0.1:PORT" or "unix:/path".

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def cancellations(self) -> list[dict]:
        return [l for l in self.proc.json_lines() if l.get("msg") == "cancelled"]

    def slow_started(self) -> list[dict]:
        return [l for l in self.proc.json_lines() if l.get("msg") == "slow started"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        return self.proc.stop(sig, timeout)


def start_backend(address: str = "127.0.0.1:0", extra: list[str] | None = None,
                  attempts: int = 1) -> Backend:
    for attempt in range(attempts):
        proc = Proc("backend", [backend_bin(), "--address", address, *(extra or [])])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            lines = [l for l in proc.json_lines("stdout") if l.get("msg") == "listening"]
            if lines:
                return Backend(proc, lines[0]["address"])
            if not proc.alive():
                break
            time.sleep(0.02)
        proc.stop(signal.SIGKILL)
        if attempt + 1 == attempts:
            pytest.fail(f"backend did not start on {address}; log:\n{proc.tail()}", pytrace=False)
        time.sleep(0.3)  # Rebinding a just-released port can briefly fail.
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# The proxy.


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML emitter for config dicts (block style; scalars JSON-quoted)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = ""
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out += f"{pad}{key}:\n" + to_yaml(item, indent + 1)
            else:
                out += f"{pad}{key}: {_scalar(item)}\n"
        return out
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = ""
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1)
                out += f"{pad}- " + body.lstrip(" ")
            elif isinstance(item, list) and item:
                out += f"{pad}-\n" + to_yaml(item, indent + 1)
            else:
                out += f"{pad}- {_scalar(item)}\n"
        return out
    return pad + _scalar(value) + "\n"


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value))


METRIC_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
METRIC_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_SAMPLE.match(line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = {}
        if m.group(3):
            rest = m.group(3)
            for lm in METRIC_LABEL.finditer(rest):
                labels[lm.group(1)] = lm.group(2)
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def metric(proxy, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels`, from the admin port."""
    r = proxy.admin_get("/metrics")
    assert r.status_code == 200
    total = 0.0
    for sample_name, sample_labels, value in parse_metrics(r.text):
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            total += value
    return total


def base_config(upstream_endpoint: str, **overrides: Any) -> dict:
    """The default proxy config for a backend; top-level keys in overrides replace or (for
    dicts) update the defaults."""
    config: dict[str, Any] = {
        "listeners": [{"address": "127.0.0.1:0"}],
        "admin": {"address": "127.0.0.1:0"},
        "descriptors": [str(descriptor_set())],
        "upstreams": [{"name": "backend", "endpoints": [upstream_endpoint]}],
        "transcoding": {"allow_grpc_method_paths": True},
        "routes": [{"method": "POST", "path": "/v1/unannotated",
                    "grpc_method": f"{SERVICE}/Unannotated", "body": "*", "timeout": "10s"}],
        "timeouts": {"upstream_default": "20s", "drain": "5s"},
        "logging": {"level": "info", "access_log": True},
        # Port 0: the default 9903 would clash between tests running in parallel.
        "autoscaling": {"external_scaler_address": "127.0.0.1:0"},
        "threads": 2,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@dataclass
class Proxy:
    proc: Proc
    config_path: pathlib.Path
    http: list[str]  # Listener addresses in config order, "127.0.0.1:PORT".
    admin: str
    session: requests.Session = field(default_factory=requests.Session)
    external_scaler: str | None = None  # "127.0.0.1:PORT" of the KEDA external scaler.

    @property
    def url(self) -> str:
        return f"http://{self.http[0]}"

    @property
    def host(self) -> str:
        return self.http[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.http[0].rsplit(":", 1)[1])

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> requests.Response:
        if body is not None:
            kwargs["json"] = body
        return self.request("POST", path, **kwargs)

    def admin_get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return requests.get(self.admin_url + path, **kwargs)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.proc.alive():
                pytest.fail(f"proxy exited with {self.proc.popen.returncode}; "
                            f"log:\n{self.proc.tail()}", pytrace=False)
            with contextlib.suppress(requests.RequestException):
                last = self.admin_get("/readyz", timeout=2)
                if last.status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail(f"proxy /readyz not 200 within {timeout}s (last: "
                    f"{last.status_code if last is not None else 'no answer'}); "
                    f"log:\n{self.proc.tail()}", pytrace=False)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        self.session.close()
        return self.proc.stop(sig, timeout)


def write_config(directory: pathlib.Path, config: dict | str, name: str = "proxy.yaml"
                 ) -> pathlib.Path:
    path = directory / name
    path.write_text(config if isinstance(config, str) else to_yaml(config))
    return path


def start_proxy(config: dict | str, directory: pathlib.Path | None = None,
                wait_ready: bool = True, extra_args: list[str] | None = None) -> Proxy:
    binary = proxy_bin()
    directory = directory or pathlib.Path(tempfile.mkdtemp(prefix="tipperary-it-"))
    path = write_config(directory, config)
    proc = Proc("proxy", [binary, "--config", path, *(extra_args or [])])
    n_listeners = len(config["listeners"]) if isinstance(config, dict) else 1
    # The HTTP listeners and the admin port announce themselves; the external scaler, when on,
    # binds in the proxy's setup, before any of them, so its line is already there by then.
    lines = proc.wait_for_json(lambda l: l.get("msg") == "listening" and
                               l.get("name") != "external_scaler", count=n_listeners + 1)
    http = [l["address"] for l in lines if l.get("name") != "admin"]
    admin = [l["address"] for l in lines if l.get("name") == "admin"]
    scaler = [l["address"] for l in proc.json_lines()
              if l.get("msg") == "listening" and l.get("name") == "external_scaler"]
    proxy = Proxy(proc, path, http, admin[0], external_scaler=scaler[0] if scaler else None)
    if wait_ready:
        proxy.wait_ready()
    return proxy


@dataclass
class Stack:
    backend: Backend
    proxy: Proxy
    directory: pathlib.Path

    def stop(self) -> None:
        # Proxy first: an idle upstream connection would hold the backend's graceful shutdown.
        self.proxy.stop()
        self.backend.stop(signal.SIGTERM, timeout=3)


def start_stack(directory: pathlib.Path | None = None, backend_args: list[str] | None = None,
                **overrides: Any) -> Stack:
    directory = directory or pathlib.Path(tempfile.mkdtemp(prefix="tipperary-it-"))
    directory.mkdir(parents=True, exist_ok=True)
    backend = start_backend(extra=backend_args)
    try:
        proxy = start_proxy(base_config(backend.address, **overrides), directory)
    except BaseException:
        backend.stop(signal.SIGKILL)
        raise
    return Stack(backend, proxy, directory)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    """A backend and a proxy with the default config, shared by the tests of one module."""
    s = start_stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def proxy(stack) -> Proxy:
    return stack.proxy


@pytest.fixture
def make_stack(tmp_path):
    """Starts stacks with custom settings, torn down after the test."""
    stacks: list[Stack] = []

    def make(**overrides: Any) -> Stack:
        s = start_stack(tmp_path / f"s{len(stacks)}", **overrides)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.stop()


@pytest.fixture
def procs():
    """Collects processes a test starts itself, killed at teardown."""
    started: list[Any] = []
    yield started
    for p in reversed(started):  # Proxies were appended after their backends: stop them first.
        with contextlib.suppress(Exception):
            if isinstance(p, Proxy):
                p.stop(signal.SIGTERM, timeout=5)
            else:
                p.stop(signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# Helpers.


def free_port() -> int:
    """A port nothing listens on right now (bound then released: only for 'nothing here')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_until(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Polls predicate until truthy; a hang guard, never a performance assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}", pytrace=False)
        time.sleep(interval)


def error_body(response: requests.Response) -> dict:
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        f"error Content-Type {response.headers.get('Content-Type')!r}, body {response.text!r}")
    body = response.json()
    assert isinstance(body.get("code"), int), body
    assert isinstance(body.get("message"), str), body
    return body


def curl(*args: str, timeout: float = HTTP_TIMEOUT) -> subprocess.CompletedProcess:
    if shutil.which("curl") is None:
        pytest.fail("curl is required", pytrace=False)
    return subprocess.run(["curl", "-sS", "--max-time", str(int(timeout)), *args],
                          capture_output=True, timeout=timeout + 10)


# --------------------------------------------------------------------------------------------
# A raw HTTP/1.1 client: pipelining, trailers and malformed requests that libraries hide.


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]
    chunked: bool

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def trailer(self, name: str) -> str | None:
        for key, value in self.trailers:
            if key.lower() == name.lower():
                return value
        return None


class RawConnection:
    def __init__(self, host: str, port: int, timeout: float = HTTP_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed mid-line; have {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"connection closed; wanted {n} bytes, have {len(self.buf)}")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def closed_by_peer(self) -> bool:
        """True if the peer closes the connection (reads and discards anything it sends)."""
        try:
            while self._fill():
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def read_response(self, head: bool = False) -> RawResponse:
        status_line = self._line().decode("latin-1")
        version, status, *reason = status_line.split(" ", 2)
        assert version.startswith("HTTP/1."), status_line
        headers = self._fields()
        resp = RawResponse(int(status), reason[0] if reason else "", headers, b"", [], False)
        code = resp.status
        if head or code in (204, 304) or 100 <= code < 200:
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            resp.chunked = True
            body = b""
            while True:
                size_line = self._line().decode("latin-1")
                size = int(size_line.split(";", 1)[0].strip(), 16)
                if size == 0:
                    resp.trailers = self._fields()
                    break
                body += self._exactly(size)
                assert self._exactly(2) == b"\r\n", "chunk not followed by CRLF"
            resp.body = body
        elif resp.header("Content-Length") is not None:
            resp.body = self._exactly(int(resp.header("Content-Length")))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def _fields(self) -> list[tuple[str, str]]:
        fields = []
        while True:
            line = self._line()
            if not line:
                return fields
            key, _, value = line.decode("latin-1").partition(":")
            fields.append((key.strip(), value.strip()))


def raw_request(method: str, path: str, body: bytes = b"", headers: dict | None = None,
                host: str = "localhost") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    hdrs = dict(headers or {})
    if body or method in ("POST", "PUT", "PATCH"):
        hdrs.setdefault("Content-Length", str(len(body)))
    for key, value in hdrs.items():
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------------------------
# Protobuf messages from the descriptor set (for binary protobuf bodies).


class Schema:
    def __init__(self, path: pathlib.Path):
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        self.pool = descriptor_pool.DescriptorPool()
        for proto in files.file:
            self.pool.Add(proto)
        self._factory = message_factory.MessageFactory(self.pool)

    def message(self, full_name: str):
        descriptor = self.pool.FindMessageTypeByName(full_name)
        if hasattr(self._factory, "GetPrototype"):
            return self._factory.GetPrototype(descriptor)
        from google.protobuf import message_factory

        return message_factory.GetMessageClass(descriptor)


@pytest.fixture(scope="session")
def schema() -> Schema:
    return Schema(descriptor_set())


class SteadyLoad:
    """Steady load on the proxy from several keep-alive clients, each posting without pause;
    every failure (a status other than 200, or a transport error) is kept with its time, so a
    test can count the failures of each event it causes."""

    def __init__(self, proxy: "Proxy", clients: int = 4, path: str = "/v1/echo",
                 body: Any = None):
        self.proxy = proxy
        self.path = path
        self.body = body if body is not None else {"fString": "load"}
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self.durations: list[tuple[float, float]] = []  # (finished at, seconds) of every request.
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop_flag.is_set():
            started = time.monotonic()
            try:
                r = session.post(self.proxy.url + self.path, json=self.body, timeout=HTTP_TIMEOUT)
                with self.lock:
                    now = time.monotonic()
                    self.durations.append((now, now - started))
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failures.append((time.monotonic(), f"{r.status_code} {r.text[:200]}"))
            except requests.RequestException as e:
                with self.lock:
                    self.failures.append((time.monotonic(), repr(e)))

    def counts(self) -> tuple[int, int]:
        """(succeeded, failed) so far."""
        with self.lock:
            return self.ok, len(self.failures)

    def longest(self, since: float) -> float:
        """The longest request (seconds) among those finished since `since` (monotonic)."""
        with self.lock:
            return max((d for t, d in self.durations if t >= since), default=0.0)

    def wait_for(self, more: int, timeout: float = 20) -> None:
        """Until `more` further requests succeeded (the load runs on)."""
        start = self.counts()[0]
        wait_until(lambda: self.counts()[0] >= start + more, timeout=timeout,
                   message=f"{more} more requests to succeed")

    def finish(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

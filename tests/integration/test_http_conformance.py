"""HTTP/1.1 conformance and request smuggling, with raw sockets, on every listener tipperary has:
the proxy's HTTP port, the proxy's admin port and the worker's admin port (they share one
listener component; each is tried, because each is reachable).

The cases are in http_cases.py (RFC 9112 §2-§7 and the smuggling research); each rejected case
must be answered with its status and a google.rpc.Status body, then the connection closes and
nothing after the error is answered; each accepted case must leave the connection usable.
Below them: trailers never reaching the upstream, memory bounded under chunk-extension and
trailer floods, and a drain that finishes writing a large response to a slow reader.
"""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import (RawConnection, base_config, raw_request, start_backend, start_proxy,
                      wait_until)
from http_cases import CASES, Case, Target
from test_worker_e2e import start_worker

LISTENERS = ["proxy_http", "proxy_admin", "worker_admin"]
# Statuses the listener answers itself (framing, limits, versions); an accepted request never
# gets one of these from the listener.
LISTENER_STATUSES = {400, 408, 413, 414, 417, 431, 501, 505}


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    directory = tmp_path_factory.mktemp("conformance")
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address), directory)
    worker = start_worker(directory)
    host = "127.0.0.1"
    admin_host, admin_port = proxy.admin.rsplit(":", 1)
    worker_host, worker_port = worker.admin.rsplit(":", 1)
    out = {
        "proxy_http": Target(host, proxy.port, "/v1/echo/abc", "/v1/echo", b'{"fString":"x"}'),
        "proxy_admin": Target(admin_host, int(admin_port), "/healthz", "/healthz", b"{}"),
        "worker_admin": Target(worker_host, int(worker_port), "/healthz", "/healthz", b"{}"),
    }
    yield out
    proxy.stop()
    worker.stop()
    backend.stop(signal.SIGTERM, timeout=3)


def read_until_eof(conn: RawConnection, timeout: float = 5.0) -> bytes:
    """What the peer still sends before it closes; fails if it never closes."""
    conn.sock.settimeout(timeout)
    data = conn.buf
    conn.buf = b""
    try:
        while True:
            chunk = conn.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
    except socket.timeout:
        pytest.fail(f"the connection was not closed; received {data[:200]!r}", pytrace=False)


def is_http10(data: bytes) -> bool:
    return data.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0")


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(targets, listener: str, case: Case):
    target = targets[listener]
    data = case.build(target)
    with RawConnection(target.host, target.port, timeout=10) as conn:
        try:
            conn.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # A large rejected request may be cut short; the response is still there.
        first = conn.read_response(head=data.startswith(b"HEAD"))
        if case.expect == "ok":
            assert first.status not in LISTENER_STATUSES, (
                f"{case.name} ({case.rfc}) was rejected: {first.status} {first.body[:200]!r}")
            if is_http10(data):
                return
            # The framing left nothing behind: the next request on this connection is answered.
            conn.send(f"GET {target.get} HTTP/1.1\r\nHost: {target.host}\r\n\r\n".encode())
            follow_up = conn.read_response()
            assert follow_up.status == 200, follow_up.body[:200]
            return
        assert first.status == case.expect, (
            f"{case.name} ({case.rfc}): got {first.status} {first.body[:300]!r}")
        assert (first.header("Connection") or "").lower() == "close"
        status = json.loads(first.body)
        assert isinstance(status.get("code"), int) and status["code"] != 0, status
        assert isinstance(status.get("message"), str) and status["message"], status
        # Nothing after the error is read as a request: no second response, then EOF.
        rest = read_until_eof(conn)
        assert b"HTTP/1." not in rest, f"{case.name}: a second response followed: {rest[:200]!r}"


def test_nginx_column_is_current():
    """docs/http-conformance.md compares each case with nginx; re-ask nginx so that column is
    what Debian's nginx really answers today (scripts/install-deps installs it)."""
    result = subprocess.run([sys.executable, str(pathlib.Path(__file__).with_name(
        "compare_nginx.py")), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Trailers never reach the upstream (RFC 9110 §6.5.1), unless named by an operator.


def chunked_metadata_call(proxy, trailers: str) -> dict:
    body = b"{}"
    request = (b"POST /v1/metadata HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body +
               b"\r\n0\r\n" + trailers.encode() + b"\r\n")
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(request)
        resp = conn.read_response()
    assert resp.status == 200, resp.body
    return json.loads(resp.body).get("received", {})


def test_trailers_are_dropped(tmp_path):
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address), tmp_path)
    try:
        received = chunked_metadata_call(
            proxy, "Authorization: Bearer smuggled\r\nGrpc-Metadata-Tenant: evil\r\n"
                   "Content-Type: application/x-protobuf\r\nGrpc-Timeout: 1n\r\nX-Trace: t\r\n")
        assert "authorization" not in received
        assert "tenant" not in received
        assert "x-trace" not in received
    finally:
        proxy.stop()
        backend.stop(signal.SIGTERM, timeout=3)


def test_named_trailers_are_forwarded_as_metadata(tmp_path):
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address,
                                    metadata={"forward_request_trailers": ["X-Trace"]}), tmp_path)
    try:
        received = chunked_metadata_call(proxy, "X-Trace: t1\r\nAuthorization: no\r\n")
        assert received.get("x-trace") == "t1"
        assert "authorization" not in received
    finally:
        proxy.stop()
        backend.stop(signal.SIGTERM, timeout=3)


# --------------------------------------------------------------------------------------------
# Memory stays flat under floods of what the decoder must buffer.


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def flood(host: str, port: int, head: bytes, filler: bytes, total: int) -> int:
    """Sends head then `total` bytes of filler, until the server stops reading; the bytes sent."""
    sent = 0
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            sock.sendall(head)
            piece = filler * (65536 // len(filler))
            while sent < total:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
    return sent


def test_chunk_extension_and_trailer_floods_keep_memory_flat(tmp_path):
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address), tmp_path)
    try:
        for _ in range(20):  # Warm up: allocator arenas, route stats, upstream connection.
            assert proxy.post("/v1/echo", {"fString": "warm"}).status_code == 200
        time.sleep(0.2)
        idle_hwm = rss_kib(proxy.proc.pid, "VmHWM")
        idle_rss = rss_kib(proxy.proc.pid)
        head = (b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        attacks = []
        for i in range(8):
            if i % 2 == 0:  # An endless chunk extension.
                attacks.append((head + b"5;", b"e" * 64))
            else:  # An endless trailer section.
                attacks.append((head + b"0\r\nX-T: ", b"t" * 64))
        sent = [0] * len(attacks)

        def run(i):
            sent[i] = flood(proxy.host, proxy.port, attacks[i][0], attacks[i][1], 16 << 20)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(attacks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        grown_kib = rss_kib(proxy.proc.pid, "VmHWM") - idle_hwm
        # The proxy stops reading at its limits (KiB), so the clients cannot push megabytes
        # into it; its peak resident memory stays within a few MiB of idle.
        # (After its answer a connection reads and discards for a linger period, so that the
        # client sees the response rather than a reset: the clients may push their whole
        # flood, into nothing.)
        print(f"flood: peak RSS +{grown_kib} KiB, sent {sum(sent) >> 20} MiB")
        assert grown_kib < 4 * 1024, (f"peak RSS grew by {grown_kib} KiB (idle {idle_rss} KiB; "
                                      f"sent {sum(sent) >> 20} MiB)")
        # And the proxy still serves.
        assert proxy.post("/v1/echo", {"fString": "after"}).status_code == 200
    finally:
        proxy.stop()
        backend.stop(signal.SIGTERM, timeout=3)


# --------------------------------------------------------------------------------------------
# Drain: a response being written is finished before the process exits.


def test_sigterm_finishes_a_large_response_to_a_slow_reader(tmp_path):
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address, timeouts={"drain": "20s"}), tmp_path)
    size = 8 << 20
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=30)
        # A small receive buffer so that most of the response waits in the proxy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(raw_request("GET", f"/v1/big?size={size}"))
        data = sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        proxy.proc.send_signal(signal.SIGTERM)
        received = len(data)
        while True:
            chunk = sock.recv(16384)
            if not chunk:
                break
            data += chunk
            received += len(chunk)
            time.sleep(0.002)  # A slow reader: the write outlives the first drain checks.
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length")][0])
        assert len(body) == length, f"got {len(body)} of {length} body bytes"
        assert json.loads(body)["size"] == str(size)
        assert proxy.proc.wait(30) == 0
        drained = [l for l in proxy.proc.json_lines() if l.get("msg") == "drained"]
        assert drained and drained[0].get("unfinished") == "0", drained
    finally:
        proxy.stop()
        backend.stop(signal.SIGTERM, timeout=3)


def test_drain_timeout_is_reported_and_exits_non_zero(tmp_path):
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address, timeouts={"drain": "1s"}), tmp_path)
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(raw_request("GET", f"/v1/big?size={16 << 20}"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        proxy.proc.send_signal(signal.SIGTERM)  # And never read again: the drain runs out.
        assert proxy.proc.wait(30) != 0
        drained = [l for l in proxy.proc.json_lines() if l.get("msg") == "drained"]
        assert drained and drained[0].get("unfinished") == "1", drained
        sock.close()
    finally:
        proxy.stop()
        backend.stop(signal.SIGTERM, timeout=3)

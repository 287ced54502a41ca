"""Streams with flow control in both directions, through the real proxy and the real backend.

A client stream's NDJSON body goes upstream message by message as it arrives, held back by the
upstream's HTTP/2 window (and the client by TCP): a body far over limits.max_request_body_bytes
goes through in bounded memory, and a bidi call answers each message before the body has ended.
A server stream whose client reads slowly holds the upstream back instead of being buffered or
cut.
"""

from __future__ import annotations

import json
import pathlib
import socket
import time

import requests

from conftest import HTTP_TIMEOUT, RawConnection, raw_request
from test_http_conformance import rss_kib


def _measures_rss(pid: int) -> bool:
    # Under ASan (its quarantine) or TSan (shadow memory) RSS measures the sanitizer, not us.
    maps = pathlib.Path(f"/proc/{pid}/maps").read_text()
    return "libasan" not in maps and "libtsan" not in maps


def test_a_streamed_upload_far_over_the_body_limit_goes_through_in_bounded_memory(make_stack):
    # Default limits (max_request_body_bytes is 4 MiB); time for a sanitizer build's pace.
    s = make_stack(timeouts={"upstream_default": "300s", "max_upstream": "300s"})
    proxy = s.proxy
    name = "n" * 1000
    line = (json.dumps({"name": name}) + "\n").encode()
    # 64 MiB of NDJSON (16 under a sanitizer), sent chunked as it is produced.
    total = (64 << 20) if _measures_rss(proxy.proc.pid) else (16 << 20)
    count = total // len(line)

    def body():
        batch = line * 64
        for _ in range(count // 64):
            yield batch
        yield line * (count % 64)

    idle_hwm = rss_kib(proxy.proc.pid, "VmHWM")
    r = requests.post(proxy.url + "/v1/things:collect", data=body(),
                      headers={"Content-Type": "application/x-ndjson"}, timeout=300)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["nextPageToken"] == f"{count} things, {count * len(name)} name bytes"
    grown_kib = rss_kib(proxy.proc.pid, "VmHWM") - idle_hwm
    print(f"{total >> 20} MiB client stream: peak RSS +{grown_kib} KiB")
    if _measures_rss(proxy.proc.pid):
        assert grown_kib < 32 * 1024, f"peak RSS grew by {grown_kib} KiB for a 64 MiB stream"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_until(conn: RawConnection, needle: bytes, timeout: float = HTTP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while needle not in conn.buf:
        assert time.monotonic() < deadline, f"no {needle!r} yet; have {conn.buf[:300]!r}"
        chunk = conn.sock.recv(65536)
        assert chunk, f"connection closed before {needle!r}; have {conn.buf[:300]!r}"
        conn.buf += chunk


def test_bidi_answers_each_message_before_the_body_ends(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(b"POST /v1/things:echo HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/x-ndjson\r\nAccept: application/x-ndjson\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(3):
            conn.send(_chunk(json.dumps({"name": f"t{i}", "size": str(i + 1)}).encode() + b"\n"))
            # The reply to this message arrives while the request is still open.
            _read_until(conn, f'"t{i}"'.encode())
        conn.send(b"0\r\n\r\n")
        _read_until(conn, b"\r\n0\r\n")
        assert conn.buf.startswith(b"HTTP/1.1 200 "), conn.buf[:200]
        replies = [json.loads(line) for line in conn.buf.split(b"\r\n")
                   if line.startswith(b"{")]
        assert replies == [{"name": f"t{i}", "size": str(2 * (i + 1))} for i in range(3)]


def test_a_bad_message_mid_stream_ends_the_call_with_a_400(proxy):
    r = requests.post(proxy.url + "/v1/things:collect",
                      data=iter([b'{"name":"a"}\n', b'{"name":"b"}\n{"nope"', b':1}\n']),
                      headers={"Content-Type": "application/x-ndjson"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.text
    assert "message 3 of the stream" in r.json()["message"]
    # The proxy and its connection pool are fine afterwards.
    assert requests.post(proxy.url + "/v1/things:collect", data=b'{"name":"c"}\n',
                         timeout=HTTP_TIMEOUT).json()["things"] == [{"name": "c"}]


def test_a_slow_reader_holds_the_upstream_back_instead_of_being_cut(make_stack):
    """The client stops reading for a while as the backend sends megabytes. The stream is
    neither cut (limits.max_stream_buffer_bytes is never reached) nor buffered: the proxy keeps
    the upstream's HTTP/2 window closed while the client is a window behind. (With the window
    over the cap, the same client gets the stream cut: test_bodies.py.)"""
    s = make_stack()
    proxy = s.proxy
    count = 200000  # About 5 MiB of NDJSON, more than max_stream_buffer_bytes (4 MiB).
    idle_hwm = rss_kib(proxy.proc.pid, "VmHWM")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(HTTP_TIMEOUT)
    sock.connect((proxy.host, proxy.port))
    with sock:
        sock.sendall(raw_request("GET", f"/v1/stream?count={count}",
                                 headers={"Accept": "application/x-ndjson"}))
        data = b""
        paused = False
        while not data.endswith(b"\r\n0\r\n\r\n") and b"Grpc-Status" not in data[-300:]:
            chunk = sock.recv(8192)
            if not chunk:
                break
            data += chunk
            if not paused and len(data) > (64 << 10):
                # The client stops reading for longer than the backend needs to produce it
                # all: only the upstream's flow control keeps the proxy from holding it.
                time.sleep(3)
                paused = True
    lines = [json.loads(line) for line in data.split(b"\r\n") if line.startswith(b"{")]
    assert "error" not in lines[-1], lines[-1]
    assert len(lines) == count
    assert lines[-1] == {"name": f"things/{count - 1}", "size": str(count - 1)}
    assert b"Grpc-Status: 0" in data[-200:]
    grown_kib = rss_kib(proxy.proc.pid, "VmHWM") - idle_hwm
    print(f"slow reader of a 5 MiB stream: peak RSS +{grown_kib} KiB")
    if _measures_rss(proxy.proc.pid):
        assert grown_kib < 16 * 1024, f"peak RSS grew by {grown_kib} KiB"

"""HTTP content codings through the real proxy and backend: gzip/deflate responses negotiated by
Accept-Encoding (requests and curl --compressed decode them), compressed request bodies decoded
before transcoding, bombs refused with 413 while memory stays flat, server streams that stay
live through gzip, and the admin port's /metrics. The rules themselves:
tests/http1/compression_test.cc and docs/http-conformance.md."""
import gzip
import json
import pathlib
import queue
import signal
import subprocess
import threading
import time
import zlib

import requests

from conftest import HTTP_TIMEOUT, base_config, curl, error_body, start_backend, start_proxy
from test_http_conformance import rss_kib

BIG = "/v1/big?size=30000"  # About 40 KB of JSON (base64 of a repeating pattern).


def identity(proxy, path):
    r = proxy.get(path, headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200, r.text[:200]
    assert "Content-Encoding" not in r.headers
    return r


def test_gzip_json_response_decodes_to_the_identity_one(proxy):
    plain = identity(proxy, BIG)
    r = proxy.get(BIG, headers={"Accept-Encoding": "gzip, deflate"}, stream=True)
    raw = r.raw.read(decode_content=False)  # The bytes on the wire.
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Vary"] == "Accept-Encoding"
    assert plain.headers["Vary"] == "Accept-Encoding"  # Caches must key on it either way.
    assert int(r.headers["Content-Length"]) == len(raw) < len(plain.content) // 2
    assert gzip.decompress(raw) == plain.content
    # And as a client library sees it: requests decodes it transparently.
    assert proxy.get(BIG).json() == plain.json()


def _counter(text: str, name: str, listener: str = "http") -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{listener="{listener}"}} '):
            return float(line.split()[-1])
    return 0.0


def test_compression_is_counted_in_the_metrics(proxy):
    names = ["tipperary_http_compressed_responses_total",
             "tipperary_http_compression_input_bytes_total",
             "tipperary_http_compression_output_bytes_total",
             "tipperary_http_decoded_request_bodies_total"]

    def scrape():
        text = proxy.admin_get("/metrics", headers={"Accept-Encoding": "identity"}).text
        return [_counter(text, n) for n in names]

    before = scrape()
    plain = identity(proxy, BIG)
    r = proxy.get(BIG, headers={"Accept-Encoding": "gzip"}, stream=True)
    wire = len(r.raw.read(decode_content=False))
    body = gzip.compress(json.dumps({"fString": "counted"}).encode())
    assert proxy.request("POST", "/v1/echo", data=body, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"}).status_code == 200
    # The scrape adds what the loops published (every 250 ms).
    deadline = time.monotonic() + 5
    while True:
        after = scrape()
        if after[0] > before[0] and after[3] > before[3] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    grown = [a - b for a, b in zip(after, before)]
    assert grown[0] >= 1, grown
    assert grown[1] >= len(plain.content), grown
    assert wire <= grown[2] < grown[1] / 2, (wire, grown)
    assert grown[3] == 1, grown


def test_deflate_is_the_zlib_format(proxy):
    plain = identity(proxy, BIG)
    r = proxy.get(BIG, headers={"Accept-Encoding": "deflate"}, stream=True)
    raw = r.raw.read(decode_content=False)
    assert r.headers["Content-Encoding"] == "deflate"
    assert zlib.decompress(raw) == plain.content  # RFC 1950, not a bare deflate stream.


def test_curl_compressed(proxy):
    plain = identity(proxy, BIG)
    out = curl("--compressed", "-D", "-", "-o", "/dev/null", proxy.url + BIG)
    assert out.returncode == 0, out.stderr
    assert b"Content-Encoding: gzip" in out.stdout
    body = curl("--compressed", proxy.url + BIG)
    assert body.returncode == 0, body.stderr
    assert body.stdout == plain.content


def test_head_carries_the_headers_of_get(proxy):
    get = proxy.get(BIG, headers={"Accept-Encoding": "gzip"}, stream=True)
    get.raw.read(decode_content=False)
    head = proxy.request("HEAD", BIG, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200
    assert head.content == b""
    for name in ("Content-Encoding", "Content-Length", "Vary", "Content-Type"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_small_and_identity_responses_are_not_compressed(proxy):
    r = proxy.post("/v1/echo", {"fString": "small"}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers  # Under compression.min_length.
    r = proxy.get(BIG, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in r.headers
    r = proxy.get(BIG, headers={"Accept-Encoding": "br"})
    assert "Content-Encoding" not in r.headers


def test_gzip_request_bodies_are_decoded(proxy, tmp_path):
    payload = {"fString": "hello " * 200, "rString": [str(i) for i in range(100)]}
    body = json.dumps(payload).encode()
    for coding, data in (("gzip", gzip.compress(body)), ("x-gzip", gzip.compress(body)),
                         ("deflate", zlib.compress(body)),
                         ("gzip, deflate", zlib.compress(gzip.compress(body)))):
        r = proxy.post("/v1/echo", data=data, headers={"Content-Type": "application/json",
                                                        "Content-Encoding": coding})
        assert r.status_code == 200, (coding, r.text[:300])
        assert r.json()["fString"] == payload["fString"], coding
        assert r.json()["rString"] == payload["rString"], coding
    # curl sends a file as it is: the gzip body and its header.
    (tmp_path / "body.gz").write_bytes(gzip.compress(b'{"fString":"from curl"}'))
    out = curl("-H", "Content-Type: application/json", "-H", "Content-Encoding: gzip",
               "--data-binary", f"@{tmp_path / 'body.gz'}", proxy.url + "/v1/echo")
    assert out.returncode == 0, out.stderr
    assert b'"fString":"from curl"' in out.stdout


def test_bad_request_codings(proxy):
    r = proxy.post("/v1/echo", data=b"{}", headers={"Content-Type": "application/json",
                                                     "Content-Encoding": "br"})
    assert r.status_code == 415, r.text
    assert r.headers["Accept-Encoding"] == "gzip, deflate"
    assert "not supported" in error_body(r)["message"]
    r = proxy.post("/v1/echo", data=b"\x1f\x8b\x08\x00garbage",
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400, r.text
    assert error_body(r)["code"] == 3
    assert "not valid gzip" in error_body(r)["message"]
    r = proxy.post("/v1/echo", data=gzip.compress(b'{"fString":"x"}')[:-4],
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400, r.text
    assert "truncated" in error_body(r)["message"]


def test_bombs_get_413_and_memory_stays_flat(tmp_path):
    backend = start_backend()
    proxy = start_proxy(base_config(backend.address), tmp_path)
    try:
        # 256 MiB of zeros in 256 KiB: under the 4 MiB body limit, 64 times over the decoded one.
        bomb = gzip.compress(b"\0" * (256 << 20), 9)
        # 3 MiB in 3 KiB: under the decoded limit, over the ratio limit.
        ratio_bomb = gzip.compress(b"\0" * (3 << 20), 9)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        for _ in range(20):  # Warm up: allocator arenas, route stats, upstream connection.
            assert proxy.post("/v1/echo", {"fString": "warm"}).status_code == 200
        time.sleep(0.2)
        idle_hwm = rss_kib(proxy.proc.pid, "VmHWM")
        r = proxy.post("/v1/echo", data=ratio_bomb, headers=headers)
        assert r.status_code == 413, r.text
        assert error_body(r)["code"] == 8
        assert "compression.max_request_decoding_ratio" in error_body(r)["message"]
        statuses = []

        def run():
            with requests.Session() as s:
                for _ in range(4):
                    statuses.append(s.post(proxy.url + "/v1/echo", data=bomb, headers=headers,
                                           timeout=HTTP_TIMEOUT))

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(statuses) == 32
        for r in statuses:
            assert r.status_code == 413, r.text
            assert "4194304 bytes (compression.max_decoded_request_body_bytes)" in r.text
        grown_kib = rss_kib(proxy.proc.pid, "VmHWM") - idle_hwm
        # 32 bombs of 256 MiB each: decoding stops at the limit, a block at a time, so the peak
        # is a few decoded bodies at most, never a bomb.
        print(f"bombs: peak RSS +{grown_kib} KiB")
        # Under ASan (its quarantine keeps freed blocks resident, 256 MiB by default) or TSan
        # (shadow memory) RSS measures the sanitizer, not us: the statuses above still count.
        maps = pathlib.Path(f"/proc/{proxy.proc.pid}/maps").read_text()
        if "libasan" not in maps and "libtsan" not in maps:
            assert grown_kib < 32 * 1024, f"peak RSS grew by {grown_kib} KiB"
        assert proxy.post("/v1/echo", {"fString": "after"}).status_code == 200
    finally:
        proxy.stop()
        backend.stop(signal.SIGTERM, timeout=3)


def test_stream_through_gzip_delivers_each_message_before_the_next(proxy, tmp_path):
    # The second message comes a minute after the first: the first must reach curl's output
    # (through gzip) while the second does not exist yet. The timeout is a hang guard.
    headers = tmp_path / "headers"
    proc = subprocess.Popen(
        ["curl", "-sS", "-N", "--compressed", "-D", str(headers), "-H",
         "Accept: application/x-ndjson",
         proxy.url + "/v1/stream?count=2&interval_ms=60000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=30)
        assert b"things/0" in first, first
        text = headers.read_text()
        assert "Content-Encoding: gzip" in text, text
        assert "Transfer-Encoding: chunked" in text, text
    finally:
        proc.kill()
        proc.wait()


def test_stream_through_gzip_read_with_requests(proxy):
    with proxy.session.get(f"{proxy.url}/v1/stream", params={"count": "5", "interval_ms": "20"},
                           headers={"Accept-Encoding": "gzip",
                                    "Accept": "application/x-ndjson"},
                           stream=True, timeout=15) as r:
        assert r.status_code == 200
        assert r.headers["Content-Encoding"] == "gzip"
        text = b"".join(r.iter_content(chunk_size=None))
    for i in range(5):
        assert f"things/{i}".encode() in text


def test_admin_metrics_gzip(proxy):
    plain = proxy.admin_get("/metrics", headers={"Accept-Encoding": "identity"})
    r = requests.get(proxy.admin_url + "/metrics",
                     headers={"Accept-Encoding": "gzip"}, stream=True, timeout=HTTP_TIMEOUT)
    raw = r.raw.read(decode_content=False)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(raw).decode()
    assert len(raw) < len(plain.content) // 3
    assert "# TYPE" in text and "tipperary_" in text


def test_compression_off(make_stack):
    stack = make_stack(compression={"enabled": False, "decode_requests": False})
    r = stack.proxy.get(BIG, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers and "Vary" not in r.headers
    r = stack.proxy.post("/v1/echo", data=gzip.compress(b"{}"),
                         headers={"Content-Type": "application/json",
                                  "Content-Encoding": "gzip"})
    assert r.status_code == 415, r.text
    assert r.headers["Accept-Encoding"] == "identity"

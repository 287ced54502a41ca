"""gRPC-Web and CORS on the proxy's HTTP listener: a small gRPC-Web client of our own over
`requests` (binary and text, unary and server streaming, metadata, errors), preflights and CORS
headers, and a real browser — Debian's chromium, headless — calling the proxy from a page on
another origin with gRPC-Web (text and binary), fetch + SSE and EventSource."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import pathlib
import shutil
import struct
import subprocess
import threading

import pytest
import requests

from conftest import SERVICE, start_stack

PAGE = pathlib.Path(__file__).with_name("grpc_web_page.html")


def frame(flag: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def b64_segments(text: bytes) -> bytes:
    """Decodes base64 made of padded segments one after the other, as -text responses are."""
    out, start = b"", 0
    for i in range(0, len(text), 4):
        if text[i + 3:i + 4] == b"=" or i + 4 == len(text):
            out += base64.b64decode(text[start:i + 4])
            start = i + 4
    return out


class GrpcWebClient:
    """The client side of https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md."""

    def __init__(self, url: str, text: bool = False):
        self.url, self.text = url, text

    def call(self, method: str, request: bytes, headers: dict | None = None,
             content_type: str | None = None):
        body = frame(0, request)
        if self.text:
            body = base64.b64encode(body)
        ctype = content_type or ("application/grpc-web-text" if self.text
                                 else "application/grpc-web+proto")
        r = requests.post(f"{self.url}/{SERVICE}/{method}", data=body, timeout=20,
                          headers={"Content-Type": ctype, "X-Grpc-Web": "1", **(headers or {})})
        assert r.status_code == 200, (r.status_code, r.text[:300])
        payload = b64_segments(r.content) if self.text else r.content
        messages, trailers, pos = [], None, 0
        while pos < len(payload):
            flag, size = struct.unpack(">BI", payload[pos:pos + 5])
            data = payload[pos + 5:pos + 5 + size]
            assert len(data) == size, "a cut frame"
            pos += 5 + size
            if flag & 0x80:
                assert trailers is None and pos == len(payload), "one trailer frame, last"
                lines = data.decode().split("\r\n")
                assert lines[-1] == ""
                trailers = dict(line.split(":", 1) for line in lines[:-1])
            else:
                messages.append(data)
        assert trailers is not None, "no trailer frame"
        return messages, trailers, r


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("web"),
                    cors={"allow_origins": ["http://127.0.0.1:1", "http://page.test"]})
    yield s
    s.stop()


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_unary(web_stack, schema, text):
    AllTypes = schema.message(f"{SERVICE.rsplit('.', 1)[0]}.AllTypes")
    sent = AllTypes(f_string="héllo", f_int32=7)
    messages, trailers, r = GrpcWebClient(web_stack.proxy.url, text).call(
        "Echo", sent.SerializeToString())
    assert r.headers["Content-Type"] == ("application/grpc-web-text+proto" if text
                                         else "application/grpc-web+proto")
    assert [AllTypes.FromString(m) for m in messages] == [sent]
    assert trailers["grpc-status"] == "0"


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_server_streaming(web_stack, schema, text):
    pkg = SERVICE.rsplit(".", 1)[0]
    StreamRequest, Thing = schema.message(f"{pkg}.StreamRequest"), schema.message(f"{pkg}.Thing")
    client = GrpcWebClient(web_stack.proxy.url, text)
    messages, trailers, r = client.call("StreamThings", StreamRequest(count=3).SerializeToString())
    assert [Thing.FromString(m).name for m in messages] == ["things/0", "things/1", "things/2"]
    assert trailers["grpc-status"] == "0"
    assert r.headers.get("Transfer-Encoding") == "chunked"
    messages, trailers, _ = client.call(
        "StreamThings", StreamRequest(count=5, fail_after=2).SerializeToString())
    assert len(messages) == 2
    assert trailers["grpc-status"] == "9"
    assert trailers["grpc-message"] == "failed after 2 messages"


def test_metadata_both_ways(web_stack, schema):
    pkg = SERVICE.rsplit(".", 1)[0]
    Req, Resp = schema.message(f"{pkg}.MetadataRequest"), schema.message(f"{pkg}.MetadataResponse")
    sent = Req(response_headers={"x-init": "i"}, response_trailers={"x-done": "d"})
    messages, trailers, r = GrpcWebClient(web_stack.proxy.url).call(
        "Metadata", sent.SerializeToString(), headers={"X-User": "u1", "Cookie": "s=1"})
    received = Resp.FromString(messages[0]).received
    assert received["x-user"] == "u1"
    assert "cookie" not in received
    assert r.headers["x-init"] == "i"  # Initial metadata: plain header fields.
    assert trailers["x-done"] == "d"   # Trailing metadata: in the trailer frame.


def test_errors_are_statuses_in_the_trailer_frame(web_stack):
    client = GrpcWebClient(web_stack.proxy.url)
    _, trailers, _ = client.call("NoSuchMethod", b"")
    assert trailers["grpc-status"] == "12"
    messages, trailers, _ = client.call("Echo", b"\xff\xff\xff")
    assert messages == [] and trailers["grpc-status"] == "3"
    r = requests.post(f"{web_stack.proxy.url}/{SERVICE}/Echo", data=b"\x00\x00",
                      headers={"Content-Type": "application/grpc-web"}, timeout=10)
    assert r.status_code == 200 and b"grpc-status:3\r\n" in r.content


def test_cors_preflight_and_headers(web_stack):
    url = f"{web_stack.proxy.url}/{SERVICE}/Echo"
    r = requests.options(url, timeout=10, headers={
        "Origin": "http://page.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent"})
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://page.test"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "x-grpc-web" in r.headers["Access-Control-Allow-Headers"]
    assert r.headers["Access-Control-Max-Age"] == "600"
    r = requests.options(url, timeout=10, headers={
        "Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "cors.allow_origins" in r.json()["message"]
    # On answers and on errors alike.
    r = requests.get(f"{web_stack.proxy.url}/v1/nothing", headers={"Origin": "http://page.test"},
                     timeout=10)
    assert r.status_code == 404
    assert r.headers["Access-Control-Allow-Origin"] == "http://page.test"
    assert "grpc-status" in r.headers["Access-Control-Expose-Headers"]
    # Plain OPTIONS: what the target allows.
    r = requests.options(f"{web_stack.proxy.url}/v1/echo", timeout=10)
    assert r.status_code == 204 and r.headers["Allow"] == "POST, OPTIONS"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed")
def test_a_browser_on_another_origin(tmp_path):
    """chromium loads a page from one origin that calls the proxy on another: gRPC-Web text and
    binary (unary and a server stream), fetch reading SSE, and EventSource. The page writes
    what it saw into the DOM, which --dump-dom prints."""
    page_server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGE.parent)))
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{page_server.server_port}"
    s = start_stack(tmp_path / "stack", cors={"allow_origins": [origin]})
    try:
        page = f"{origin}/{PAGE.name}?proxy={s.proxy.url}"
        profile = tmp_path / "chromium-profile"
        out = subprocess.run(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=20000", "--dump-dom", page],
            capture_output=True, text=True, timeout=120)
        start = out.stdout.find('<pre id="result">')
        assert start >= 0, out.stdout[-2000:] + out.stderr[-2000:]
        text = out.stdout[start + len('<pre id="result">'):out.stdout.index("</pre>", start)]
        result = json.loads(text.replace("&quot;", '"').replace("&amp;", "&"))
    finally:
        s.stop()
        page_server.shutdown()
    assert result.get("error") is None, result
    assert result["text_unary"] == {"status": "0", "echoed": True}
    assert result["binary_unary"] == {"status": "0", "echoed": True}
    assert result["text_stream"] == {"status": "0", "messages": 3}
    assert result["sse_fetch"] == {"data": 3, "end": True}
    assert result["event_source"] == ["things/0", "things/1", "end"]
    assert result["cross_origin_error"] == {"http": 404, "code": 5}

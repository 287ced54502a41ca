"""google.api.HttpBody in both directions, server streaming, large messages."""

import base64
import json

from conftest import RawConnection, curl, raw_request, wait_until


def test_upload_http_body_is_raw(proxy):
    data = bytes(range(256)) * 40
    r = proxy.request("POST", "/v1/upload", data=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contentType"] == "image/png"
    assert body["size"] == str(len(data))
    assert base64.b64decode(body["data"]) == data


def test_upload_empty_body(proxy):
    r = proxy.request("POST", "/v1/upload", data=b"", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.json().get("size", "0") == "0"


def test_upload_json_content_type_is_still_raw(proxy):
    raw = b'{"not":"parsed"}'
    r = proxy.request("POST", "/v1/upload", data=raw,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["data"]) == raw
    assert r.json()["contentType"] == "application/json"


def test_download_http_body(proxy):
    r = proxy.get("/v1/download", params={"text": "a,b\n1,2\n", "content_type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/csv"
    assert r.content == b"a,b\n1,2\n"


def test_download_with_curl(proxy):
    res = curl("-w", "\n%{content_type}", f"{proxy.url}/v1/download?text=hello%20curl")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == "hello curl\ntext/plain"


def test_big_response(proxy):
    size = 6 * 1024 * 1024  # Over gRPC's default 4 MiB message limit.
    r = proxy.get("/v1/big", params={"size": str(size)})
    assert r.status_code == 200, r.text[:200]
    body = r.json()
    assert body["size"] == str(size)
    data = base64.b64decode(body["data"])
    assert len(data) == size
    assert data[:26] == b"abcdefghijklmnopqrstuvwxyz"


def test_big_request_within_limits(proxy):
    payload = {"fBytes": base64.b64encode(b"z" * (2 * 1024 * 1024)).decode()}
    r = proxy.post("/v1/echo", payload)
    assert r.status_code == 200, r.text[:200]
    assert r.json() == payload


def _stream_lines(response_body: bytes) -> list[dict]:
    return [json.loads(line) for line in response_body.splitlines() if line.strip()]


def test_server_streaming_results(proxy):
    r = proxy.get("/v1/stream", params={"count": "3"})
    assert r.status_code == 200, r.text
    assert _stream_lines(r.content) == [
        {"result": {"name": "things/0"}},
        {"result": {"name": "things/1", "size": "1"}},
        {"result": {"name": "things/2", "size": "2"}},
    ]


def test_server_streaming_is_chunked(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/stream?count=4&interval_ms=10"))
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.chunked
    assert len(_stream_lines(resp.body)) == 4


def test_server_streaming_error_after_messages(proxy):
    r = proxy.get("/v1/stream", params={"count": "5", "fail_after": "2"})
    assert r.status_code == 200, r.text
    lines = _stream_lines(r.content)
    assert [l.get("result", {}).get("name") for l in lines[:2]] == ["things/0", "things/1"]
    assert len(lines) == 3, lines
    error = lines[2]["error"]
    assert error["code"] == 9
    assert error["message"] == "failed after 2 messages"


def test_server_streaming_empty(proxy):
    r = proxy.get("/v1/stream", params={"count": "0"})
    assert r.status_code == 200, r.text
    assert _stream_lines(r.content) == []


def test_server_streaming_read_incrementally(proxy):
    with proxy.session.get(f"{proxy.url}/v1/stream", params={"count": "5", "interval_ms": "20"},
                           stream=True, timeout=15) as r:
        assert r.status_code == 200
        names = [json.loads(line)["result"]["name"] for line in r.iter_lines() if line]
    assert names == [f"things/{i}" for i in range(5)]


def test_client_leaving_a_stream_cancels_it_upstream(stack):
    before = len([l for l in stack.backend.cancellations() if l.get("method") == "StreamThings"])
    with RawConnection(stack.proxy.host, stack.proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/stream?count=100000&interval_ms=5"))
        conn._line()  # The status line: the stream has started.
    wait_until(lambda: len([l for l in stack.backend.cancellations()
                            if l.get("method") == "StreamThings"]) > before, timeout=20,
               message="the backend to see the abandoned stream cancelled")

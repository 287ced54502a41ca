"""google.api.HttpBody in both directions, server streaming, large messages."""

import base64
import json

import pytest

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


def _sse_events(text: str) -> list[tuple[str, str]]:
    """(event type, data) per event, comments kept as ("comment", text): a small SSE parser
    after the WHATWG rules (blank line ends an event, "data:" lines joined by newlines)."""
    events: list[tuple[str, str]] = []
    kind, data = "message", []
    for line in text.split("\n"):
        if line == "":
            if data:
                events.append((kind, "\n".join(data)))
            kind, data = "message", []
        elif line.startswith(":"):
            events.append(("comment", line[1:].strip()))
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
    return events


def test_server_streaming_default_is_a_json_array(proxy):
    r = proxy.get("/v1/stream", params={"count": "3"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Accel-Buffering"] == "no"
    assert r.json() == [
        {"name": "things/0"},
        {"name": "things/1", "size": "1"},
        {"name": "things/2", "size": "2"},
    ]
    assert proxy.get("/v1/stream", params={"count": "0"}).json() == []


def test_server_streaming_array_failure_is_not_valid_json(proxy):
    r = proxy.get("/v1/stream", params={"count": "5", "fail_after": "2"})
    assert r.status_code == 200, r.text
    with pytest.raises(ValueError):
        r.json()  # A failed stream never parses as a complete array...
    head, error = r.text.rstrip("\n").rsplit("\n", 1)
    assert json.loads(head + "]") == [{"name": "things/0"}, {"name": "things/1", "size": "1"}]
    assert json.loads(error)["error"] == {"code": 9, "message": "failed after 2 messages",
                                          "details": []}  # ...and says why on its last line.


def test_server_streaming_grpc_gateway_envelope(make_stack):
    s = make_stack(streaming={"json_format": "grpc_gateway"})
    r = s.proxy.get("/v1/stream", params={"count": "5", "fail_after": "2"},
                    headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    assert _stream_lines(r.content) == [
        {"result": {"name": "things/0"}},
        {"result": {"name": "things/1", "size": "1"}},
        {"error": {"code": 9, "message": "failed after 2 messages", "details": []}},
    ]


def test_server_streaming_ndjson(proxy):
    r = proxy.get("/v1/stream", params={"count": "5", "fail_after": "2"},
                  headers={"Accept": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-ndjson"
    assert r.text.count("\n") == 3
    assert _stream_lines(r.content) == [
        {"name": "things/0"},
        {"name": "things/1", "size": "1"},
        {"error": {"code": 9, "message": "failed after 2 messages", "details": []}},
    ]


def test_server_streaming_is_chunked(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/stream?count=4&interval_ms=10",
                              headers={"Accept": "application/x-ndjson"}))
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.chunked
    assert len(_stream_lines(resp.body)) == 4


def test_server_streaming_read_incrementally(proxy):
    with proxy.session.get(f"{proxy.url}/v1/stream", params={"count": "5", "interval_ms": "20"},
                           headers={"Accept": "application/x-ndjson"}, stream=True,
                           timeout=15) as r:
        assert r.status_code == 200
        names = [json.loads(line)["name"] for line in r.iter_lines() if line]
    assert names == [f"things/{i}" for i in range(5)]


def test_server_sent_events(proxy):
    r = proxy.get("/v1/stream", params={"count": "2"}, headers={"Accept": "text/event-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-cache"
    assert _sse_events(r.text) == [
        ("message", '{"name":"things/0"}'),
        ("message", '{"name":"things/1","size":"1"}'),
        ("end", '{"code":0,"message":"","details":[]}'),
    ]
    r = proxy.get("/v1/stream", params={"count": "3", "fail_after": "1"},
                  headers={"Accept": "text/html;q=0.9, text/event-stream"})
    events = _sse_events(r.text)
    assert events[0] == ("message", '{"name":"things/0"}')
    assert events[1][0] == "error" and json.loads(events[1][1])["code"] == 9
    assert len(events) == 2


def test_server_sent_events_heartbeats_begin_a_quiet_stream(make_stack):
    s = make_stack(streaming={"sse_heartbeat_interval": "200ms"})
    with s.proxy.session.get(f"{s.proxy.url}/v1/stream",
                             params={"count": "2", "first_delay_ms": "1500",
                                     "interval_ms": "700"},
                             headers={"Accept": "text/event-stream"}, stream=True,
                             timeout=15) as r:
        assert r.status_code == 200
        text = r.content.decode()
    # The response began with a heartbeat, before the upstream's first message.
    events = _sse_events(text)
    kinds = [k for k, _ in events]
    assert kinds[0] == "comment" and events[0][1] == "heartbeat"
    assert kinds.index("message") > 0
    # Heartbeats also fill the quiet gap between the two messages.
    first, second = [i for i, k in enumerate(kinds) if k == "message"]
    assert "comment" in kinds[first:second], kinds
    assert kinds[-1] == "end"


def test_server_streaming_empty(proxy):
    r = proxy.get("/v1/stream", params={"count": "0"}, headers={"Accept": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert _stream_lines(r.content) == []


def test_client_leaving_a_stream_cancels_it_upstream(stack):
    before = len([l for l in stack.backend.cancellations() if l.get("method") == "StreamThings"])
    with RawConnection(stack.proxy.host, stack.proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/stream?count=100000&interval_ms=5"))
        conn._line()  # The status line: the stream has started.
    wait_until(lambda: len([l for l in stack.backend.cancellations()
                            if l.get("method") == "StreamThings"]) > before, timeout=20,
               message="the backend to see the abandoned stream cancelled")


# ---- Binary protobuf server streams: varint-delimited tipperary.proxy.v1.StreamFrame ----


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _frames(body: bytes) -> list[tuple[str, bytes]]:
    """StreamFrame messages: ("message", bytes) or ("status", google.rpc.Status bytes)."""
    frames, pos = [], 0
    while pos < len(body):
        length, pos = _varint(body, pos)
        frame = body[pos:pos + length]
        pos += length
        tag, inner = _varint(frame, 0)
        size, inner = _varint(frame, inner)
        assert inner + size == len(frame), "a StreamFrame holds exactly one field"
        frames.append(({1 << 3 | 2: "message", 2 << 3 | 2: "status"}[tag], frame[inner:]))
    return frames


def _status(data: bytes) -> tuple[int, str]:
    """google.rpc.Status: code (1, varint) and message (2, string)."""
    code, message, pos = 0, "", 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        if tag == 1 << 3:
            code, pos = _varint(data, pos)
        else:
            length, pos = _varint(data, pos)
            if tag == 2 << 3 | 2:
                message = data[pos:pos + length].decode()
            pos += length
    return code, message


def test_binary_stream_frames_end_with_a_status_frame(proxy, schema):
    thing = schema.message("tipperary.testing.v1.Thing")
    r = proxy.get("/v1/stream", params={"count": "3"}, headers={"Accept": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/x-protobuf; delimited=true")
    assert 'messageType="tipperary.proxy.v1.StreamFrame"' in r.headers["Content-Type"]
    frames = _frames(r.content)
    assert [kind for kind, _ in frames] == ["message"] * 3 + ["status"]
    assert [thing.FromString(data).name for _, data in frames[:3]] == [
        "things/0", "things/1", "things/2"]
    assert _status(frames[3][1]) == (0, "")


def test_binary_stream_error_is_a_status_frame_not_json(proxy):
    r = proxy.get("/v1/stream", params={"count": "5", "fail_after": "2"},
                  headers={"Accept": "application/x-protobuf"})
    assert r.status_code == 200
    assert b'"error"' not in r.content
    frames = _frames(r.content)
    assert [kind for kind, _ in frames] == ["message", "message", "status"]
    assert _status(frames[2][1]) == (9, "failed after 2 messages")


def test_binary_stream_without_messages_still_has_its_status_frame(proxy):
    r = proxy.get("/v1/stream", params={"count": "0"}, headers={"Accept": "application/x-protobuf"})
    assert r.status_code == 200
    assert [kind for kind, _ in _frames(r.content)] == ["status"]


def test_stream_status_travels_in_trailers_too(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/stream?count=3&fail_after=1", headers={"TE": "trailers"}))
        resp = conn.read_response()
    assert resp.trailer("Grpc-Status") == "9"
    assert resp.trailer("Grpc-Message") == "failed after 1 messages"


# ---- Client streams and bidi: the request body holds the stream's messages ----


def test_client_stream_from_ndjson(proxy):
    body = b'{"name": "a"}\n{"name": "b", "size": "2"}\n{"name": "c"}\n'
    r = proxy.request("POST", "/v1/things:collect", data=body,
                      headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert [t["name"] for t in r.json()["things"]] == ["a", "b", "c"]


def test_client_stream_from_a_json_array(proxy):
    r = proxy.post("/v1/things:collect", [{"name": "a"}, {"name": "b"}])
    assert r.status_code == 200, r.text
    assert [t["name"] for t in r.json()["things"]] == ["a", "b"]
    r = proxy.request("POST", "/v1/things:collect", data=b"")
    assert r.status_code == 200, r.text
    assert r.json().get("things", []) == []


def test_client_stream_with_a_bad_message(proxy):
    r = proxy.request("POST", "/v1/things:collect", data=b'{"name": "a"}\n{"size": "x"}\n',
                      headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 400
    assert "message 2 of the stream" in r.json()["message"]


def test_bidi_stream(proxy):
    body = b"".join(json.dumps({"name": f"t{i}", "size": str(i)}).encode() + b"\n"
                    for i in range(4))
    r = proxy.request("POST", "/v1/things:echo", data=body,
                      headers={"Content-Type": "application/x-ndjson",
                               "Accept": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert _stream_lines(r.content) == [{"name": "t0"}] + [
        {"name": f"t{i}", "size": str(2 * i)} for i in range(1, 4)]

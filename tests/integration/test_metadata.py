"""Header <-> gRPC metadata: Grpc-Metadata-*, Authorization, X-Request-Id, trace context,
X-Forwarded-For, response metadata as headers and trailers as HTTP/1.1 trailers."""

import base64
import json

from conftest import RawConnection, curl, raw_request, wait_until

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def metadata_call(proxy, headers=None, body=None):
    r = proxy.post("/v1/metadata", body or {}, headers=headers or {})
    assert r.status_code == 200, r.text
    return r, r.json().get("received", {})


def test_forwarded_request_headers(proxy):
    r, received = metadata_call(proxy, {
        "Grpc-Metadata-Foo": "bar",
        "Grpc-Metadata-Multi-Word-Key": "v2",
        "Authorization": "Bearer secret-token",
        "X-Request-Id": "rid-123",
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=opaque",
    })
    assert received["foo"] == "bar"
    assert received["multi-word-key"] == "v2"
    assert received["authorization"] == "Bearer secret-token"
    assert received["x-request-id"] == "rid-123"
    assert received["traceparent"] == TRACEPARENT
    assert received["tracestate"] == "vendor=opaque"
    assert r.headers["X-Request-Id"] == "rid-123"


def test_request_id_generated_when_absent(proxy):
    r, received = metadata_call(proxy)
    generated = received.get("x-request-id", "")
    assert generated, received
    assert r.headers.get("X-Request-Id") == generated
    r2, received2 = metadata_call(proxy)
    assert received2["x-request-id"] != generated


def test_request_id_on_errors_too(proxy):
    r = proxy.post("/v1/fail", {"code": 5, "message": "x"}, headers={"X-Request-Id": "rid-err"})
    assert r.status_code == 404
    assert r.headers.get("X-Request-Id") == "rid-err"


def test_x_forwarded_for_appends_client_ip(proxy):
    _, received = metadata_call(proxy, {"X-Forwarded-For": "10.0.0.1, 10.0.0.2"})
    hops = [h.strip() for h in received["x-forwarded-for"].split(",")]
    assert hops == ["10.0.0.1", "10.0.0.2", "127.0.0.1"]
    _, received = metadata_call(proxy)
    assert received["x-forwarded-for"].strip() == "127.0.0.1"


def test_hop_by_hop_and_plain_headers_not_forwarded_as_metadata(proxy):
    # A client cannot inject reserved gRPC metadata (the request must still succeed).
    _, received = metadata_call(proxy, {"Connection": "keep-alive",
                                        "Grpc-Metadata-Grpc-Status": "0"})
    assert "connection" not in received
    assert "host" not in received


def test_response_metadata_becomes_headers(proxy):
    r, _ = metadata_call(proxy, body={"responseHeaders": {"x-resp": "r1", "x-other": "o"}})
    assert r.headers.get("Grpc-Metadata-X-Resp") == "r1"
    assert r.headers.get("Grpc-Metadata-X-Other") == "o"


def _trailer_request(proxy, headers=None):
    body = json.dumps({"responseTrailers": {"x-trail": "t1"},
                       "responseHeaders": {"x-head": "h1"}}).encode()
    hdrs = {"Content-Type": "application/json", "TE": "trailers"}
    hdrs.update(headers or {})
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("POST", "/v1/metadata", body, hdrs))
        return conn.read_response()


def test_trailers_on_a_chunked_response(proxy):
    resp = _trailer_request(proxy)
    assert resp.status == 200, resp.body
    assert resp.header("Grpc-Metadata-X-Head") == "h1"
    assert resp.chunked, f"trailers need chunked encoding; headers {resp.headers}"
    assert resp.trailer("Grpc-Trailer-X-Trail") == "t1", resp.trailers
    assert json.loads(resp.body)["received"] is not None


def test_trailers_visible_to_curl(proxy, tmp_path):
    headers = tmp_path / "headers.txt"
    res = curl("-D", str(headers), "-o", str(tmp_path / "body"), "-H", "TE: trailers",
               "-H", "Content-Type: application/json",
               "-d", '{"responseTrailers":{"x-trail":"curl-t"}}', f"{proxy.url}/v1/metadata")
    assert res.returncode == 0, res.stderr
    text = headers.read_text().lower()
    assert "grpc-trailer-x-trail: curl-t" in text, text


def test_no_trailers_without_trailer_metadata(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("POST", "/v1/metadata", b"{}",
                              {"Content-Type": "application/json", "TE": "trailers"}))
        resp = conn.read_response()
    assert resp.status == 200
    assert not any(k.lower().startswith("grpc-trailer-") for k, _ in resp.trailers)


def test_binary_metadata_header(proxy):
    # Grpc-Metadata-*-Bin values are base64 in HTTP and raw bytes in gRPC: the backend reports
    # the bytes grpc++ handed it, base64 (padded) again. Unpadded and URL-safe input decode too;
    # a value that is not base64 is dropped, the call still made.
    _, received = metadata_call(proxy, {"Grpc-Metadata-Blob-Bin": "AAEC",
                                        "Grpc-Metadata-Short-Bin": "/w",
                                        "Grpc-Metadata-Url-Bin": "_-8",
                                        "Grpc-Metadata-Bad-Bin": "not base64!"})
    assert received["blob-bin"] == base64.b64encode(b"\x00\x01\x02").decode()
    assert received["short-bin"] == base64.b64encode(b"\xff").decode()
    assert received["url-bin"] == base64.b64encode(b"\xff\xef").decode()
    assert "bad-bin" not in received


def test_proxy_owned_metadata_cannot_be_forged(proxy):
    # Grpc-Metadata-X-Forwarded-For would reach the upstream as a second x-forwarded-for value
    # ahead of the proxy's (a client-chosen address for whoever reads the first one).
    _, received = metadata_call(proxy, {"Grpc-Metadata-X-Forwarded-For": "6.6.6.6",
                                        "Grpc-Metadata-X-Request-Id": "forged",
                                        "X-Request-Id": "rid-own"})
    assert received["x-forwarded-for"] == "127.0.0.1", received
    assert received["x-request-id"] == "rid-own", received


def test_header_names_are_case_insensitive(proxy):
    _, received = metadata_call(proxy, {"grpc-metadata-lower": "l", "GRPC-METADATA-UPPER": "u"})
    assert received["lower"] == "l"
    assert received["upper"] == "u"


def test_repeated_metadata_header_keeps_every_value(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(b"POST /v1/metadata HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Grpc-Metadata-Rep: a\r\nGrpc-Metadata-Rep: b\r\nContent-Length: 2\r\n\r\n{}")
        resp = conn.read_response()
    assert resp.status == 200, resp.body
    values = [v.strip() for v in json.loads(resp.body)["received"]["rep"].split(",")]
    assert values == ["a", "b"]


def test_access_log_line(stack):
    proxy = stack.proxy
    r = proxy.post("/v1/echo", {"fString": "logged"}, headers={"X-Request-Id": "rid-access-log"})
    assert r.status_code == 200

    def line():
        for stream in ("stdout", "stderr"):
            for entry in proxy.proc.json_lines(stream):
                if entry.get("request_id") == "rid-access-log":
                    return entry
        return None

    entry = wait_until(line, timeout=10, message="the access log line")
    assert entry.get("route") == "POST /v1/echo", entry
    assert entry.get("status") == 200, entry

"""gRPC status -> HTTP status and the JSON error body with decoded details; deadlines;
an unreachable upstream."""

import json
import socket
import threading

import pytest
import requests

from conftest import base_config, error_body, free_port, start_proxy, wait_until

# google/rpc/code.proto's HTTP mapping.
HTTP_FOR_CODE = {
    1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
    11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}


@pytest.mark.parametrize("code", sorted(HTTP_FOR_CODE))
def test_status_code_mapping(proxy, code):
    r = proxy.post("/v1/fail", {"code": code, "message": f"failure {code}"})
    assert r.status_code == HTTP_FOR_CODE[code], r.text
    body = error_body(r)
    assert body["code"] == code
    assert body["message"] == f"failure {code}"
    assert body.get("details", []) == []


def test_error_details_are_decoded(proxy):
    r = proxy.post("/v1/fail", {"code": 9, "message": "precondition", "withDetails": True})
    assert r.status_code == 400, r.text
    body = error_body(r)
    assert body["code"] == 9
    assert body["message"] == "precondition"
    details = body["details"]
    assert details == [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TEST_FAILURE",
         "domain": "tipperary.test", "metadata": {"k": "v"}},
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": "f", "description": "d"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.500s"},
        {"@type": "type.googleapis.com/google.rpc.DebugInfo",
         "stackEntries": ["frame0", "frame1"], "detail": "x"},
        {"@type": "type.googleapis.com/tipperary.testing.v1.CustomDetail", "note": "custom",
         "attempt": "3"},
    ]


def test_error_message_with_special_characters(proxy):
    message = "quote \" backslash \\ newline \n unicode \u2713 percent %25"
    r = proxy.post("/v1/fail", {"code": 3, "message": message})
    assert r.status_code == 400, r.text
    assert error_body(r)["message"] == message


def test_unknown_grpc_code_is_500(proxy):
    r = proxy.post("/v1/fail", {"code": 42, "message": "weird"})
    assert r.status_code == 500, r.text


def test_error_when_binary_protobuf_was_asked_for(proxy):
    r = proxy.post("/v1/fail", {"code": 5, "message": "pb"},
                   headers={"Accept": "application/x-protobuf"})
    assert r.status_code == 404, r.text
    if r.headers.get("Content-Type", "").startswith("application/x-protobuf"):
        # A serialized google.rpc.Status: field 1 (code) = 5 comes first.
        assert r.content[:2] == b"\x08\x05", r.content
    else:
        assert error_body(r)["code"] == 5


def test_not_found_and_method_not_allowed_shapes(proxy):
    r = proxy.get("/nope")
    assert r.status_code == 404
    assert error_body(r)["code"] == 5
    r = proxy.request("PUT", "/v1/echo")
    assert r.status_code == 405
    body = error_body(r)
    assert body["code"] in (5, 12, 3), body
    allow = r.headers.get("Allow", "")
    assert "POST" in allow, f"405 without a useful Allow header: {allow!r}"


def test_grpc_timeout_header_gives_504_and_cancels_the_backend(stack):
    before = len(stack.backend.cancellations())
    r = stack.proxy.post("/v1/slow", {"delayMs": 20000}, headers={"Grpc-Timeout": "200m"})
    assert r.status_code == 504, r.text
    assert error_body(r)["code"] == 4
    wait_until(lambda: len(stack.backend.cancellations()) > before, timeout=15,
               message="the backend to see the Slow call cancelled")


def test_route_timeout_gives_504(make_stack):
    s = make_stack(routes=[{"method": "POST", "path": "/v1/short-slow",
                            "grpc_method": "tipperary.testing.v1.TestService/Slow",
                            "body": "*", "timeout": "200ms"}])
    r = s.proxy.post("/v1/short-slow", {"delayMs": 20000})
    assert r.status_code == 504, r.text
    assert error_body(r)["code"] == 4
    wait_until(lambda: s.backend.cancellations(), timeout=15,
               message="the backend to see the Slow call cancelled")
    # The annotated route has no timeout of its own: upstream_default (20s) applies.
    r = s.proxy.post("/v1/slow", {"delayMs": 50})
    assert r.status_code == 200, r.text
    assert r.json().get("cancelled", False) is False


def test_upstream_default_timeout(make_stack):
    s = make_stack(timeouts={"upstream_default": "300ms", "drain": "2s"})
    r = s.proxy.post("/v1/slow", {"delayMs": 20000})
    assert r.status_code == 504, r.text


def test_grpc_timeout_larger_than_route_timeout_does_not_extend_it(make_stack):
    s = make_stack(routes=[{"method": "POST", "path": "/v1/short-slow",
                            "grpc_method": "tipperary.testing.v1.TestService/Slow",
                            "body": "*", "timeout": "200ms"}])
    r = s.proxy.post("/v1/short-slow", {"delayMs": 20000}, headers={"Grpc-Timeout": "100S"})
    assert r.status_code == 504, r.text


def test_bad_grpc_timeout_header_is_400(proxy):
    r = proxy.post("/v1/slow", {"delayMs": 1}, headers={"Grpc-Timeout": "soon"})
    assert r.status_code == 400, r.text


def test_slow_call_within_deadline_succeeds(proxy):
    r = proxy.post("/v1/slow", {"delayMs": 30}, headers={"Grpc-Timeout": "10S"})
    assert r.status_code == 200, r.text
    assert int(r.json()["sleptMs"]) >= 30


def test_client_disconnect_cancels_the_backend_call(stack):
    before = len(stack.backend.cancellations())
    started = len(stack.backend.slow_started())
    body = json.dumps({"delayMs": 30000}).encode()
    sock = socket.create_connection((stack.proxy.host, stack.proxy.port), timeout=10)
    sock.sendall(b"POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    wait_until(lambda: len(stack.backend.slow_started()) > started, timeout=15,
               message="the Slow call to reach the backend")
    sock.close()
    wait_until(lambda: len(stack.backend.cancellations()) > before, timeout=20,
               message="the backend to see the call cancelled after the client went away")


def test_upstream_down_is_503(tmp_path):
    port = free_port()
    proxy = start_proxy(base_config(f"127.0.0.1:{port}"), tmp_path, wait_ready=False)
    try:
        r = proxy.post("/v1/echo", {"fString": "x"})
        assert r.status_code == 503, r.text
        assert error_body(r)["code"] == 14
        assert proxy.admin_get("/readyz").status_code != 200
        assert proxy.admin_get("/healthz").status_code == 200
    finally:
        proxy.stop()


def test_concurrent_failures_and_successes(proxy):
    results = {}

    # Separate sessions per thread: requests.Session is not thread-safe.
    def call_own(i):
        with requests.Session() as session:
            if i % 2:
                results[i] = session.post(f"{proxy.url}/v1/fail",
                                          json={"code": 5, "message": str(i)}, timeout=15)
            else:
                results[i] = session.post(f"{proxy.url}/v1/echo", json={"fInt32": i},
                                          timeout=15)

    threads = [threading.Thread(target=call_own, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 24
    for i, r in results.items():
        if i % 2:
            assert r.status_code == 404 and r.json()["message"] == str(i), r.text
        else:
            assert r.status_code == 200 and r.json().get("fInt32", 0) == i, r.text


def test_malformed_percent_encoding_in_path_is_400(proxy):
    # "%zz" is no escape at all: passing it upstream as a literal would hide the client's bug.
    # http.client sends the path as given (requests would re-quote it to %25zz).
    import http.client
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    conn.request("GET", "/v1/echo/%zz")
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 400, body
    assert body["code"] == 3
    assert "percent-encoding" in body["message"]


# ---- No silent loss (issue 8): the right status for each fault, with what to do next. ----


def test_429_and_503_carry_retry_after(proxy):
    for code, status in ((8, 429), (14, 503)):
        r = proxy.post("/v1/fail", {"code": code, "message": "busy"})
        assert r.status_code == status, r.text
        assert r.headers.get("Retry-After") == "1", r.headers
    r = proxy.post("/v1/fail", {"code": 5, "message": "not found"})
    assert "Retry-After" not in r.headers


def test_the_upstreams_retry_hint_wins(proxy):
    # google.rpc.RetryInfo{retry_delay: 1.5s} in the status details: rounded up.
    r = proxy.post("/v1/fail", {"code": 14, "message": "x", "withDetails": True})
    assert r.status_code == 503
    assert r.headers.get("Retry-After") == "2"
    # retry-after metadata, in seconds.
    r = proxy.post("/v1/fail", {"code": 8, "message": "x", "trailers": {"retry-after": "7"}})
    assert r.status_code == 429
    assert r.headers.get("Retry-After") == "7"


def test_upstream_response_over_the_limit_is_502_not_429(stack, tmp_path):
    config = base_config(stack.backend.address, upstreams=[
        {"name": "backend", "endpoints": [stack.backend.address], "max_response_bytes": "64KiB"}])
    p = start_proxy(config, tmp_path)
    try:
        r = p.get("/v1/big", params={"size": str(1 << 20)})
        assert r.status_code == 502, r.text
        assert "exceeds the limit" in error_body(r)["message"]
        assert "Retry-After" not in r.headers
    finally:
        p.stop()


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml", "multipart/form-data",
                                          "application/json; charset=iso-8859-1",
                                          "application/octet-stream"])
def test_undecodable_content_type_is_415(proxy, content_type):
    r = proxy.post("/v1/echo", data=b"<a>not json</a>", headers={"Content-Type": content_type})
    assert r.status_code == 415, r.text
    body = error_body(r)
    assert "not supported" in body["message"]
    assert "<a>" not in r.text  # The bytes are never echoed back.


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded",
                                          "application/merge-patch+json", None])
def test_json_under_the_types_clients_send_is_accepted(proxy, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    r = proxy.post("/v1/echo", data=b'{"fString":"ok"}', headers=headers)
    assert r.status_code == 200, (content_type, r.text)
    assert r.json()["fString"] == "ok"


def test_unknown_content_encoding_is_415_with_accept_encoding(proxy):
    # gzip and deflate bodies are decoded (test_compression.py); anything else is refused,
    # naming what is accepted (RFC 9110 §12.5.3).
    r = proxy.post("/v1/echo", data=b"\x28\xb5\x2f\xfdgarbage",
                   headers={"Content-Type": "application/json", "Content-Encoding": "zstd"})
    assert r.status_code == 415, r.text
    assert r.headers.get("Accept-Encoding") == "gzip, deflate"
    r = proxy.post("/v1/echo", data=b'{"fString":"ok"}',
                   headers={"Content-Type": "application/json", "Content-Encoding": "identity"})
    assert r.status_code == 200, r.text


def test_backend_refuses_unsendable_metadata_instead_of_aborting(stack):
    r = stack.proxy.post("/v1/metadata", {"responseHeaders": {"x-bad": "a\r\nb"}})
    assert r.status_code == 400, r.text
    assert "printable" in error_body(r)["message"]
    assert stack.backend.proc.alive()
    assert stack.proxy.post("/v1/metadata", {}).status_code == 200

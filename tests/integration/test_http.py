"""The HTTP/1.1 listener: TLS and mTLS, keep-alive, pipelining, chunked requests, limits
(413, 431, 408)."""

import json
import pathlib
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import requests

from conftest import (RawConnection, base_config, curl, raw_request, start_backend,
                      start_proxy, wait_until)


# ---- Certificates -------------------------------------------------------------------------------


def _openssl(*args, cwd):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is required", pytrace=False)
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()


def _issue(directory: pathlib.Path, name: str, usage: str, san: str | None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
             cwd=directory)
    ext = directory / f"{name}.ext"
    ext.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name,
             cwd=directory)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=tipperary-test-ca",
             "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _issue(d, "server", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _issue(d, "client", "clientAuth", None)
    return d


@pytest.fixture(scope="module")
def backend():
    b = start_backend()
    yield b
    b.stop(timeout=3)


@pytest.fixture
def tls_proxy(certs, backend, tmp_path):
    config = base_config(backend.address, listeners=[
        {"address": "127.0.0.1:0",
         "tls": {"cert": str(certs / "server.pem"), "key": str(certs / "server.key")}},
        {"address": "127.0.0.1:0"},
    ])
    p = start_proxy(config, tmp_path)
    yield p
    p.stop()


@pytest.fixture
def mtls_proxy(certs, backend, tmp_path):
    config = base_config(backend.address, listeners=[
        {"address": "127.0.0.1:0",
         "tls": {"cert": str(certs / "server.pem"), "key": str(certs / "server.key"),
                 "client_ca": str(certs / "ca.pem")}},
    ])
    p = start_proxy(config, tmp_path)
    yield p
    p.stop()


def test_tls_listener(tls_proxy, certs):
    https = f"https://{tls_proxy.http[0]}"
    r = requests.post(f"{https}/v1/echo", json={"fString": "tls"}, verify=str(certs / "ca.pem"),
                      timeout=15)
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "tls"}
    # The second, plain listener serves too.
    r = requests.get(f"http://{tls_proxy.http[1]}/v1/echo/plain", timeout=15)
    assert r.json() == {"fString": "plain"}


def test_tls_listener_with_curl(tls_proxy, certs):
    res = curl("--cacert", str(certs / "ca.pem"), f"https://{tls_proxy.http[0]}/v1/echo/c")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"fString": "c"}


def test_plaintext_on_tls_port_fails(tls_proxy):
    host, port = tls_proxy.http[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw_request("GET", "/v1/echo/x"))
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
    assert not data.startswith(b"HTTP/1.1 200"), data


def test_tls_key_path_redacted_in_config(tls_proxy, certs):
    r = tls_proxy.admin_get("/config")
    assert r.status_code == 200
    assert str(certs / "server.key") not in r.text, r.text
    assert "redacted" in r.text.lower()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ssl.TLSVersion.TLSv1_1 on purpose.
def test_tls_versions(tls_proxy, certs):
    host, port = tls_proxy.http[0].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # Let our side offer TLS 1.1; the proxy must refuse.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass


def test_mtls_with_client_certificate(mtls_proxy, certs):
    url = f"https://{mtls_proxy.http[0]}/v1/echo/m"
    res = curl("--cacert", str(certs / "ca.pem"), "--cert", str(certs / "client.pem"),
               "--key", str(certs / "client.key"), url)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"fString": "m"}
    r = requests.get(url, verify=str(certs / "ca.pem"),
                     cert=(str(certs / "client.pem"), str(certs / "client.key")), timeout=15)
    assert r.status_code == 200, r.text


def test_mtls_without_client_certificate_is_rejected(mtls_proxy, certs):
    url = f"https://{mtls_proxy.http[0]}/v1/echo/m"
    res = curl("--cacert", str(certs / "ca.pem"), "-w", "%{http_code}", "-o", "/dev/null", url)
    assert res.returncode != 0 or res.stdout.decode() != "200", res


def test_mtls_with_untrusted_client_certificate_is_rejected(mtls_proxy, certs, tmp_path):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "rogue.key", "-out", "rogue.pem", "-subj", "/CN=rogue",
             "-days", "2", cwd=tmp_path)
    url = f"https://{mtls_proxy.http[0]}/v1/echo/m"
    res = curl("--cacert", str(certs / "ca.pem"), "--cert", str(tmp_path / "rogue.pem"),
               "--key", str(tmp_path / "rogue.key"), "-w", "%{http_code}", "-o", "/dev/null",
               url)
    assert res.returncode != 0 or res.stdout.decode() != "200", res


# ---- Connections --------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        for i in range(10):
            conn.send(raw_request("GET", f"/v1/echo/k{i}"))
            resp = conn.read_response()
            assert resp.status == 200
            assert json.loads(resp.body) == {"fString": f"k{i}"}


def test_pipelined_responses_come_in_request_order(proxy):
    slow = json.dumps({"delayMs": 300}).encode()
    batch = (raw_request("POST", "/v1/slow", slow, {"Content-Type": "application/json"})
             + raw_request("GET", "/v1/echo/second")
             + raw_request("POST", "/v1/fail", b'{"code":5,"message":"third"}',
                           {"Content-Type": "application/json"})
             + raw_request("GET", "/v1/echo/fourth"))
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(batch)
        first, second, third, fourth = (conn.read_response() for _ in range(4))
        assert first.status == 200 and int(json.loads(first.body)["sleptMs"]) >= 300
        assert second.status == 200 and json.loads(second.body) == {"fString": "second"}
        assert third.status == 404 and json.loads(third.body)["message"] == "third"
        assert fourth.status == 200 and json.loads(fourth.body) == {"fString": "fourth"}
        # Still usable afterwards.
        conn.send(raw_request("GET", "/v1/echo/after"))
        assert json.loads(conn.read_response().body) == {"fString": "after"}


def test_connection_close_is_honoured(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/echo/bye", headers={"Connection": "close"}))
        resp = conn.read_response()
        assert resp.status == 200
        assert (resp.header("Connection") or "").lower() == "close"
        assert conn.closed_by_peer()


def test_http_1_0_closes_after_the_response(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(b"GET /v1/echo/old HTTP/1.0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 200
        assert json.loads(resp.body) == {"fString": "old"}
        assert conn.closed_by_peer()


def test_chunked_request_body(proxy):
    body = b'{"fString":"chunked","fInt32":3}'
    head = (b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(head + chunks + b"0\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 200, resp.body
    assert json.loads(resp.body) == {"fString": "chunked", "fInt32": 3}


def test_expect_100_continue(proxy, tmp_path):
    payload = tmp_path / "body.json"
    payload.write_text(json.dumps({"fString": "x" * 2_000_000}))
    res = curl("-H", "Content-Type: application/json", "-H", "Expect: 100-continue",
               "--data-binary", f"@{payload}", "-o", "/dev/null", "-w", "%{http_code}",
               f"{proxy.url}/v1/echo")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"200"


def test_head_request_has_no_body(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("HEAD", "/v1/echo/h"))
        resp = conn.read_response(head=True)
        assert resp.status in (200, 405)
        conn.send(raw_request("GET", "/v1/echo/next"))
        nxt = conn.read_response()
        assert json.loads(nxt.body) == {"fString": "next"}, "HEAD response carried a body"


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /v1/echo/x HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
])
def test_malformed_requests_get_400(proxy, request_bytes):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(request_bytes)
        try:
            resp = conn.read_response()
        except ConnectionError:
            return  # Closing the connection is acceptable too.
        assert 400 <= resp.status < 500 or resp.status == 505, resp.status


# ---- Limits -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(backend, tmp_path_factory):
    config = base_config(backend.address,
                         limits={"max_request_body_bytes": 1024, "max_header_bytes": 2048},
                         timeouts={"request_read": "500ms", "drain": "2s"})
    p = start_proxy(config, tmp_path_factory.mktemp("limited"))
    yield p
    p.stop()


def test_body_too_large_is_413(limited):
    r = limited.post("/v1/echo", {"fString": "x" * 4096})
    assert r.status_code == 413, r.text
    r = limited.post("/v1/echo", {"fString": "x" * 100})
    assert r.status_code == 200, r.text


def test_chunked_body_too_large_is_413(limited):
    part = b'{"fString":"' + b"x" * 3000 + b'"}'
    head = (b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    with RawConnection(limited.host, limited.port) as conn:
        try:
            conn.send(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(part), part))
            resp = conn.read_response()
        except (ConnectionError, BrokenPipeError) as e:
            pytest.fail(f"no 413 response: {e!r}")
    assert resp.status == 413


def test_headers_too_large_is_431(limited):
    r = limited.get("/v1/echo/x", headers={"X-Big": "y" * 4000})
    assert r.status_code == 431, r.text
    assert limited.get("/v1/echo/x").status_code == 200


def test_slow_request_is_408(limited):
    with RawConnection(limited.host, limited.port, timeout=20) as conn:
        conn.send(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        resp = conn.read_response()  # Hang guard: the socket timeout.
        assert resp.status == 408
        assert conn.closed_by_peer()


# ---- Load shapes --------------------------------------------------------------------------------


def test_deep_pipeline(proxy):
    n = 60  # More than limits.max_pipelined_requests (16): the proxy must apply backpressure.
    batch = b"".join(raw_request("GET", f"/v1/echo/p{i}") for i in range(n))
    with RawConnection(proxy.host, proxy.port, timeout=30) as conn:
        conn.send(batch)
        for i in range(n):
            resp = conn.read_response()
            assert resp.status == 200
            assert json.loads(resp.body) == {"fString": f"p{i}"}


def test_concurrent_clients_get_their_own_answers(proxy):
    errors = []

    def client(worker):
        try:
            with requests.Session() as session:
                for i in range(25):
                    value = worker * 1000 + i + 1  # Never 0: defaults are not printed.
                    r = session.post(f"{proxy.url}/v1/echo", json={"fInt32": value,
                                     "fString": "x" * (value % 97)}, timeout=15)
                    if r.status_code != 200 or r.json().get("fInt32") != value:
                        errors.append((worker, i, r.status_code, r.text[:100]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((worker, repr(e)))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]


def test_idle_keepalive_connection_is_closed(backend, tmp_path):
    p = start_proxy(base_config(backend.address, timeouts={"idle": "300ms", "drain": "2s"}),
                    tmp_path)
    try:
        with RawConnection(p.host, p.port, timeout=20) as conn:
            conn.send(raw_request("GET", "/v1/echo/i"))
            assert conn.read_response().status == 200
            assert conn.closed_by_peer()  # Hang guard: the 20 s socket timeout.
    finally:
        p.stop()


def test_max_in_flight_requests_gives_503(backend, tmp_path):
    p = start_proxy(base_config(backend.address, limits={"max_in_flight_requests": 1}), tmp_path)
    try:
        started = len(backend.slow_started())
        slow = json.dumps({"delayMs": 1500}).encode()
        with RawConnection(p.host, p.port) as conn:
            conn.send(raw_request("POST", "/v1/slow", slow, {"Content-Type": "application/json"}))
            wait_until(lambda: len(backend.slow_started()) > started, timeout=15,
                       message="the Slow call to start")
            r = p.post("/v1/echo", {"fString": "over"})
            assert r.status_code == 503, r.text
            assert conn.read_response().status == 200
        assert p.post("/v1/echo", {"fString": "again"}).status_code == 200
    finally:
        p.stop()


def test_expect_100_continue_over_the_limit_is_413(limited):
    with RawConnection(limited.host, limited.port) as conn:
        conn.send(b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 413


# ---- Query strings: every parameter up to the limit, never a silent drop ----


def test_query_parameters_over_the_limit_are_414_not_dropped(backend, tmp_path):
    p = start_proxy(base_config(backend.address, limits={"max_query_params": 3}), tmp_path)
    try:
        r = p.get("/v1/echo/x", params=[("fInt32", "1"), ("fBool", "true"), ("fInt64", "2")])
        assert r.status_code == 200, r.text
        r = p.get("/v1/echo/x?fInt32=1&fBool=true&fInt64=2&fDouble=1.5")
        assert r.status_code == 414, r.text
        assert "limits.max_query_params" in r.json()["message"]
    finally:
        p.stop()


def test_the_1025th_query_parameter_is_never_dropped(backend, tmp_path):
    # Past the old silent cut-off (1,024 parameters were read, the rest dropped with a 200).
    query = "&".join(["rInt64=1"] * 1024 + ["noSuchField=1"])
    default = start_proxy(base_config(backend.address, limits={"max_header_bytes": "64KiB"}))
    raised = start_proxy(base_config(backend.address, limits={"max_query_params": 2000,
                                                               "max_header_bytes": "64KiB"}))
    try:
        r = default.get(f"/v1/echo/x?{query}")
        assert r.status_code == 414, r.text
        r = raised.get(f"/v1/echo/x?{query}")
        assert r.status_code == 400 and "noSuchField" in r.text, r.text
        r = raised.get("/v1/echo/x?" + "&".join(["rInt64=7"] * 1500))
        assert r.status_code == 200 and len(r.json()["rInt64"]) == 1500, r.text[:200]
    finally:
        default.stop()
        raised.stop()


# ---- The access log is valid UTF-8 JSON whatever the request holds ----


def test_access_log_is_valid_utf8_json_with_hostile_bytes(backend, tmp_path):
    log = tmp_path / "access.log"
    p = start_proxy(base_config(backend.address,
                                logging={"access_log": True, "access_log_path": str(log)}),
                    tmp_path)
    try:
        with RawConnection(p.host, p.port) as conn:
            conn.send(b"GET /v1/echo/x HTTP/1.1\r\nHost: x\r\nX-Request-Id: \xff\xfe\xc3(\xed\xa0\x80"
                      b"\"}\\\r\n\r\n")
            assert conn.read_response().status == 200
        wait_until(lambda: log.exists() and log.read_bytes().count(b"\n") >= 1,
                   message="the access log line")
        for raw in log.read_bytes().splitlines():
            line = json.loads(raw.decode("utf-8"))  # Strict: invalid UTF-8 raises.
            assert line["request_id"].startswith("\ufffd\ufffd")
            assert line["request_id"].endswith('"}\\')
    finally:
        p.stop()

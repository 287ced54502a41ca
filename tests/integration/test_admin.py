"""The admin listener (/healthz, /readyz, /metrics, /config, /routes) and the command line
(--help, --version, --check-config)."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import (RawConnection, base_config, metric, parse_metrics, proxy_bin, to_yaml,
                      wait_until)

def test_healthz(proxy):
    r = proxy.admin_get("/healthz")
    assert r.status_code == 200


def test_readyz(proxy):
    assert proxy.admin_get("/readyz").status_code == 200


def test_unknown_admin_path_is_404(proxy):
    assert proxy.admin_get("/no-such-admin-page").status_code == 404


def test_admin_is_not_on_the_data_listener(proxy):
    assert proxy.get("/metrics").status_code == 404


def test_metrics_exposition_format(proxy):
    proxy.post("/v1/echo", {"fString": "m"})
    r = proxy.admin_get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "version=0.0.4" in r.headers["Content-Type"]
    parse_metrics(r.text)
    if shutil.which("promtool"):
        res = subprocess.run(["promtool", "check", "metrics"], input=r.content,
                             capture_output=True, timeout=30)
        assert res.returncode == 0, (res.stdout + res.stderr).decode()


def test_request_counter_uses_route_templates(proxy):
    labels = {"route": "POST /v1/echo", "method": "POST", "code": "200"}
    before = metric(proxy, "tipperary_http_requests_total", **labels)
    for _ in range(3):
        assert proxy.post("/v1/echo", {"fInt32": 1}).status_code == 200
    wait_until(lambda: metric(proxy, "tipperary_http_requests_total", **labels) >= before + 3,
               timeout=10, message="the request counter to count 3 more requests")

    get_labels = {"route": "GET /v1/{name=shelves/*/things/*}", "method": "GET", "code": "200"}
    before = metric(proxy, "tipperary_http_requests_total", **get_labels)
    assert proxy.get("/v1/shelves/77/things/88").status_code == 200
    wait_until(lambda: metric(proxy, "tipperary_http_requests_total", **get_labels) >= before + 1,
               timeout=10, message="the GetThing counter")
    text = proxy.admin_get("/metrics").text
    assert "shelves/77" not in text, "a raw request path leaked into metric labels"


def test_error_codes_are_counted(proxy):
    labels = {"route": "POST /v1/fail", "code": "404"}
    before = metric(proxy, "tipperary_http_requests_total", **labels)
    proxy.post("/v1/fail", {"code": 5, "message": "x"})
    wait_until(lambda: metric(proxy, "tipperary_http_requests_total", **labels) >= before + 1,
               timeout=10, message="the 404 counter")


def test_unmatched_requests_do_not_create_path_labels(proxy):
    for i in range(5):
        proxy.get(f"/random/path/{i}")
    text = proxy.admin_get("/metrics").text
    assert "/random/path" not in text


def test_config_endpoint_redacts_secrets(proxy):
    r = proxy.admin_get("/config")
    assert r.status_code == 200
    assert "listeners" in r.text
    assert "tipperary.testing.v1.TestService/Unannotated" in r.text


def test_routes_endpoint(proxy):
    r = proxy.admin_get("/routes")
    assert r.status_code == 200
    routes = r.json()
    text = json.dumps(routes)
    for expected in ["/v1/echo", "/v1/{name=shelves/*/things/*}", "/v1/unannotated",
                     "tipperary.testing.v1.TestService/Echo", "LOCK"]:
        assert expected in text, f"{expected} missing from /routes: {text[:2000]}"


# ---- Command line -------------------------------------------------------------------------------


def run_proxy(*args, timeout=30):
    return subprocess.run([str(proxy_bin()), *args], capture_output=True, timeout=timeout)


def test_help():
    res = run_proxy("--help")
    assert res.returncode == 0, res.stderr
    assert b"--config" in res.stdout + res.stderr


def test_version():
    res = run_proxy("--version")
    assert res.returncode == 0, res.stderr
    assert re.search(rb"\d+\.\d+\.\d+", res.stdout + res.stderr)


def test_unknown_flag_fails():
    res = run_proxy("--no-such-flag")
    assert res.returncode != 0


def test_check_config_ok_prints_effective_config(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(to_yaml(base_config("127.0.0.1:1")))
    res = run_proxy("--config", str(path), "--check-config")
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode()
    assert "listeners" in out and "upstream_default" in out, out


def _bad_config(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    res = run_proxy("--config", str(path), "--check-config")
    return path, res, (res.stdout + res.stderr).decode()


def test_check_config_bad_value_names_file_line_column(tmp_path):
    path, res, out = _bad_config(tmp_path, (
        "listeners:\n"
        "  - address: 127.0.0.1:0\n"
        "upstreams:\n"
        "  - name: backend\n"
        "    endpoints: [\"127.0.0.1:1\"]\n"
        "timeouts:\n"
        "  drain: notaduration\n"))
    assert res.returncode == 1, out
    assert re.search(re.escape(str(path)) + r":7:\d+", out), out


def test_check_config_unknown_key(tmp_path):
    path, res, out = _bad_config(tmp_path, (
        "listeners:\n"
        "  - address: 127.0.0.1:0\n"
        "upstreams:\n"
        "  - name: backend\n"
        "    endpoints: [\"127.0.0.1:1\"]\n"
        "listners: []\n"))
    assert res.returncode == 1, out
    assert re.search(re.escape(str(path)) + r":6:\d+", out), out


def test_check_config_yaml_syntax_error(tmp_path):
    path, res, out = _bad_config(tmp_path, "listeners: [\n  - {address: \n")
    assert res.returncode == 1, out
    assert str(path) in out, out


def test_missing_config_file():
    res = run_proxy("--config", "/nonexistent/proxy.yaml", "--check-config")
    assert res.returncode == 1
    assert b"/nonexistent/proxy.yaml" in res.stdout + res.stderr


def test_check_config_names_where_each_problem_was_written(tmp_path):
    """Problems found after the file is parsed (a route's method, a descriptor file's bytes)
    still name FILE:LINE:COL: PATH, as startup does."""
    bad_route = {"method": "POST", "path": "/v1/x",
                 "grpc_method": "tipperary.testing.v1.TestService/Nope"}
    path = tmp_path / "routes.yaml"
    path.write_text(to_yaml(base_config("127.0.0.1:1", routes=[bad_route])))
    res = run_proxy("--config", str(path), "--check-config")
    out = res.stderr.decode()
    assert re.search(re.escape(str(path)) + r":\d+:\d+: routes\[0\]: "
                     r"tipperary.testing.v1.TestService/Nope: POST /v1/x \(config\): skipped: "
                     r"unknown gRPC method", out), out
    bogus = tmp_path / "bogus.pb"
    bogus.write_bytes(b"this is not a descriptor set")
    path = tmp_path / "descriptors.yaml"
    path.write_text(to_yaml(base_config("127.0.0.1:1", descriptors=[str(bogus)])))
    for args in (["--check-config"], []):
        res = run_proxy("--config", str(path), *args, timeout=30)
        out = (res.stdout + res.stderr).decode()
        assert res.returncode == 1, out
        assert re.search(re.escape(str(path)) + r":\d+:\d+: descriptors\[0\]: " +
                         re.escape(str(bogus)), out), out


def test_bad_descriptor_set_fails_startup(tmp_path):
    bogus = tmp_path / "bogus.pb"
    bogus.write_bytes(b"this is not a descriptor set")
    config = base_config("127.0.0.1:1", descriptors=[str(bogus)])
    path = tmp_path / "p.yaml"
    path.write_text(to_yaml(config))
    res = run_proxy("--config", str(path), timeout=30)
    assert res.returncode != 0
    assert str(bogus).encode() in res.stdout + res.stderr


@pytest.mark.parametrize("route,transcoding", [
    # A method the schema lacks: skipped with a warning unless transcoding.strict (the schema may
    # come from reflection; tests/integration/test_gateway_parity.py shows it served without).
    ({"method": "POST", "path": "/v1/x", "grpc_method": "tipperary.testing.v1.TestService/Nope"},
     {"strict": True}),
    # A malformed template is the config file's own error: refused by the loader either way.
    ({"method": "POST", "path": "/v1/{unclosed", "grpc_method":
      "tipperary.testing.v1.TestService/Echo"}, {}),
])
def test_bad_route_fails_startup(tmp_path, route, transcoding):
    config = base_config("127.0.0.1:1", routes=[route], transcoding=transcoding)
    path = tmp_path / "p.yaml"
    path.write_text(to_yaml(config))
    res = run_proxy("--config", str(path), timeout=30)
    assert res.returncode != 0, (res.stdout + res.stderr).decode()


def test_listener_counters_are_exported(stack):
    proxy = stack.proxy
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n")
        assert conn.read_response().status == 400
    text = proxy.admin_get("/metrics").text
    lines = {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
             if l and not l.startswith("#")}
    assert lines['tipperary_http_protocol_errors_total{listener="http"}'] >= 1
    assert lines['tipperary_http_connections_accepted_total{listener="http"}'] >= 1
    assert 'tipperary_http_connections_accepted_total{listener="admin"}' in lines

"""grpc-gateway parity of the route table (docs/migrating-from-grpc-gateway.md), end to end: the
test schema (proto/tipperary/testing/v1/parity_service.proto) carries two rules the proxy cannot
serve and a duplicate binding (ParityService.EchoShadow), and rule forms
protoc-gen-grpc-gateway accepts (EchoParity). The proxy
starts, serves the rest, lists each rule's state under /routes, warns naming the methods;
--check-config reports every problem; transcoding.strict refuses; a body sent to a rule without
one is ignored or rejected per transcoding.unexpected_body; trailing metadata of unary responses
arrives as Grpc-Trailer-* header fields unless the client asks for trailers."""

import json
import pathlib
import shutil
import subprocess

import pytest

from conftest import (SERVICE, Proc, RawConnection, base_config, curl, error_body, proxy_bin,
                      raw_request, start_backend, start_proxy, write_config)

PARITY = "tipperary.testing.v1.ParityService"
BAD_RULE = "/v1/parity/bad/{no_such_field}"
MESSAGE_RULE = "/v1/parity/message/{f_nested}"


REPO = pathlib.Path(__file__).resolve().parents[2]

# One rule each, on tipperary.testing.v1.AllTypes: (rule, Debian's protoc-gen-grpc-gateway
# accepts it, the proxy serves it). Where they differ, docs/migrating-from-grpc-gateway.md says
# why: the proxy serves a superset except for a path variable through a repeated message, which
# the generator lets through and its runtime then fails on every request.
GENERATOR_CASES = [
    ('get: "/v1/ids/{r_string}"', True, True),
    ('get: "/v1/ids/{r_int64}"', True, True),
    ('get: "/v1/n/{f_nested.name}"', True, True),
    ('post: "/v1/c" body: "f_nested.child"', True, True),
    ('get: "/v1/c" response_body: "f_nested.child"', True, True),
    ('get: "/v1/t/{t_timestamp}"', True, True),
    ('get: "/v1/{f_string=**}"', True, True),
    ('post: "/v1/{f_string}:run" body: "*"', True, True),
    ('custom { kind: "LOCK" path: "/v1/{f_string}" }', True, True),
    ('get: "/v1/a" additional_bindings { post: "/v1/b/{f_string}" body: "*" }', True, True),
    ('get: "/v1/m/{r_nested.name}"', True, False),
    ('get: "/v1/m" body: "*"', False, True),
    ('delete: "/v1/m" body: "*"', False, True),
    ('get: "/v1/r" response_body: "r_string"', False, True),
    ('get: "/v1/m/{f_nested}"', False, False),
    ('get: "/v1/m/{m_string_int64}"', False, False),
    ('get: "/v1/m/{t_struct}"', False, False),
    ('get: "/v1/m/{nope}"', False, False),
]


@pytest.mark.parametrize("rule,generator_ok,proxy_ok", GENERATOR_CASES)
def test_rules_against_the_real_generator(tmp_path, rule, generator_ok, proxy_ok):
    """The same rule through Debian's protoc-gen-grpc-gateway (v1) and tipperary-proxy
    --check-config (every rule the generator accepts is served, but one)."""
    if shutil.which("protoc-gen-grpc-gateway") is None or shutil.which("protoc") is None:
        pytest.skip("protoc-gen-grpc-gateway not installed (scripts/install-deps --bench)")
    (tmp_path / "probe.proto").write_text(
        'syntax = "proto3";\npackage probe;\nimport "google/api/annotations.proto";\n'
        'import "tipperary/testing/v1/test_service.proto";\n'
        "service P { rpc M(tipperary.testing.v1.AllTypes) returns "
        "(tipperary.testing.v1.AllTypes) { option (google.api.http) = { " + rule + " }; } }\n")
    includes = [f"-I{tmp_path}", f"-I{REPO / 'proto'}", f"-I{REPO / 'proto/third_party'}",
                "-I/usr/include"]
    out = tmp_path / "out"
    out.mkdir()
    gen = subprocess.run(["protoc", *includes, f"--grpc-gateway_out=logtostderr=true:{out}",
                          "probe.proto"], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path)
    assert (gen.returncode == 0) == generator_ok, gen.stderr
    descriptors = tmp_path / "probe.pb"
    subprocess.run(["protoc", *includes, "--include_imports",
                    f"--descriptor_set_out={descriptors}", "probe.proto"], check=True,
                   cwd=tmp_path, timeout=30)
    config = base_config("127.0.0.1:1", descriptors=[str(descriptors)], routes=[])
    path = write_config(tmp_path, config)
    res = subprocess.run([str(proxy_bin()), "--config", str(path), "--check-config"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert ("0 route problem(s)" in res.stderr) == proxy_ok, res.stderr


def _check_config(tmp_path, **transcoding):
    config = base_config("127.0.0.1:1")
    config["transcoding"] = {**config["transcoding"], **transcoding}
    path = write_config(tmp_path, config)
    return subprocess.run([str(proxy_bin()), "--config", str(path), "--check-config"],
                          capture_output=True, text=True, timeout=30)


def test_starts_with_invalid_rules_and_serves_the_rest(stack):
    proxy = stack.proxy
    r = proxy.post("/v1/echo", {"fString": "still served"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "still served"}
    # The skipped rules route nowhere.
    assert proxy.get("/v1/parity/bad/x").status_code == 404
    assert proxy.get("/v1/parity/message/x").status_code == 404
    warnings = [l for l in proxy.proc.json_lines() if l.get("level") == "warn"]
    skipped = {l["rule"]: l for l in warnings if l.get("msg") == "route skipped"}
    assert set(skipped) == {f"GET {BAD_RULE}", f"GET {MESSAGE_RULE}"}, warnings
    for line in skipped.values():
        assert line["grpc_method"] == f"{PARITY}/EchoShadow", line
        assert line["source"] == "annotation"
    assert "no field" in skipped[f"GET {BAD_RULE}"]["reason"]
    assert "must name a scalar" in skipped[f"GET {MESSAGE_RULE}"]["reason"]
    shadowed = [l for l in warnings if l.get("msg") == "route shadowed"]
    assert len(shadowed) == 1, warnings
    assert shadowed[0]["grpc_method"] == f"{PARITY}/EchoParity"
    assert shadowed[0]["rule"] == "GET /v1/parity/dup/{f_string}"
    assert shadowed[0]["shadowed_by"] == f"{PARITY}/EchoShadow"
    assert shadowed[0]["shadowed_by_rule"] == "GET /v1/parity/dup/{camel_case_name}"


def test_routes_lists_active_shadowed_and_skipped(proxy):
    r = proxy.admin_get("/routes")
    assert r.status_code == 200, r.text
    routes = r.json()
    by_rule = {}
    for route in routes:
        by_rule.setdefault((route["method"], route["path"]), []).append(route)
    echo = by_rule[("POST", "/v1/echo")]
    assert [e["state"] for e in echo] == ["active"], echo
    dup = by_rule[("GET", "/v1/parity/dup/{f_string}")][0]
    assert dup["state"] == "shadowed"
    assert dup["grpc_method"] == f"{PARITY}/EchoParity"
    assert dup["shadowed_by"] == {"grpc_method": f"{PARITY}/EchoShadow",
                                  "rule": "GET /v1/parity/dup/{camel_case_name}",
                                  "source": "annotation"}
    assert by_rule[("GET", "/v1/parity/dup/{camel_case_name}")][0]["state"] == "active"
    bad = by_rule[("GET", BAD_RULE)][0]
    assert bad["state"] == "skipped"
    assert bad["grpc_method"] == f"{PARITY}/EchoShadow"
    assert "no_such_field" in bad["reason"]
    assert by_rule[("GET", MESSAGE_RULE)][0]["state"] == "skipped"


def test_repeated_path_variable_takes_comma_separated_values(proxy):
    r = proxy.get("/v1/parity/ids/a,b%20c,d")
    assert r.status_code == 200, r.text
    assert r.json() == {"rString": ["a", "b c", "d"]}
    r = proxy.get("/v1/parity/numbers/1,2,3/nm")
    assert r.status_code == 200, r.text
    assert r.json() == {"rInt64": ["1", "2", "3"], "fNested": {"name": "nm"}}
    r = proxy.get("/v1/parity/numbers/1,x/nm")
    assert r.status_code == 400, r.text
    assert error_body(r)["code"] == 3


def test_duplicate_binding_the_later_rule_wins(proxy):
    r = proxy.get("/v1/parity/dup/x")
    assert r.status_code == 200, r.text
    # EchoShadow's rule binds camel_case_name; EchoParity's (shadowed) would bind f_string.
    assert r.json() == {"camelCaseName": "x"}


def test_nested_body_and_response_body(proxy):
    r = proxy.post("/v1/parity/child/s", {"name": "c", "count": "2"})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "c", "count": "2"}
    r = proxy.post("/v1/parity/tags", ["x", "y"])
    assert r.status_code == 200, r.text
    assert r.json() == ["x", "y"]


def test_check_config_reports_every_problem(tmp_path):
    res = _check_config(tmp_path)
    assert res.returncode == 0, res.stderr
    assert "listeners" in res.stdout
    lines = [l for l in res.stderr.splitlines() if "warning: route" in l]
    assert len(lines) == 3, res.stderr
    assert any(f"{PARITY}/EchoShadow: GET {BAD_RULE} (annotation): skipped:" in l
               for l in lines), lines
    assert any(f"{PARITY}/EchoShadow: GET {MESSAGE_RULE} (annotation): skipped:" in l
               for l in lines), lines
    assert any(f"{PARITY}/EchoParity: GET /v1/parity/dup/{{f_string}} (annotation): shadowed "
               f"by GET /v1/parity/dup/{{camel_case_name}} ({PARITY}/EchoShadow" in l
               for l in lines), lines
    assert "3 route problem(s)" in res.stderr


def test_check_config_strict_exits_1(tmp_path):
    res = _check_config(tmp_path, strict=True)
    assert res.returncode == 1, res.stderr
    lines = [l for l in res.stderr.splitlines() if "error: route" in l]
    assert len(lines) == 3, res.stderr


def test_check_config_config_route_problems(tmp_path):
    config = base_config("127.0.0.1:1")
    config["routes"].append({"method": "GET", "path": "/v1/cfg/{nope}",
                             "grpc_method": f"{SERVICE}/Unannotated"})
    config["routes"].append({"method": "GET", "path": "/v1/cfg2",
                             "grpc_method": f"{SERVICE}/NoSuchMethod"})
    path = write_config(tmp_path, config)
    res = subprocess.run([str(proxy_bin()), "--config", str(path), "--check-config"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert (f"{SERVICE}/Unannotated: GET /v1/cfg/{{nope}} (config): skipped: path variable"
            in res.stderr), res.stderr
    assert (f"{SERVICE}/NoSuchMethod: GET /v1/cfg2 (config): skipped: unknown gRPC method"
            in res.stderr), res.stderr
    assert "5 route problem(s)" in res.stderr


def test_strict_refuses_to_start(tmp_path):
    config = base_config("127.0.0.1:1")
    config["transcoding"]["strict"] = True
    path = write_config(tmp_path, config)
    proc = Proc("proxy", [str(proxy_bin()), "--config", str(path)])
    code = proc.wait(timeout=30)
    proc.stop()  # Joins the readers: the whole log is in.
    log = proc.tail(200)
    assert code == 1, log
    assert "3 route problem(s) (transcoding.strict)" in log, log
    assert f"{PARITY}/EchoShadow: GET {BAD_RULE}" in log, log


def test_reflected_schema_follows_the_same_rules(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, descriptors=[{"reflection": "backend"}]),
                        tmp_path)
    procs.append(proxy)
    assert proxy.get("/v1/parity/ids/a,b").json() == {"rString": ["a", "b"]}
    states = {(r["method"], r["path"]): r["state"] for r in proxy.admin_get("/routes").json()}
    assert states[("GET", BAD_RULE)] == "skipped"
    assert states[("GET", "/v1/parity/dup/{f_string}")] == "shadowed"
    loaded = [l for l in proxy.proc.json_lines() if l.get("msg") == "schema loaded"]
    assert loaded and loaded[0]["route_problems"] == "3", loaded
    assert any(l.get("msg") == "route skipped" for l in proxy.proc.json_lines())


def test_reflected_schema_refused_when_strict(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, descriptors=[{"reflection": "backend"}])
    config["transcoding"]["strict"] = True
    proxy = start_proxy(config, tmp_path, wait_ready=False)
    procs.append(proxy)
    line = proxy.proc.wait_for_json(lambda l: l.get("msg") == "schema from reflection rejected")
    assert f"{PARITY}/EchoShadow: GET {BAD_RULE}" in line[0]["error"], line
    # Still no schema: not ready, and requests are 503s.
    assert proxy.admin_get("/readyz").status_code == 503
    assert proxy.post("/v1/echo", {}).status_code == 503


def test_body_on_a_bodyless_rule_is_ignored_by_default(proxy):
    r = proxy.post("/v1/parity/nobody/x", data=b"<not json>",
                   headers={"Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "x"}
    # A GET with a body: the same, through a client that sends one.
    res = curl("-X", "GET", "-H", "Content-Type: application/json", "-d", '{"fInt32": 5}',
               f"{proxy.url}/v1/echo/y")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"fString": "y"}


def test_body_on_a_bodyless_rule_is_rejected_when_configured(make_stack):
    proxy = make_stack(transcoding={"unexpected_body": "reject"}).proxy
    r = proxy.post("/v1/parity/nobody/x", {"fInt32": 5})
    assert r.status_code == 400, r.text
    assert "does not take a request body" in error_body(r)["message"]
    r = proxy.request("GET", "/v1/echo/y", data=b"{}")
    assert r.status_code == 400, r.text
    # Without a body both are served.
    assert proxy.post("/v1/parity/nobody/x").status_code == 200
    assert proxy.get("/v1/echo/y").json() == {"fString": "y"}


def _metadata_request(proxy, headers, version="HTTP/1.1"):
    body = json.dumps({"responseTrailers": {"x-trail": "t1"}}).encode()
    request = raw_request("POST", "/v1/metadata", body,
                          {"Content-Type": "application/json", **headers})
    if version != "HTTP/1.1":
        request = request.replace(b"HTTP/1.1", version.encode(), 1)
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(request)
        return conn.read_response()


def test_unary_trailing_metadata_as_headers(proxy):
    resp = _metadata_request(proxy, {})
    assert resp.status == 200, resp.body
    assert not resp.chunked, resp.headers
    assert resp.header("Content-Length") is not None
    assert resp.header("Grpc-Trailer-X-Trail") == "t1", resp.headers
    # HTTP/1.0 has no trailers at all: headers, even when it says TE: trailers.
    resp = _metadata_request(proxy, {"TE": "trailers"}, version="HTTP/1.0")
    assert resp.status == 200, resp.body
    assert resp.header("Grpc-Trailer-X-Trail") == "t1", resp.headers
    # With TE: trailers on HTTP/1.1, trailers (as grpc-gateway sends them), not headers.
    resp = _metadata_request(proxy, {"TE": "trailers"})
    assert resp.chunked
    assert resp.header("Grpc-Trailer-X-Trail") is None
    assert resp.trailer("Grpc-Trailer-X-Trail") == "t1", resp.trailers


def test_errors_carry_trailing_metadata_as_headers(proxy):
    r = proxy.post("/v1/fail", {"code": 9, "message": "no", "trailers": {"x-why": "because"}})
    assert r.status_code == 400, r.text
    assert r.headers.get("Grpc-Trailer-X-Why") == "because", r.headers
    assert "Transfer-Encoding" not in r.headers


def test_streams_keep_chunked_trailers(proxy):
    with RawConnection(proxy.host, proxy.port) as conn:
        conn.send(raw_request("GET", "/v1/stream?count=2", b"", {}))
        resp = conn.read_response()
    assert resp.status == 200
    assert resp.chunked
    assert resp.trailer("Grpc-Status") == "0", resp.trailers

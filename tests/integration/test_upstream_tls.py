"""TLS and mTLS from the proxy to its upstream (upstreams[].tls): the real test backend serving
gRPC over TLS (--tls-cert/--tls-key/--tls-client-ca), behind the real proxy. The schema comes
from reflection and readiness from health checks, both through the same TLS connections.
Certificates are made with the openssl CLI when the module starts; none is committed."""

import pathlib
import re
import shutil
import subprocess

import pytest
import requests

from conftest import (base_config, descriptor_set, proxy_bin, start_backend, start_proxy, to_yaml,
                      wait_until)

# ---- Certificates -------------------------------------------------------------------------------


def _openssl(*args, cwd):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is required", pytrace=False)
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()


def _ca(directory: pathlib.Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}",
             "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)


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
    _ca(d, "ca")
    _ca(d, "other-ca")  # Issued nothing here: the wrong CA.
    _issue(d, "server", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _issue(d, "client", "clientAuth", None)
    return d


# ---- Stacks -------------------------------------------------------------------------------------


def _tls_backend(certs, mtls: bool):
    extra = ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")]
    if mtls:
        extra += ["--tls-client-ca", str(certs / "ca.pem")]
    return start_backend(extra=extra)


@pytest.fixture(scope="module")
def tls_backend(certs):
    b = _tls_backend(certs, mtls=False)
    yield b
    b.stop(timeout=3)


@pytest.fixture(scope="module")
def mtls_backend(certs):
    b = _tls_backend(certs, mtls=True)
    yield b
    b.stop(timeout=3)


def _config(address: str, tls: dict, reflection: bool = True) -> dict:
    """The proxy's config for the backend at `address`, over TLS. With reflection the schema
    comes through the TLS connection too; else from the descriptor file (a proxy that cannot
    connect still starts, and answers 503)."""
    descriptors = [{"reflection": "backend"}] if reflection else [str(descriptor_set())]
    config = base_config(address, descriptors=descriptors)
    config["upstreams"][0]["tls"] = tls
    config["upstreams"][0]["connect_timeout"] = "1s"
    config["upstreams"][0]["reconnect_backoff_max"] = "200ms"
    return config


@pytest.fixture
def start(procs, tmp_path):
    """Starts a proxy for a config, stopped after the test."""
    def run(config: dict, wait_ready: bool = True):
        proxy = start_proxy(config, tmp_path, wait_ready=wait_ready)
        procs.append(proxy)
        return proxy
    return run


def _echo(proxy, text: str) -> requests.Response:
    return proxy.post("/v1/echo", {"fString": text})


def _metric(proxy, name: str, labels: str) -> float:
    text = proxy.admin_get("/metrics").text
    match = re.search(re.escape(name) + r"\{" + labels + r"\} (\S+)", text)
    return float(match.group(1)) if match else 0.0


def _connect_failures(proxy) -> list[dict]:
    return [l for l in proxy.proc.json_lines() if l.get("msg") == "upstream connect failed"]


# ---- Tests --------------------------------------------------------------------------------------


def test_json_through_a_tls_upstream(start, tls_backend, certs):
    proxy = start(_config(tls_backend.address, {"ca": str(certs / "ca.pem")}))
    r = _echo(proxy, "over tls")
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "over tls"}
    # The schema came by reflection over the same TLS connection: its routes are served.
    assert any("/v1/echo" in line for line in proxy.admin_get("/routes").text.splitlines())
    assert _metric(proxy, "tipperary_upstream_connections",
                   'state="ready",upstream="backend"') >= 1
    assert not _connect_failures(proxy), proxy.proc.tail()
    # The dump shows the section.
    dump = proxy.admin_get("/config").text
    assert "tls:" in dump and str(certs / "ca.pem") in dump, dump


def test_host_name_endpoint_and_server_name(start, tls_backend, certs):
    """"localhost" is verified as a DNS name (and sent as SNI); server_name overrides it."""
    config = _config(tls_backend.address, {"ca": str(certs / "ca.pem")})
    config["upstreams"][0]["endpoints"] = [f"localhost:{tls_backend.port}"]
    proxy = start(config)
    assert _echo(proxy, "by name").json() == {"fString": "by name"}

    config = _config(tls_backend.address, {"ca": str(certs / "ca.pem"), "server_name": "localhost"})
    proxy = start(config)
    assert _echo(proxy, "overridden").json() == {"fString": "overridden"}


def test_mutual_tls(start, mtls_backend, certs):
    proxy = start(_config(mtls_backend.address, {"ca": str(certs / "ca.pem"),
                                         "cert": str(certs / "client.pem"),
                                         "key": str(certs / "client.key")}))
    r = _echo(proxy, "mtls")
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "mtls"}
    # The client key's path is redacted like the listeners' keys.
    dump = proxy.admin_get("/config").text
    assert str(certs / "client.key") not in dump, dump
    assert str(certs / "client.pem") in dump, dump


def test_mutual_tls_without_a_client_certificate_fails(start, mtls_backend, certs):
    config = _config(mtls_backend.address, {"ca": str(certs / "ca.pem")}, reflection=False)
    proxy = start(config, wait_ready=False)
    failures = wait_until(lambda: _connect_failures(proxy), message="a connect failure")
    assert "TLS" in failures[0]["error"], failures
    assert "client certificate" in failures[0]["error"], failures
    r = _echo(proxy, "refused")
    assert r.status_code == 503, r.text
    assert proxy.admin_get("/readyz").status_code == 503
    wait_until(lambda: _metric(proxy, "tipperary_upstream_connect_attempts_total",
                               'result="failure",upstream="backend"') >= 1,
               message="the connect failure in the metrics")


def test_wrong_ca_fails_with_the_reason(start, tls_backend, certs):
    config = _config(tls_backend.address, {"ca": str(certs / "other-ca.pem")}, reflection=False)
    proxy = start(config, wait_ready=False)
    failures = wait_until(lambda: _connect_failures(proxy), message="a connect failure")
    assert "certificate verify failed: unable to get local issuer certificate" in \
        failures[0]["error"], failures
    r = _echo(proxy, "unverified")
    assert r.status_code == 503, r.text
    assert "certificate verify failed" in r.text, r.text


def test_verify_false_is_warned_about(start, tls_backend, certs):
    proxy = start(_config(tls_backend.address, {"ca": str(certs / "other-ca.pem"), "verify": False}))
    assert _echo(proxy, "unverified").json() == {"fString": "unverified"}
    warnings = [l for l in proxy.proc.json_lines()
                if l.get("level") == "warn" and "not verified" in l.get("msg", "")]
    assert warnings and warnings[0]["upstream"] == "backend", proxy.proc.tail()


def test_plaintext_proxy_to_a_tls_upstream_fails(start, tls_backend):
    """Without upstreams[].tls the proxy speaks h2c, which a TLS server cannot take."""
    proxy = start(base_config(tls_backend.address), wait_ready=False)
    r = _echo(proxy, "h2c")
    assert r.status_code == 503, r.text


def test_check_config_names_a_bad_upstream_key(tmp_path, certs):
    config = _config("127.0.0.1:1", {"cert": str(certs / "client.pem"),
                                     "key": str(certs / "server.key")}, reflection=False)
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(config))
    res = subprocess.run([str(proxy_bin()), "--config", str(path), "--check-config"],
                         capture_output=True, timeout=30)
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 1, out
    assert re.search(re.escape(str(path)) + r":\d+:\d+: upstreams\[0\]\.tls\.key: cannot use .*"
                     r"the private key does not belong to the certificate", out), out

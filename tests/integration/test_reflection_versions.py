"""Server reflection, both protocol versions: the test backend serves v1alpha only (grpc++ 1.51's
own plugin, as older servers do), v1 only, or both (--reflection); tipperary-proxy learns the
schema from each — v1 first, v1alpha when the server answers UNIMPLEMENTED — and remembers per
upstream which one worked, trying the other again when a restarted server stops speaking it."""

import signal

import pytest

from conftest import base_config, start_backend, start_proxy, wait_until

FAST_RECONNECT = {"reconnect_backoff_initial": "50ms", "reconnect_backoff_max": "300ms",
                  "connect_timeout": "1s"}


def versions_logged(proxy) -> list[str]:
    log = proxy.proc.json_lines("stderr") + proxy.proc.json_lines("stdout")
    return [l["version"] for l in log if l.get("msg") == "reflection version"]


def metric(proxy, series: str) -> float:
    for line in proxy.admin_get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("served, spoken", [("v1alpha", "v1alpha"), ("v1", "v1"),
                                            ("v1,v1alpha", "v1")])
def test_the_proxy_learns_the_schema_whichever_version_the_server_speaks(tmp_path, procs, served,
                                                                         spoken):
    backend = start_backend(extra=["--reflection", served])
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, descriptors=[{"reflection": "backend"}]),
                        tmp_path)
    procs.append(proxy)
    r = proxy.post("/v1/echo", {"fString": "refl", "fInt64": "5", "tAny": {
        "@type": "type.googleapis.com/tipperary.testing.v1.Nested", "name": "a"}})
    assert r.status_code == 200, r.text
    assert r.json()["tAny"]["name"] == "a"
    assert proxy.get("/v1/parity/ids/a,b").status_code == 200  # ParityService too.
    assert versions_logged(proxy) == [spoken]


def test_a_backend_without_reflection_fails_cleanly(tmp_path, procs):
    backend = start_backend(extra=["--reflection", "none"])
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, descriptors=[{"reflection": "backend"}]),
                        tmp_path, wait_ready=False)
    procs.append(proxy)
    proxy.proc.wait_for_json(lambda l: l.get("msg") == "reflection failed; retrying"
                             and "UNIMPLEMENTED" in l.get("error", ""))
    assert versions_logged(proxy) == []


def test_the_remembered_version_follows_a_restarted_server(tmp_path, procs):
    """v1 works and is remembered; the server comes back speaking v1alpha only: the refresh on
    reconnect gets UNIMPLEMENTED for v1, falls back, and the schema is unchanged; then back."""
    backend = start_backend(extra=["--reflection", "v1"])
    procs.append(backend)
    config = base_config(backend.address, descriptors=[{"reflection": "backend"}],
                         upstreams=[{"name": "backend", "endpoints": [backend.address],
                                     **FAST_RECONNECT}],
                         schema={"refresh_interval": "0s"})  # Only reconnects refresh.
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    assert proxy.post("/v1/echo", {"fString": "a"}).status_code == 200
    assert versions_logged(proxy) == ["v1"]

    backend.stop(signal.SIGKILL)
    older = start_backend(backend.address, extra=["--reflection", "v1alpha"], attempts=10)
    procs.append(older)
    wait_until(lambda: versions_logged(proxy) == ["v1", "v1alpha"], timeout=30,
               message="the refresh to fall back to v1alpha")
    wait_until(lambda: metric(proxy, 'tipperary_schema_refreshes_total{result="unchanged"}') >= 1,
               timeout=30, message="the refreshed schema to be compared")
    assert proxy.post("/v1/echo", {"fString": "b"}).status_code == 200

    older.stop(signal.SIGKILL)
    newer = start_backend(backend.address, extra=["--reflection", "v1"], attempts=10)
    procs.append(newer)
    wait_until(lambda: versions_logged(proxy) == ["v1", "v1alpha", "v1"], timeout=30,
               message="the refresh to go back to v1")
    assert metric(proxy, 'tipperary_schema_refreshes_total{result="failed"}') == 0
    assert proxy.post("/v1/echo", {"fString": "c"}).status_code == 200

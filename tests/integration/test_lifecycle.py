"""Upstream and proxy lifecycle: backend restarts, GOAWAY, SIGTERM drain, schemas by server
reflection, Unix-socket upstreams."""

import shutil
import signal
import tempfile
import threading

import pytest
import requests

from conftest import (RawConnection, base_config, error_body, free_port, raw_request,
                      start_backend, start_proxy, wait_until)

FAST_RECONNECT = {"reconnect_backoff_initial": "50ms", "reconnect_backoff_max": "300ms",
                  "connect_timeout": "1s"}


def upstream(address: str, **extra) -> list[dict]:
    return [{"name": "backend", "endpoints": [address], **FAST_RECONNECT, **extra}]


def echo_status(proxy) -> int:
    try:
        return proxy.post("/v1/echo", {"fString": "ping"}, timeout=5).status_code
    except requests.RequestException:
        return -1


def ready_status(proxy) -> int:
    try:
        return proxy.admin_get("/readyz", timeout=2).status_code
    except requests.RequestException:
        return -1


class Call(threading.Thread):
    """An HTTP call on its own thread, so the test can disturb processes meanwhile."""

    def __init__(self, proxy, path, body, timeout=30):
        super().__init__(daemon=True)
        self.url = proxy.url + path
        self.body = body
        self.timeout = timeout
        self.response = None
        self.error = None
        self.start()

    def run(self):
        try:
            self.response = requests.post(self.url, json=self.body, timeout=self.timeout)
        except requests.RequestException as e:
            self.error = e

    def result(self):
        self.join(self.timeout + 5)
        assert not self.is_alive(), "HTTP call did not finish"
        assert self.error is None, f"HTTP call failed: {self.error!r}"
        return self.response


def test_backend_restart_on_the_same_port(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, upstreams=upstream(backend.address)), tmp_path)
    procs.append(proxy)
    assert echo_status(proxy) == 200

    backend.stop(signal.SIGKILL)
    wait_until(lambda: echo_status(proxy) == 503, timeout=20,
               message="requests to fail with 503 while the backend is down")
    r = proxy.post("/v1/echo", {"fString": "x"})
    assert r.status_code == 503
    assert error_body(r)["code"] == 14
    wait_until(lambda: ready_status(proxy) != 200, timeout=20, message="/readyz to fail")

    restarted = start_backend(backend.address, attempts=10)
    procs.append(restarted)
    wait_until(lambda: echo_status(proxy) == 200, timeout=30,
               message="the proxy to reconnect to the restarted backend")
    wait_until(lambda: ready_status(proxy) == 200, timeout=20, message="/readyz to recover")
    assert proxy.proc.alive()


def test_proxy_started_before_the_backend(tmp_path, procs):
    port = free_port()
    address = f"127.0.0.1:{port}"
    proxy = start_proxy(base_config(address, upstreams=upstream(address)), tmp_path,
                        wait_ready=False)
    procs.append(proxy)
    assert ready_status(proxy) != 200
    assert echo_status(proxy) == 503
    backend = start_backend(address, attempts=10)
    procs.insert(0, backend)
    proxy.wait_ready()
    wait_until(lambda: echo_status(proxy) == 200, timeout=30, message="the first 200")


def test_goaway_lets_the_in_flight_call_finish(tmp_path, procs):
    backend = start_backend(extra=["--shutdown-grace-ms", "15000"])
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, upstreams=upstream(backend.address)), tmp_path)
    procs.append(proxy)
    call = Call(proxy, "/v1/slow", {"delayMs": 1500})
    wait_until(lambda: backend.slow_started(), timeout=15, message="the Slow call to start")
    backend.proc.send_signal(signal.SIGTERM)  # grpc++ sends GOAWAY and waits for the call.

    r = call.result()
    assert r.status_code == 200, r.text
    assert int(r.json()["sleptMs"]) >= 1500
    assert not r.json().get("cancelled", False)
    # The proxy should close the drained connection, which lets the backend exit well before
    # its 15 s grace period; the wait here is only a hang guard.
    assert backend.proc.wait(30) == 0

    # New calls are not sent on the old connection: 503 now, 200 after a restart.
    wait_until(lambda: echo_status(proxy) == 503, timeout=20, message="503 after backend exit")
    restarted = start_backend(backend.address, attempts=10)
    procs.append(restarted)
    wait_until(lambda: echo_status(proxy) == 200, timeout=30, message="reconnect after GOAWAY")


def test_sigterm_drains_in_flight_requests(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, timeouts={"drain": "10s"}), tmp_path)
    procs.append(proxy)
    call = Call(proxy, "/v1/slow", {"delayMs": 1500})
    wait_until(lambda: backend.slow_started(), timeout=15, message="the Slow call to start")
    proxy.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: ready_status(proxy) != 200, timeout=5,
               message="/readyz to fail as soon as draining starts")

    r = call.result()
    assert r.status_code == 200, r.text
    assert int(r.json()["sleptMs"]) >= 1500
    assert proxy.proc.wait(20) == 0
    assert not backend.cancellations()


def test_sigterm_with_idle_keepalive_connection_exits_promptly(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, timeouts={"drain": "10s"}), tmp_path)
    procs.append(proxy)
    with RawConnection(proxy.host, proxy.port, timeout=20) as conn:
        conn.send(raw_request("GET", "/v1/echo/idle"))
        assert conn.read_response().status == 200
        proxy.proc.send_signal(signal.SIGTERM)
        # The idle keep-alive connection is closed rather than holding the drain open.
        assert conn.closed_by_peer()
    assert proxy.proc.wait(20) == 0


def test_drain_deadline_cuts_long_requests(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, timeouts={"drain": "500ms"}), tmp_path)
    procs.append(proxy)
    call = Call(proxy, "/v1/slow", {"delayMs": 60000}, timeout=40)
    wait_until(lambda: backend.slow_started(), timeout=15, message="the Slow call to start")
    proxy.proc.send_signal(signal.SIGTERM)
    proxy.proc.wait(20)  # Hang guard: far less than the 60 s call.
    call.join(30)
    assert not call.is_alive()
    if call.response is not None:
        assert call.response.status_code in (503, 504), call.response.text
    wait_until(lambda: backend.cancellations(), timeout=20,
               message="the backend to see the cut call cancelled")


def test_descriptors_from_server_reflection(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address, descriptors=[{"reflection": "backend"}]),
                        tmp_path)
    procs.append(proxy)
    r = proxy.post("/v1/echo", {"fString": "refl", "fInt64": "5", "tAny": {
        "@type": "type.googleapis.com/tipperary.testing.v1.Nested", "name": "a"}})
    assert r.status_code == 200, r.text
    assert r.json()["tAny"]["name"] == "a"
    r = proxy.get("/v1/shelves/1/things/2")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "shelves/1/things/2"
    r = proxy.post("/v1/fail", {"code": 3, "message": "m", "withDetails": True})
    assert r.status_code == 400
    types = [d["@type"] for d in error_body(r)["details"]]
    assert "type.googleapis.com/tipperary.testing.v1.CustomDetail" in types
    r = proxy.post("/v1/unannotated", {"fString": "u"})
    assert r.json() == {"fString": "u"}


def _metric(proxy, name: str, labels: str = "") -> float:
    for line in proxy.admin_get("/metrics").text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return 0.0


def test_a_schema_from_reflection_follows_a_restarted_worker(tmp_path, procs):
    """The worker comes back with another service set: the proxy notices the reconnect,
    fetches the schema again, and serves the new one (new methods routed, removed ones 404);
    an unchanged schema is not swapped; /readyz shows the generation."""
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, upstreams=upstream(backend.address),
                         descriptors=[{"reflection": "backend"}],
                         schema={"refresh_interval": "0s"})  # Only reconnects refresh here.
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    parity = "/v1/parity/ids/a,b"
    assert proxy.get(parity).status_code == 200
    ready = proxy.admin_get("/readyz").json()
    assert ready["schema"]["generation"] == 1
    first_digest = ready["schema"]["digest"]

    backend.stop(signal.SIGKILL)
    smaller = start_backend(backend.address, extra=["--without-parity"], attempts=10)
    procs.append(smaller)
    wait_until(lambda: proxy.admin_get("/readyz").json().get("schema", {}).get("generation") == 2,
               timeout=30, message="the proxy to load the restarted worker's schema")
    assert proxy.get(parity).status_code == 404  # The route went with its method.
    assert proxy.post("/v1/echo", {"fString": "still"}).status_code == 200
    assert proxy.admin_get("/readyz").json()["schema"]["digest"] != first_digest
    log = proxy.proc.json_lines("stderr") + proxy.proc.json_lines("stdout")
    changed = [l for l in log if l.get("msg") == "schema changed"]
    assert changed and "tipperary.testing.v1.ParityService/EchoParity" in changed[-1]["removed"]
    assert _metric(proxy, "tipperary_schema_refreshes_total", '{result="changed"}') == 1

    # The same schema again: fetched, compared, not swapped.
    smaller.stop(signal.SIGKILL)
    same = start_backend(backend.address, extra=["--without-parity"], attempts=10)
    procs.append(same)
    wait_until(lambda: _metric(proxy, "tipperary_schema_refreshes_total",
                               '{result="unchanged"}') >= 1,
               timeout=30, message="an unchanged refresh")
    assert proxy.admin_get("/readyz").json()["schema"]["generation"] == 2

    # And back: the method is served again.
    same.stop(signal.SIGKILL)
    full = start_backend(backend.address, attempts=10)
    procs.append(full)
    wait_until(lambda: proxy.get(parity).status_code == 200, timeout=30,
               message="the parity route to come back")
    assert proxy.admin_get("/readyz").json()["schema"]["generation"] == 3


def test_a_failed_refresh_keeps_the_last_good_schema(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, upstreams=upstream(backend.address),
                         descriptors=[{"reflection": "backend"}],
                         schema={"refresh_interval": "1s", "refresh_on_reconnect": False})
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    backend.stop(signal.SIGKILL)  # Interval refreshes now fail: nobody answers reflection.
    wait_until(lambda: _metric(proxy, "tipperary_schema_refreshes_total",
                               '{result="failed"}') >= 1,
               timeout=30, message="a failed refresh")
    ready = proxy.admin_get("/readyz")
    restarted = start_backend(backend.address, attempts=10)
    procs.append(restarted)
    wait_until(lambda: echo_status(proxy) == 200, timeout=30, message="requests to work again")
    assert proxy.get("/v1/parity/ids/a").status_code == 200  # Routes were never dropped.
    proxy.wait_ready()
    assert proxy.admin_get("/readyz").json()["schema"]["generation"] == 1
    assert ready.status_code != 200 or "last_refresh_error" in ready.json()["schema"]


@pytest.fixture
def short_dir():
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="tipp-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_unix_socket_upstream(tmp_path, procs, short_dir):
    directory = short_dir
    backend = start_backend(f"unix:{directory}/b.sock")
    procs.append(backend)
    assert backend.address == f"unix:{directory}/b.sock"
    proxy = start_proxy(base_config(backend.address), tmp_path)
    procs.append(proxy)
    r = proxy.post("/v1/echo", {"fString": "over unix"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "over unix"}
    r = proxy.post("/v1/metadata", {}, headers={"Grpc-Metadata-Via": "uds"})
    assert r.json()["received"]["via"] == "uds"


def test_max_concurrent_streams_from_server_settings(tmp_path, procs):
    # The backend allows 2 concurrent streams; 6 concurrent slow calls must all still succeed
    # (queued or spread over more connections), none refused.
    backend = start_backend(extra=["--max-concurrent-streams", "2"])
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address), tmp_path)
    procs.append(proxy)
    calls = [Call(proxy, "/v1/slow", {"delayMs": 300}) for _ in range(6)]
    for call in calls:
        r = call.result()
        assert r.status_code == 200, r.text


def test_not_ready_while_the_upstream_is_not_serving(tmp_path, procs):
    """A worker that answers reflection but still loads its model says NOT_SERVING: the
    proxy's /readyz follows its gRPC health, so nothing routes traffic to it too early."""
    backend = start_backend(extra=["--not-serving-ms", "3000"])
    procs.append(backend)
    proxy = start_proxy(base_config(backend.address), tmp_path, wait_ready=False)
    procs.append(proxy)
    wait_until(lambda: "NOT_SERVING" in proxy.admin_get("/readyz").text, timeout=10,
               message="/readyz to name the upstream's NOT_SERVING")
    r = proxy.admin_get("/readyz")
    assert r.status_code == 503
    assert "upstream backend" in r.json()["message"]
    backend.proc.wait_for_json(lambda l: l.get("msg") == "serving", timeout=10)
    proxy.wait_ready(timeout=10)
    assert proxy.post("/v1/echo", {"fString": "ok"}).status_code == 200

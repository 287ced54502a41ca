"""Live reconfiguration of tipperary-proxy: SIGHUP and POST /reload re-read the config file,
check it as --check-config does, and apply it whole or change nothing; requests in flight keep
the configuration they started with, and a reload under load loses no request."""

import re
import signal
import threading
import time

import requests

from conftest import (SteadyLoad, base_config, start_backend, start_proxy, wait_until,
                      write_config)
from test_lifecycle import Call

FAST_RECONNECT = {"reconnect_backoff_initial": "50ms", "reconnect_backoff_max": "300ms",
                  "connect_timeout": "1s"}


def upstream(address: str) -> list[dict]:
    return [{"name": "backend", "endpoints": [address], **FAST_RECONNECT}]


def metric(proxy, name: str, labels: str = "") -> float:
    for line in proxy.admin_get("/metrics").text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def reload(proxy) -> requests.Response:
    return requests.post(proxy.admin_url + "/reload", timeout=15)


def log_lines(proxy, msg: str) -> list[dict]:
    lines = proxy.proc.json_lines("stderr") + proxy.proc.json_lines("stdout")
    return [l for l in lines if l.get("msg") == msg]


def test_post_reload_applies_a_changed_file_and_reports_it(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, upstreams=upstream(backend.address))
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    before = proxy.admin_get("/config")
    first_hash = before.headers["X-Config-Hash"]
    assert before.text.startswith(f"# config_hash: {first_hash}\n")
    assert len(first_hash) == 64
    assert metric(proxy, "tipperary_config_info", f'{{hash="{first_hash}"}}') == 1

    # Nothing changed in the file: nothing to apply.
    r = reload(proxy)
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "unchanged", "config_hash": first_hash, "changed": [],
                        "restart_required": []}

    body = {"fString": "x" * 3000}
    assert proxy.post("/v1/echo", body).status_code == 200
    config["limits"] = {"max_request_body_bytes": 1024}
    config["cors"] = {"allow_origins": ["https://app.example"]}
    write_config(tmp_path, config)
    r = reload(proxy)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["result"] == "applied"
    assert "limits.max_request_body_bytes" in report["changed"]
    assert "cors.allow_origins" in report["changed"]
    assert report["restart_required"] == []
    new_hash = report["config_hash"]
    assert new_hash != first_hash
    # New requests get the new limits, on the same keep-alive connection too.
    assert proxy.post("/v1/echo", body).status_code == 413
    assert proxy.post("/v1/echo", {"fString": "short"}).status_code == 200
    preflight = proxy.request("OPTIONS", "/v1/echo",
                              headers={"Origin": "https://app.example",
                                       "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("Access-Control-Allow-Origin") == "https://app.example"

    assert proxy.admin_get("/config").headers["X-Config-Hash"] == new_hash
    assert re.search(r"\bmax_request_body_bytes: (1024|1KiB)\n", proxy.admin_get("/config").text)
    assert metric(proxy, "tipperary_config_info", f'{{hash="{new_hash}"}}') == 1
    assert f'hash="{first_hash}"' not in proxy.admin_get("/metrics").text
    assert metric(proxy, "tipperary_config_reload_total", '{result="applied"}') == 1
    assert metric(proxy, "tipperary_config_reload_total", '{result="unchanged"}') == 1
    assert metric(proxy, "tipperary_config_last_reload_success_timestamp_seconds") > 1.7e9
    logged = log_lines(proxy, "config reloaded")
    assert logged[-1]["result"] == "applied" and logged[-1]["trigger"] == "POST /reload"


def test_sighup_reloads_and_a_bad_file_changes_nothing(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, upstreams=upstream(backend.address))
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    first_hash = proxy.admin_get("/config").headers["X-Config-Hash"]

    # A value of the wrong type: rejected with its place in the file; nothing changes.
    text = (tmp_path / "proxy.yaml").read_text()
    (tmp_path / "proxy.yaml").write_text(text + "limits:\n  max_request_body_bytes: lots\n")
    r = reload(proxy)
    assert r.status_code == 422, r.text
    report = r.json()
    assert report["result"] == "rejected"
    assert report["config_hash"] == first_hash
    assert "proxy.yaml:" in report["error"] and "max_request_body_bytes" in report["error"]
    # file:line:col
    assert report["error"].split(":")[1].isdigit() and report["error"].split(":")[2].isdigit()
    assert proxy.post("/v1/echo", {"fString": "still served"}).status_code == 200

    # A descriptor file that is not one: rejected as --check-config would, naming the entry.
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xfenot a descriptor set")
    config["descriptors"] = [str(garbage)]
    write_config(tmp_path, config)
    r = reload(proxy)
    assert r.status_code == 422, r.text
    assert "descriptors[0]" in r.json()["error"]
    assert metric(proxy, "tipperary_config_reload_total", '{result="rejected"}') == 2
    assert proxy.admin_get("/config").headers["X-Config-Hash"] == first_hash

    # SIGHUP: the same reload, logged.
    config = base_config(backend.address, upstreams=upstream(backend.address),
                         limits={"max_request_body_bytes": 64})
    write_config(tmp_path, config)
    proxy.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: any(l.get("trigger") == "SIGHUP" for l in log_lines(proxy, "config reloaded")),
               timeout=15, message="the SIGHUP reload to be logged")
    assert proxy.proc.alive()
    assert proxy.post("/v1/echo", {"fString": "y" * 200}).status_code == 413
    assert proxy.admin_get("/config").headers["X-Config-Hash"] != first_hash


def test_keys_that_need_a_restart_are_reported_not_applied(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, upstreams=upstream(backend.address))
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    first_hash = proxy.admin_get("/config").headers["X-Config-Hash"]
    config["threads"] = 3
    config["listeners"] = [{"address": "127.0.0.1:1"}]
    config["timeouts"] = {**config["timeouts"], "retry_after": "7s"}
    write_config(tmp_path, config)
    r = reload(proxy)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["result"] == "applied"
    assert sorted(report["restart_required"]) == ["listeners", "threads"]
    assert report["changed"] == ["timeouts.retry_after"]
    # Still served where it was bound; /config shows what is in effect.
    assert proxy.post("/v1/echo", {"fString": "here"}).status_code == 200
    shown = proxy.admin_get("/config").text
    assert "threads: 2" in shown and "127.0.0.1:1\n" not in shown
    assert report["config_hash"] != first_hash


def test_a_reload_can_add_a_route(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    config = base_config(backend.address, upstreams=upstream(backend.address))
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    assert proxy.post("/v2/unannotated", {"fString": "a"}).status_code == 404
    config["routes"] = config["routes"] + [{
        "method": "POST", "path": "/v2/unannotated",
        "grpc_method": "tipperary.testing.v1.TestService/Unannotated", "body": "*"}]
    write_config(tmp_path, config)
    r = reload(proxy)
    assert r.json()["result"] == "applied" and "routes" in r.json()["changed"], r.text
    assert proxy.post("/v2/unannotated", {"fString": "a"}).status_code == 200
    assert any(route.get("path") == "/v2/unannotated"
               for route in proxy.admin_get("/routes").json()) or \
        "/v2/unannotated" in proxy.admin_get("/routes").text


def test_reload_under_load_loses_nothing(tmp_path, procs):
    """Under steady load: the upstream moves to another backend and back, limits change, a
    slow call in flight keeps its (retired) connection; not one request fails."""
    first = start_backend()
    second = start_backend()
    procs.extend([first, second])
    config = base_config(first.address, upstreams=upstream(first.address))
    proxy = start_proxy(config, tmp_path)
    procs.append(proxy)
    load = SteadyLoad(proxy)
    try:
        wait_until(lambda: load.ok > 50, timeout=20, message="the load to run")
        slow = Call(proxy, "/v1/slow", {"delayMs": 1500})
        wait_until(lambda: first.slow_started(), timeout=15, message="the Slow call to start")

        # To the second backend: new requests go there, the slow call finishes on the first.
        config["upstreams"] = upstream(second.address)
        write_config(tmp_path, config)
        assert reload(proxy).json()["result"] == "applied"
        r = slow.result()
        assert r.status_code == 200, r.text
        load.wait_for(50)
        # Nothing goes to the first backend any more: killing it costs nothing.
        first.stop(signal.SIGKILL)
        load.wait_for(50)

        # Limits and timeouts by SIGHUP, twice, while the load runs.
        for size in ("2MiB", "3MiB"):
            config["limits"] = {"max_request_body_bytes": size}
            write_config(tmp_path, config)
            proxy.proc.send_signal(signal.SIGHUP)
            load.wait_for(50)
        wait_until(lambda: len(log_lines(proxy, "config reloaded")) >= 3, timeout=15,
                   message="both SIGHUP reloads")
    finally:
        load.finish()
    print(f"reload under load: {load.ok} requests, {len(load.failures)} failed")
    assert load.failures == [], load.failures[:5]
    assert load.ok > 200
    applied = [l for l in log_lines(proxy, "config reloaded") if l.get("result") == "applied"]
    assert len(applied) == 3, log_lines(proxy, "config reloaded")

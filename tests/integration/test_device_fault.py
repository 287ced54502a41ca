"""A device fault in a real worker: an encoder that reports itself unusable (what the CUDA encoder
does after a sticky CUDA error, which loses the process's GPU context) makes the worker exit with
status 70 for a restart (`on_device_fault: exit`, the default), or stay up not ready
(`on_device_fault: unready`). There is no GPU here to break, so the fault is injected by the
worker's test double (TIPPERARY_TEST_DEVICE_FAULT_AFTER=N: each encoder answers N calls, the
warm-up being the first, then fails as a faulted CUDA encoder does); everything else is real."""

from __future__ import annotations

import pytest

from conftest import parse_metrics
from test_worker_e2e import MODEL, model_dir, start_stack

FAULT_MSG = "encoder unusable: the worker is no longer ready"


def models(on_device_fault: str | None = None) -> list[dict]:
    # warmup minimal: one warm-up call per encoder, which the fault counts below rely on.
    m = {"name": MODEL, "path": model_dir(), "backend": "cpu", "threads": 1, "warmup": "minimal"}
    if on_device_fault is not None:
        m["on_device_fault"] = on_device_fault
    return [m]


def ready_gauge(worker) -> float:
    return next(v for n, _, v in parse_metrics(worker.admin_get("/metrics").text)
                if n == "tipperary_worker_ready")


def test_device_fault_exits_for_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("TIPPERARY_TEST_DEVICE_FAULT_AFTER", "1")
    s = start_stack(tmp_path, models=models())
    try:
        assert s.worker.admin_get("/readyz").status_code == 200
        r = s.proxy.post("/v1/embed", {"inputs": ["the first batch meets the fault"]})
        assert r.status_code >= 500, r.text
        assert s.worker.proc.wait(timeout=20) == 70, s.worker.proc.tail()
        [line] = s.worker.proc.wait_for_json(lambda l: l.get("msg") == FAULT_MSG)
        assert line["model"] == MODEL and line["on_device_fault"] == "exit"
        assert "injected device fault" in line["error"]
    finally:
        s.stop()


def test_device_fault_unready_keeps_the_worker_up_not_ready(tmp_path, monkeypatch):
    monkeypatch.setenv("TIPPERARY_TEST_DEVICE_FAULT_AFTER", "2")  # warm-up, one good batch
    s = start_stack(tmp_path, models=models("unready"))
    try:
        r = s.proxy.post("/v1/embed", {"inputs": ["still fine"]})
        assert r.status_code == 200, r.text
        assert s.worker.admin_get("/readyz").status_code == 200
        assert ready_gauge(s.worker) == 1
        for _ in range(2):  # every batch fails from the fault on; the worker does not exit
            r = s.proxy.post("/v1/embed", {"inputs": ["after the fault"]})
            assert r.status_code >= 500, r.text
        s.worker.proc.wait_for_json(lambda l: l.get("msg") == FAULT_MSG)
        assert s.worker.proc.alive()
        assert s.worker.admin_get("/readyz").status_code == 503
        assert s.worker.admin_get("/healthz").status_code == 200  # alive, for inspection
        assert ready_gauge(s.worker) == 0
    finally:
        s.stop()


def test_bad_fault_count_is_a_start_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TIPPERARY_TEST_DEVICE_FAULT_AFTER", "soon")
    with pytest.raises(BaseException):
        start_stack(tmp_path, models=models())

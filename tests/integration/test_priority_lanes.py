"""Priority lanes end to end: requests through the real proxy to the real worker (CPU backend),
interactive by default, bulk when they say so (RFC 9218's `Priority: u=4`..`u=7` header on any
route, or the gRPC field `priority` in the native API's JSON). The worker's lane counters show
which lane each batch came from; an interactive request answers while a bulk load keeps the
worker busy. Latency under load is measured by bench/run-lanes-bench, not here."""

from __future__ import annotations

import os
import pathlib
import threading

import requests

from conftest import HTTP_TIMEOUT, parse_metrics
from test_worker_e2e import MODEL, model_dir, start_stack

LANES = {"interactive_instances": 1, "priority_aging": "30s"}
def TWO_INSTANCES() -> list[dict]:
    return [{"name": MODEL, "path": model_dir(), "backend": "cpu", "threads": 1, "instances": 2,
             "warmup": "minimal"}]


LONG_TEXT = " ".join(f"word{i}" for i in range(120))


def lane_batches(worker) -> dict[str, float]:
    text = worker.admin_get("/metrics").text
    return {labels["lane"]: value for name, labels, value in parse_metrics(text)
            if name == "tipperary_worker_lane_batches_total" and labels.get("model") == MODEL}


def test_lanes_follow_the_priority_header_and_the_field(tmp_path):
    s = start_stack(tmp_path, models=TWO_INSTANCES(), batching=LANES)
    try:
        assert lane_batches(s.worker) == {"interactive": 0, "bulk": 0}
        r = s.proxy.post("/v1/embed", {"inputs": ["interactive by default"]})
        assert r.status_code == 200, r.text
        assert lane_batches(s.worker) == {"interactive": 1, "bulk": 0}
        # RFC 9218 urgency 7 on the native route, then on OpenAI's.
        r = s.proxy.post("/v1/embed", {"inputs": ["bulk by header"]}, headers={"Priority": "u=7"})
        assert r.status_code == 200, r.text
        r = s.proxy.post("/v1/embeddings", {"input": "bulk too", "model": MODEL},
                         headers={"Priority": "u=5, i"})
        assert r.status_code == 200, r.text
        assert lane_batches(s.worker) == {"interactive": 1, "bulk": 2}
        # The request's own field wins over the header.
        r = s.proxy.post("/v1/embed", {"inputs": ["bulk by field"], "priority": "PRIORITY_BULK"})
        assert r.status_code == 200, r.text
        r = s.proxy.post("/v1/embed", {"inputs": ["x"], "priority": "PRIORITY_INTERACTIVE"},
                         headers={"Priority": "u=7"})
        assert r.status_code == 200, r.text
        # An invalid field is ignored (RFC 9218 section 4): interactive.
        r = s.proxy.post("/v1/embed", {"inputs": ["y"]}, headers={"Priority": "u=9"})
        assert r.status_code == 200, r.text
        assert lane_batches(s.worker) == {"interactive": 3, "bulk": 3}
    finally:
        s.stop()


def test_interactive_requests_answer_beside_a_saturating_bulk_load(tmp_path):
    s = start_stack(tmp_path, models=TWO_INSTANCES(), batching=LANES)
    stop = threading.Event()
    bulk_done = [0]
    errors: list[str] = []

    def bulk() -> None:
        session = requests.Session()
        while not stop.is_set():
            r = session.post(f"{s.proxy.url}/v1/embed", timeout=HTTP_TIMEOUT,
                             json={"inputs": [f"{LONG_TEXT} {bulk_done[0]} {k}" for k in range(32)]},
                             headers={"Priority": "u=7"})
            if r.status_code != 200:
                errors.append(r.text[:200])
            bulk_done[0] += 1

    threads = [threading.Thread(target=bulk, daemon=True) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        # Interactive requests keep answering while bulk batches run, each in a batch of its own
        # lane (the kept instance), never behind or inside a bulk batch.
        before = lane_batches(s.worker)
        for i in range(20):
            r = s.proxy.post("/v1/embed", {"inputs": [f"interactive {i}"]})
            assert r.status_code == 200, r.text
        after = lane_batches(s.worker)
        assert after["interactive"] - before["interactive"] == 20
        assert after["bulk"] > before["bulk"] or bulk_done[0] == 0
    finally:
        stop.set()
        for t in threads:
            t.join(HTTP_TIMEOUT)
        s.stop()
    assert not errors, errors[:3]
    assert bulk_done[0] > 0


def idle_policy_threads(pid: int) -> dict[int, int]:
    """The worker's threads at SCHED_IDLE: {tid: nanoseconds on a CPU so far}."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            schedstat = (task / "schedstat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # fields 3 onwards
        if int(fields[41 - 3]) == os.SCHED_IDLE:
            out[int(task.name)] = int(schedstat.split()[0])
    return out


def test_bulk_batches_compute_at_idle_os_priority(tmp_path):
    # Two instances of two threads; one kept for interactive batches. The other one's team (both
    # threads its own) runs at SCHED_IDLE, and it alone computes the bulk batches.
    models = TWO_INSTANCES()
    models[0]["threads"] = 2
    s = start_stack(tmp_path / "idle", models=models, batching=LANES)
    try:
        pid = s.worker.proc.pid
        idle = idle_policy_threads(pid)
        assert len(idle) == 2, idle
        for i in range(5):
            r = s.proxy.post("/v1/embed", {"inputs": [f"interactive {i}", LONG_TEXT]})
            assert r.status_code == 200, r.text
        # The kept instance was free for every one of them: the idle team never ran.
        assert idle_policy_threads(pid) == idle
        r = s.proxy.post("/v1/embed", {"inputs": [f"{k} {LONG_TEXT}" for k in range(8)]},
                         headers={"Priority": "u=7"})
        assert r.status_code == 200, r.text
        after = idle_policy_threads(pid)
        assert after.keys() == idle.keys()
        assert all(after[t] > idle[t] for t in idle), (idle, after)
    finally:
        s.stop()
    # bulk_cpu_priority: normal, or no kept instance: nothing at idle priority.
    for name, batching in (("normal", {**LANES, "bulk_cpu_priority": "normal"}),
                           ("none", {"interactive_instances": 0})):
        s = start_stack(tmp_path / name, models=TWO_INSTANCES(), batching=batching)
        try:
            assert idle_policy_threads(s.worker.proc.pid) == {}, name
        finally:
            s.stop()

"""The backlog signal end to end (docs/autoscaling.md#backlog-seconds): the real worker (real
model, CPU) under load reports queued tokens, the tokens/s it sustains and their quotient,
backlog_seconds, per model and in total, in its /autoscaling and its metrics; the real proxy
relays them in its /autoscaling, its metrics and its KEDA external scaler (metric:
backlog_seconds)."""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import threading
import time

import pytest
import requests

from conftest import HTTP_TIMEOUT, start_proxy
from test_autoscaling import Scaler, scaler_client
from test_worker_e2e import MODEL, proxy_config, start_worker

# Long texts (about 200 tokens each) in requests of 16: with batches of 4 the queue builds up.
TEXT = " ".join(f"word{i} of a longer sentence" for i in range(40))
CLIENTS = 6


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("backlog")
    worker = start_worker(directory, batching={"max_batch_size": 4})
    proxy = None
    try:
        config = proxy_config(worker)
        config["autoscaling"]["sample_interval"] = "1s"
        proxy = start_proxy(config, directory)
        yield {"worker": worker, "proxy": proxy, "pb2": scaler_client(directory)}
    finally:
        if proxy:
            proxy.stop()
        worker.stop()


class Load:
    """CLIENTS threads sending 16 long texts each, back to back, until stopped."""

    def __init__(self, url: str):
        self.url, self.stop, self.codes = url, threading.Event(), []
        self.serial = itertools.count()
        self.pool = concurrent.futures.ThreadPoolExecutor(CLIENTS)
        self.futures = [self.pool.submit(self.run) for _ in range(CLIENTS)]

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                # Distinct texts: identical ones would join one computation (cache.dedup).
                n = next(self.serial)
                inputs = [f"{TEXT} {n}-{i}" for i in range(16)]
                r = session.post(self.url + "/v1/embed", json={"inputs": inputs},
                                 timeout=HTTP_TIMEOUT)
                self.codes.append(r.status_code)

    def finish(self) -> None:
        self.stop.set()
        for f in self.futures:
            f.result()
        self.pool.shutdown()


def wait_for(what: str, read, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value:
            return value
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def test_worker_reports_its_backlog_under_load(stack):
    worker = stack["worker"]
    idle = worker.admin_get("/autoscaling").json()
    # Before any request: the warm-up's rate, nothing queued, no backlog.
    assert idle["models"][MODEL]["tokens_per_second"] > 0
    assert idle["models"][MODEL]["backlog_seconds"] == 0
    assert idle["backlog_seconds"] == 0 and idle["queued_tokens"] == 0
    load = Load(stack["proxy"].url)
    try:
        def busy():
            body = worker.admin_get("/autoscaling").json()
            m = body["models"][MODEL]
            return body if m["queued_tokens"] > 0 and m["batches_total"] > 0 else None
        body = wait_for("tokens queued behind a running batch", busy)
        m = body["models"][MODEL]
        assert m["tokens_per_second"] > 0
        assert m["backlog_seconds"] == pytest.approx(m["queued_tokens"] / m["tokens_per_second"])
        # One model: the total is its backlog.
        assert body["backlog_seconds"] == pytest.approx(m["backlog_seconds"])
        assert body["queued_tokens"] == m["queued_tokens"]
        # Queued tokens are real tokens of whole texts: at least [CLS] and [SEP] each.
        assert m["queued_tokens"] >= 2 * m["queue_depth"] > 0
        metrics = worker.admin_get("/metrics").text
        for name in ("tipperary_worker_backlog_seconds", "tipperary_worker_tokens_per_second",
                     "tipperary_worker_queued_tokens"):
            assert f'{name}{{model="{MODEL}"}}' in metrics, name
    finally:
        load.finish()
    assert set(load.codes) == {200}, set(load.codes)
    # Drained: no backlog, and the rate is now measured (not the warm-up's).
    after = wait_for("the queue drained", lambda: (
        b := worker.admin_get("/autoscaling").json())["queued_tokens"] == 0 and b)
    assert after["backlog_seconds"] == 0
    assert after["models"][MODEL]["tokens_per_second"] != idle["models"][MODEL]["tokens_per_second"]


def test_proxy_relays_the_backlog_to_json_metrics_and_keda(stack):
    proxy = stack["proxy"]
    scaler = Scaler(proxy.external_scaler, stack["pb2"])
    load = Load(proxy.url)
    try:
        def relayed():
            body = proxy.admin_get("/autoscaling").json()
            b = body["worker"]["backlog_seconds"]
            return body if b is not None and b > 0 else None
        body = wait_for("a backlog in the proxy's /autoscaling", relayed)
        model = body["worker"]["models"][MODEL]
        # The proxy prints six significant digits.
        assert model["backlog_seconds"] == pytest.approx(
            model["queued_tokens"] / model["tokens_per_second"], rel=1e-4)
        assert body["all"]["backlog_seconds"] == body["worker"]["backlog_seconds"]
        # KEDA reads the same snapshot: compare within one sample interval (the JSON before and
        # after agree).
        for _ in range(20):
            before = proxy.admin_get("/autoscaling").json()["worker"]
            total = scaler.value(metric="backlog_seconds", target="2")
            one = scaler.value(metric="backlog_seconds", model=MODEL, target="2")
            after = proxy.admin_get("/autoscaling").json()["worker"]
            if before == after:
                assert total == pytest.approx(before["backlog_seconds"], rel=1e-4)
                assert one == pytest.approx(before["models"][MODEL]["backlog_seconds"], rel=1e-4)
                break
        else:
            pytest.fail("the proxy's snapshot changed under every comparison")
        assert "tipperary_autoscaling_worker_backlog_seconds " in proxy.admin_get("/metrics").text
    finally:
        load.finish()
    assert set(load.codes) == {200}, set(load.codes)
    # A model the worker does not serve: the scaler says the signal is unavailable (not 0).
    import grpc
    ref = scaler.ref(metric="backlog_seconds", model="no-such-model", target="2")
    with pytest.raises(grpc.RpcError) as e:
        scaler.get_metrics(scaler.pb2.GetMetricsRequest(scaledObjectRef=ref), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_full_queue_429_carries_retry_after_from_the_backlog(tmp_path):
    # A queue of 24 texts, batches of 2 and 6 clients of 16 texts: most requests find it full.
    worker = start_worker(tmp_path, batching={"max_batch_size": 2, "max_queue": 24})
    proxy = None
    try:
        config = proxy_config(worker)
        # The proxy's own fallback, far from anything the worker's estimate gives here: a
        # Retry-After below it came from the worker.
        config["timeouts"]["retry_after"] = "60s"
        proxy = start_proxy(config, tmp_path)
        refused: list[requests.Response] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            with requests.Session() as session:
                for n in range(6):
                    r = session.post(proxy.url + "/v1/embed",
                                     json={"inputs": [f"{TEXT} {k}-{n}-{i}" for i in range(16)]},
                                     timeout=HTTP_TIMEOUT)
                    assert r.status_code in (200, 429), r.text
                    if r.status_code == 429:
                        with lock:
                            refused.append(r)

        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            for f in [pool.submit(client, k) for k in range(CLIENTS)]:
                f.result()
        assert refused, "the queue never filled"
        for r in refused:
            retry_after = int(r.headers["Retry-After"])
            assert 1 <= retry_after < 60, r.headers
            # The worker's RetryInfo rides in the error's details, in seconds ("0.412s").
            details = r.json().get("details", [])
            delays = [d["retryDelay"] for d in details if d.get("@type", "").endswith("RetryInfo")]
            assert len(delays) == 1, r.text
            seconds = float(delays[0].rstrip("s"))
            assert seconds >= 0.001
            assert retry_after == max(1, math.ceil(seconds)), (retry_after, seconds)
        # A request larger than the whole queue: refused with the queue empty, Retry-After 1.
        r = proxy.post("/v1/embed", {"inputs": [f"alone {i}" for i in range(25)]})
        assert r.status_code == 429 and r.headers["Retry-After"] == "1", (r.status_code, r.headers)
    finally:
        if proxy:
            proxy.stop()
        worker.stop()

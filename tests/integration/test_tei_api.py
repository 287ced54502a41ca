"""Hugging Face text-embeddings-inference's HTTP API (docs/tei.md) through the real proxy from the
real worker's gRPC API (tei.proto): TEI's own Python client usage (huggingface_hub's
InferenceClient.feature_extraction pointed at the proxy, as TEI's docs show it), then raw HTTP
for every endpoint and every error shape. Vectors are checked against the committed
sentence-transformers references (tests/fixtures), tokens and decodes against the committed
Hugging Face tokenizers references (tei_tokens.jsonl, tei_decode.jsonl)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import struct

import pytest
import requests

from conftest import HTTP_TIMEOUT, REPO_ROOT, start_proxy
from test_openai_clients import REFERENCE, TEXTS, assert_matches_reference, cosine
from test_worker_e2e import MODEL, Stack, model_dir, proxy_config, start_stack, start_worker

FIXTURES = REPO_ROOT / "tests" / "fixtures"
HF_ID = "sentence-transformers/all-MiniLM-L6-v2"
PROMPTED = "prompted"  # The default model's files with sentence-transformers prompts added.
PROMPTS = {"query": "query: ", "passage": "passage: "}
TEI_ERROR_TYPES = {"Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"}


def prompted_model_dir(directory: pathlib.Path) -> pathlib.Path:
    """all-MiniLM-L6-v2 ships no prompts: the same files, with a config that has some."""
    out = directory / "prompted-model"
    out.mkdir()
    for entry in pathlib.Path(model_dir()).iterdir():
        if entry.name != "config_sentence_transformers.json":
            (out / entry.name).symlink_to(entry)
    (out / "config_sentence_transformers.json").write_text(json.dumps({"prompts": PROMPTS}))
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tei")
    models = [{"name": MODEL, "path": model_dir(), "backend": "cpu", "threads": 2,
               "warmup": "minimal"},
              {"name": PROMPTED, "path": str(prompted_model_dir(directory)), "backend": "cpu",
               "threads": 1, "huggingface_aliases": False, "warmup": "minimal"}]
    s = start_stack(directory, models=models)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def url(stack) -> str:
    return stack.proxy.url


def post(url: str, path: str, body) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, timeout=HTTP_TIMEOUT)


def tei_error(response: requests.Response, status: int, error_type: str) -> str:
    """Asserts TEI's error shape, status and type; returns the message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "error_type"}, body
    assert body["error_type"] == error_type, body
    assert body["error_type"] in TEI_ERROR_TYPES
    assert isinstance(body["error"], str) and body["error"], body
    return body["error"]


def norm(v) -> float:
    return math.sqrt(sum(float(x) * float(x) for x in v))


def significant_digits(x: float) -> int:
    return len(repr(abs(x)).split("e")[0].replace(".", "").strip("0"))


def as_float32(values) -> list[float]:
    return [struct.unpack("<f", struct.pack("<f", x))[0] for x in values]


# --- huggingface_hub's InferenceClient, as TEI's docs use it ----------------------------------


@pytest.fixture(scope="module")
def hf_client_module():
    pytest.importorskip("numpy")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return pytest.importorskip("huggingface_hub")


def test_inference_client_feature_extraction(url, hf_client_module):
    # TEI's quick tour: InferenceClient().feature_extraction(text, model="http://host/embed").
    client = hf_client_module.InferenceClient(timeout=HTTP_TIMEOUT)
    one = client.feature_extraction(TEXTS[0], model=f"{url}/embed")
    assert one.shape == (1, 384) and str(one.dtype) == "float32"
    assert_matches_reference([one[0].tolist()], REFERENCE[:1])
    batch = client.feature_extraction(TEXTS, model=f"{url}/embed")
    assert batch.shape == (len(TEXTS), 384)
    assert_matches_reference([row.tolist() for row in batch])
    # base_url: the client posts to the root, which TEI (and the proxy) serve as /embed.
    rooted = hf_client_module.InferenceClient(base_url=url, timeout=HTTP_TIMEOUT)
    again = rooted.feature_extraction(TEXTS[:3])
    assert again.tolist() == batch[:3].tolist()


def test_inference_client_parameters(url, hf_client_module):
    client = hf_client_module.InferenceClient(model=f"{url}/embed", timeout=HTTP_TIMEOUT)
    normalized = client.feature_extraction(TEXTS[0])[0]
    raw = client.feature_extraction(TEXTS[0], normalize=False)[0]
    assert abs(norm(normalized) - 1) < 1e-4
    assert abs(norm(raw) - 1) > 1e-3  # all-MiniLM's pooled vectors are not unit length
    assert cosine(raw.tolist(), normalized.tolist()) > 0.99999
    long_text = " ".join(f"word{i}" for i in range(400))
    right = client.feature_extraction(long_text, truncate=True, truncation_direction="right")[0]
    left = client.feature_extraction(long_text, truncate=True, truncation_direction="left")[0]
    assert cosine(right.tolist(), left.tolist()) < 0.999
    # huggingface_hub sends no model: prompt_name on the default model, which has no prompts.
    with pytest.raises(hf_client_module.errors.HfHubHTTPError) as info:
        client.feature_extraction("x", prompt_name="query")
    assert info.value.response.status_code == 422
    assert "no prompts were found" in (info.value.server_message or "")
    with pytest.raises(hf_client_module.errors.HfHubHTTPError) as info:
        client.feature_extraction(long_text, truncate=False)
    assert info.value.response.status_code == 422
    assert "must have less than 256 tokens" in (info.value.server_message or "")


# --- POST /embed ------------------------------------------------------------------------------


def test_embed_shapes(url):
    r = post(url, "/embed", {"inputs": TEXTS[0]})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    single = r.json()
    assert isinstance(single, list) and len(single) == 1 and len(single[0]) == 384
    assert_matches_reference(single, REFERENCE[:1])
    batch = post(url, "/embed", {"inputs": TEXTS[:4]}).json()
    assert_matches_reference(batch, REFERENCE[:4])
    # Floats as TEI prints an f32: the shortest decimal that reads back as the same float32
    # (at most 9 significant digits), not the float32's exact value as a double (17).
    assert all(significant_digits(x) <= 9 for x in single[0]), single[0]


def test_embed_matches_v1_embeddings(url):
    tei = post(url, "/embed", {"inputs": TEXTS[:3]}).json()
    openai = post(url, "/v1/embeddings", {"input": TEXTS[:3], "model": MODEL}).json()
    for a, b in zip(tei, [d["embedding"] for d in openai["data"]]):
        assert as_float32(a) == as_float32(b)  # The same float32s, printed shorter.
        assert abs(cosine(a, b) - 1) < 1e-9


TIMING_MS = ["x-compute-time", "x-total-time", "x-tokenization-time", "x-queue-time",
             "x-inference-time"]


def timing(response: requests.Response, tokens: int, characters: int | None) -> dict[str, str]:
    """TEI's timing headers under TEI's own (lower-case) names, not grpc-gateway's
    Grpc-Metadata-X-...: whole milliseconds, the parts within the total, the counts as given."""
    assert response.status_code == 200, response.text
    names = list(response.headers.keys())  # As sent, not case-folded.
    for name in TIMING_MS + ["x-compute-type", "x-compute-tokens"]:
        assert name in names, names
        assert f"Grpc-Metadata-{name.title()}" not in response.headers, names
    h = response.headers
    assert h["x-compute-type"] == "cpu"
    ms = {name: h[name] for name in TIMING_MS}
    assert all(v.isdigit() for v in ms.values()), ms
    total = int(ms["x-total-time"])
    assert int(ms["x-compute-time"]) == total  # TEI's two names for one figure.
    for name in ("x-tokenization-time", "x-queue-time", "x-inference-time"):
        assert int(ms[name]) <= total, ms
    assert int(h["x-compute-tokens"]) == tokens
    if characters is None:
        assert "x-compute-characters" not in h
    else:
        assert int(h["x-compute-characters"]) == characters
    return dict(h)


def test_timing_headers(url):
    # TEI's /embed: the tokens the model saw ([CLS]/[SEP] included: /tokenize's count) and the
    # texts' characters (code points: "ü" is one).
    texts = ["timing headers for TEI", "Grüße aus Tipperary"]
    tokens = sum(len(t) for t in post(url, "/tokenize", {"inputs": texts}).json())
    r = post(url, "/embed", {"inputs": texts})
    timing(r, tokens, sum(len(t) for t in texts))
    # Token ids: no characters to count.
    ids = [t["id"] for t in post(url, "/tokenize", {"inputs": "by its ids"}).json()[0]]
    timing(post(url, "/embed", {"inputs": ids}), len(ids), None)
    # The native API: the response's own total_tokens; OpenAI's: usage without [CLS]/[SEP].
    native = post(url, "/v1/embed", {"inputs": ["timing headers, natively"]})
    timing(native, native.json()["metadata"]["totalTokens"], len("timing headers, natively"))
    openai = post(url, "/v1/embeddings", {"input": ["timing headers, OpenAI's"], "model": MODEL})
    timing(openai, openai.json()["usage"]["prompt_tokens"] + 2, len("timing headers, OpenAI's"))
    # TEI sends none with an error.
    refused = post(url, "/embed", {"inputs": []})
    assert refused.status_code == 400
    assert "x-total-time" not in refused.headers and "x-queue-time" not in refused.headers


def test_embed_token_ids_are_the_whole_input(url):
    tokens = [json.loads(line) for line in (FIXTURES / "tokens.jsonl").open()]
    texts = {r["id"]: r["text"] for r in map(json.loads, (FIXTURES / "corpus.jsonl").open())}
    row = next(t for t in tokens if len(t["ids"]) > 8 and not t["truncated"])
    text_vector = post(url, "/embed", {"inputs": texts[row["id"]]}).json()[0]
    # With the text's [CLS] ... [SEP]: the text's vector; a mixed batch; without them, another.
    assert post(url, "/embed", {"inputs": row["ids"]}).json()[0] == text_vector
    mixed = post(url, "/embed", {"inputs": [texts[row["id"]], row["ids"]]}).json()
    assert mixed[0] == mixed[1] == text_vector
    bare = post(url, "/embed", {"inputs": row["ids"][1:-1]}).json()[0]
    assert cosine(bare, text_vector) < 0.9999


def test_embed_truncation_direction_and_dimensions(url):
    refs = [json.loads(line) for line in (FIXTURES / "tei_tokens.jsonl").open()]
    texts = {r["id"]: r["text"] for r in map(json.loads, (FIXTURES / "corpus.jsonl").open())}
    long = next(r for r in refs if "left_ids" in r)
    text = texts[long["id"]]
    right = post(url, "/embed", {"inputs": text}).json()[0]  # truncate unset: auto_truncate
    for direction in ("Left", "left"):
        left = post(url, "/embed", {"inputs": text, "truncation_direction": direction}).json()[0]
        # Hugging Face tokenizers' left cut, fed as ids, is the same vector.
        assert post(url, "/embed", {"inputs": long["left_ids"]}).json()[0] == left
        assert cosine(left, right) < 0.9999
    count = len(long["tokens"]) // 3
    message = tei_error(post(url, "/embed", {"inputs": text, "truncate": False}), 422,
                        "Validation")
    assert message == f"`inputs` must have less than 256 tokens. Given: {count}"
    cut = post(url, "/embed", {"inputs": "hello", "dimensions": 32}).json()[0]
    assert len(cut) == 32 and abs(norm(cut) - 1) < 1e-5


def test_embed_prompt_name(url):
    text = "What is deep learning?"
    for name, prompt in PROMPTS.items():
        prompted = post(url, "/embed", {"inputs": text, "prompt_name": name,
                                        "model": PROMPTED}).json()[0]
        plain = post(url, "/embed", {"inputs": prompt + text}).json()[0]
        assert prompted == plain
    message = tei_error(post(url, "/embed", {"inputs": text, "prompt_name": "document",
                                             "model": PROMPTED}), 422, "Validation")
    assert 'Available prompts: ["passage", "query"]' in message
    message = tei_error(post(url, "/embed", {"inputs": text, "prompt_name": "query"}), 422,
                        "Validation")
    assert "no prompts were found in the Sentence Transformers configuration" in message


def test_embed_errors(url):
    assert tei_error(post(url, "/embed", {"inputs": ""}), 400, "Empty") == \
        "`inputs` cannot be empty"
    assert tei_error(post(url, "/embed", {"inputs": []}), 400, "Empty") == \
        "`inputs` cannot be empty"
    tei_error(post(url, "/embed", {"inputs": ["a", ""]}), 400, "Empty")
    tei_error(post(url, "/embed", {"inputs": 5}), 422, "Validation")
    tei_error(post(url, "/embed", {"inputs": ["a", 5]}), 422, "Validation")
    tei_error(post(url, "/embed", {"inputs": [1, -2]}), 422, "Validation")
    tei_error(post(url, "/embed", {"inputs": [999999]}), 422, "Validation")
    tei_error(post(url, "/embed", {"inputs": "a", "dimensions": 0}), 422, "Validation")
    tei_error(post(url, "/embed", {"inputs": "a", "truncation_direction": "Up"}), 422,
              "Validation")
    # JSON the schema cannot read: TEI's 422 too, in TEI's shape.
    tei_error(post(url, "/embed", {"inputs": "a", "normalize": [1]}), 422, "Validation")
    r = requests.post(f"{url}/embed", data="{not json", timeout=HTTP_TIMEOUT,
                      headers={"Content-Type": "application/json"})
    tei_error(r, 422, "Validation")
    tei_error(post(url, "/embed", {"inputs": "a", "model": "gpt-4"}), 404, "Validation")
    # Unknown fields are ignored, as TEI's serde does (huggingface_hub may send some).
    r = post(url, "/embed", {"inputs": "a", "encoding_format": "float", "from_the_future": {}})
    assert r.status_code == 200, r.text
    # GET /embed matches no route: the proxy's own 405.
    assert requests.get(f"{url}/embed", timeout=HTTP_TIMEOUT).status_code == 405


# --- POST /tokenize ---------------------------------------------------------------------------


def test_tokenize_matches_hugging_face(url):
    refs = [json.loads(line) for line in (FIXTURES / "tei_tokens.jsonl").open()]
    texts = {r["id"]: r["text"] for r in map(json.loads, (FIXTURES / "corpus.jsonl").open())}
    chosen = [r for r in refs if texts[r["id"]].strip() and len(r["tokens"]) < 3 * 200][:20]
    r = post(url, "/tokenize", {"inputs": [texts[c["id"]] for c in chosen]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert len(got) == len(chosen)
    for tokens, ref in zip(got, chosen):
        text = texts[ref["id"]].encode()
        flat, special = ref["tokens"], set(ref["special"])
        assert len(tokens) == len(flat) // 3
        for k, token in enumerate(tokens):
            assert set(token) == {"id", "text", "special", "start", "stop"}, token
            assert token["id"] == flat[3 * k]
            assert token["special"] == (k in special)
            if token["special"]:
                assert token["start"] is None and token["stop"] is None
                assert token["text"] in ("[CLS]", "[SEP]")
            else:
                assert (token["start"], token["stop"]) == (flat[3 * k + 1], flat[3 * k + 2])
                assert token["text"] == text[token["start"]:token["stop"]].decode()
    single = post(url, "/tokenize", {"inputs": "Hello", "add_special_tokens": False}).json()
    assert single == [[{"id": 7592, "text": "Hello", "special": False, "start": 0, "stop": 5}]]
    prompted = post(url, "/tokenize", {"inputs": "Hi", "prompt_name": "query",
                                       "model": PROMPTED}).json()[0]
    assert [t["text"] for t in prompted] == ["[CLS]", "query", ":", "Hi", "[SEP]"]
    assert prompted[3]["start"] == len("query: ")
    tei_error(post(url, "/tokenize", {"inputs": []}), 400, "Empty")
    tei_error(post(url, "/tokenize", {"inputs": ["a", ""]}), 400, "Empty")
    tei_error(post(url, "/tokenize", {"inputs": [1]}), 422, "Validation")


# --- POST /decode -----------------------------------------------------------------------------


def test_decode_matches_hugging_face(url):
    cases = [json.loads(line) for line in (FIXTURES / "tei_decode.jsonl").open()]
    for skip in (True, False):
        chosen = [c for c in cases if c["skip"] == skip and c["ids"]][:40]
        r = post(url, "/decode", {"ids": [c["ids"] for c in chosen], "skip_special_tokens": skip})
        assert r.status_code == 200, r.text
        assert r.json() == [c["text"] for c in chosen]
    # One list; skip_special_tokens defaults to true.
    assert post(url, "/decode", {"ids": [101, 7592, 1010, 2088, 999, 102]}).json() == \
        ["hello, world!"]
    assert tei_error(post(url, "/decode", {"ids": []}), 400, "Empty") == \
        "`input_ids` cannot be empty"
    tei_error(post(url, "/decode", {"ids": [[1], []]}), 400, "Empty")
    tei_error(post(url, "/decode", {"ids": [-1]}), 422, "Validation")
    tei_error(post(url, "/decode", {"ids": "hello"}), 422, "Validation")


# --- GET /info, GET /health -------------------------------------------------------------------


def test_info(url, stack):
    r = requests.get(f"{url}/info", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    info = r.json()
    assert list(info) == [
        "model_id", "model_sha", "model_dtype", "served_model_name", "model_type",
        "max_concurrent_requests", "max_input_length", "max_batch_tokens", "max_batch_requests",
        "max_client_batch_size", "auto_truncate", "tokenization_workers", "version", "sha",
        "docker_label"]
    config = stack.worker.admin_get("/config").text
    assert info["model_id"] == HF_ID
    assert info["served_model_name"] == MODEL
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["model_dtype"] in ("float32", "bfloat16", "float16")
    assert f"dtype: {info['model_dtype']}" in config or "dtype: auto" in config
    assert info["max_input_length"] == 256
    assert f"max_batch_tokens: {info['max_batch_tokens']}" in config
    assert f"max_batch_size: {info['max_batch_requests']}" in config
    assert f"max_queue: {info['max_concurrent_requests']}" in config
    assert f"max_inputs: {info['max_client_batch_size']}" in config
    assert info["auto_truncate"] is True
    assert info["tokenization_workers"] >= 1
    assert info["model_sha"] is None and info["sha"] is None and info["docker_label"] is None
    other = requests.get(f"{url}/info", params={"model": PROMPTED}, timeout=HTTP_TIMEOUT).json()
    assert other["served_model_name"] == PROMPTED
    tei_error(requests.get(f"{url}/info", params={"model": "gpt-4"}, timeout=HTTP_TIMEOUT), 404,
              "Validation")


def test_health(url):
    r = requests.get(f"{url}/health", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.content == b"", (r.status_code, r.text)


# --- the worker's limits and its absence, in TEI's statuses ------------------------------------


def test_limits_and_unhealthy(tmp_path):
    worker = start_worker(tmp_path, batching={"max_queue": 2}, max_inputs=3)
    try:
        config = proxy_config(worker)
        config["limits"] = {"max_request_body_bytes": 4096}
        proxy = start_proxy(config, tmp_path)
    except BaseException:
        worker.stop(signal.SIGKILL)
        raise
    stack = Stack(worker, proxy)
    try:
        url = proxy.url
        assert post(url, "/embed", {"inputs": ["a", "b"]}).status_code == 200
        # More texts than the queue holds: TEI's "overloaded", with Retry-After.
        r = post(url, "/embed", {"inputs": ["a", "b", "c"]})
        tei_error(r, 429, "Overloaded")
        assert int(r.headers["Retry-After"]) >= 1
        # More inputs than max_inputs: TEI's batch size error.
        message = tei_error(post(url, "/embed", {"inputs": ["a"] * 4}), 422, "Validation")
        assert message == "batch size 4 > maximum allowed batch size 3"
        tei_error(post(url, "/decode", {"ids": [[1]] * 4}), 422, "Validation")
        # A body over the proxy's limit: 413, in TEI's shape (the route is known).
        tei_error(post(url, "/embed", {"inputs": "x" * 5000}), 413, "Validation")
        # The worker gone: TEI's "unhealthy" on every route.
        worker.stop()
        r = requests.get(f"{url}/health", timeout=HTTP_TIMEOUT)
        tei_error(r, 503, "Unhealthy")
        assert "Retry-After" in r.headers
        tei_error(post(url, "/embed", {"inputs": "a"}), 503, "Unhealthy")
    finally:
        stack.stop()

"""The OpenAPI 3.1 document of the served routes (docs/openapi.md): validated with
openapi-spec-validator, and used as a client would use it: requests built from its paths,
parameters and schemas work against the proxy, and what the proxy answers validates against the
document's response schemas."""

import copy
import json
import re
import signal

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from conftest import (SERVICE, descriptor_set, free_port, start_backend, start_proxy, start_stack,
                      base_config, wait_until)

OPENAPI = {"path": "/openapi.json", "on_listener": True, "title": "Test API", "version": "3.2.1"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("openapi"), openapi=OPENAPI)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def doc(stack):
    r = stack.proxy.admin_get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def resolve(schema: dict, doc: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = doc["components"]["schemas"][name]
    return schema


def sample(schema: dict, doc: dict, depth: int = 0):
    """A value the schema accepts, the way a client generated from the document would fill it."""
    schema = resolve(schema, doc)
    if "allOf" in schema:
        return sample(schema["allOf"][0], doc, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if "enum" in schema:
        return schema["enum"][-1]
    fmt = schema.get("format")
    if kind == "string":
        if fmt in ("int64", "uint64"):
            return "7"
        if fmt == "byte":
            return "aGk="
        if fmt == "date-time":
            return "2024-01-02T03:04:05Z"
        if "pattern" in schema:
            return "1.5s"
        return "x"
    if kind == "integer":
        return 3
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        return [] if depth > 2 else [sample(schema["items"], doc, depth + 1)]
    if kind == "object":
        props = schema.get("properties", {})
        if "@type" in props:  # google.protobuf.Any: a type the proxy knows.
            return {"@type": f"type.googleapis.com/tipperary.testing.v1.Nested", "name": "n"}
        out = {}
        oneofs = set()
        for name, prop in props.items():
            if prop.get("x-oneof"):
                if prop["x-oneof"] in oneofs:
                    continue  # One member per oneof.
                oneofs.add(prop["x-oneof"])
            if depth > 2 and "$ref" in prop:
                continue  # Recursive messages: stop somewhere.
            out[name] = sample(prop, doc, depth + 1)
        if isinstance(schema.get("additionalProperties"), dict):
            names = schema.get("propertyNames", {})
            key = "true" if "enum" in names else "1" if "pattern" in names else "k"
            out[key] = sample(schema["additionalProperties"], doc, depth + 1)
        return out
    return "any"  # google.protobuf.Value: any JSON.


def validator(schema: dict, doc: dict) -> OAS31Validator:
    root = copy.deepcopy(schema)
    root["components"] = doc["components"]
    return OAS31Validator(root)


def assert_valid(instance, schema: dict, doc: dict) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator(schema, doc).iter_errors(instance)]
    assert not errors, errors


def as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):  # A repeated field: values separated by ',' ("simple" style).
        return ",".join(as_text(v) for v in value)
    return str(value)


def fill_path(path: str, params: list[dict], doc: dict) -> str:
    for p in params:
        if p["in"] != "path":
            continue
        value = "a/b" if p.get("x-tipperary-multi-segment") else as_text(sample(p["schema"], doc))
        if value == "x":
            value = "s1"
        path = path.replace("{" + p["name"] + "}", value)
    assert "{" not in path, path
    return path


def test_the_document_is_valid_openapi_3_1(doc, stack):
    validate_spec(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Test API", "version": "3.2.1"}
    # On the listener too (openapi.on_listener), the same document.
    r = stack.proxy.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == doc
    # Comments from the descriptor set (protoc --include_source_info).
    assert "What the server received" in \
        doc["components"]["schemas"]["tipperary.testing.v1.Thing"]["properties"]["receivedJson"][
            "description"]


def test_every_get_route_works_as_the_document_describes_it(doc, stack):
    tried = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        params = op.get("parameters", [])
        url = fill_path(path, params, doc)
        r = stack.proxy.get(url, timeout=15)
        assert r.status_code == 200, (path, url, r.status_code, r.text)
        content = op["responses"]["200"]["content"]
        if "application/json" in content:
            assert r.headers["Content-Type"].startswith("application/json"), path
            assert_valid(r.json(), content["application/json"]["schema"], doc)
        else:
            assert "*/*" in content, path  # google.api.HttpBody
        tried.append(path)
    assert "/v1/shelves/{name.shelves}/things/{name.things}" in tried
    assert "/v1/files/{path}" in tried
    assert "/v1/stream" in tried
    assert len(tried) >= 7, tried


def test_query_parameters_from_the_document_reach_the_backend(doc, stack):
    op = doc["paths"]["/v1/shelves/{name.shelves}/things/{name.things}"]["get"]
    params = op["parameters"]
    query = {p["name"]: sample(p["schema"], doc) for p in params if p["in"] == "query"}
    query = {k: (v if isinstance(v, list) else as_text(v)) for k, v in query.items()}
    r = stack.proxy.get(fill_path("/v1/shelves/{name.shelves}/things/{name.things}", params, doc),
                        params=query)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "shelves/s1/things/s1"
    assert_valid(r.json(), op["responses"]["200"]["content"]["application/json"]["schema"], doc)
    received = json.loads(r.json()["receivedJson"])  # Proto names.
    snake = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k.split(".")[0])
             for k in query}
    assert snake <= set(received), (snake, received)


def test_a_body_built_from_the_schema_round_trips(doc, stack):
    op = doc["paths"]["/v1/echo"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    body = sample(schema, doc)
    assert_valid(body, schema, doc)
    r = stack.proxy.post("/v1/echo", body)
    assert r.status_code == 200, (body, r.text)
    assert_valid(r.json(), op["responses"]["200"]["content"]["application/json"]["schema"], doc)
    assert set(r.json()) >= {"fInt64", "wInt64", "tTimestamp", "mStringInt64", "oString"}


def test_errors_match_the_error_component(doc, stack):
    r = stack.proxy.post("/v1/fail", {"code": 5, "message": "gone", "withDetails": True})
    assert r.status_code == 404
    error = doc["paths"]["/v1/fail"]["post"]["responses"]["default"]
    assert error == {"$ref": "#/components/responses/Error"}
    assert_valid(r.json(), doc["components"]["responses"]["Error"]["content"][
        "application/json"]["schema"], doc)


def test_the_embedding_service_document(tmp_path, procs):
    backend = start_backend()
    procs.append(backend)
    embedding = descriptor_set().parent / "embedding.pb"
    proxy = start_proxy(base_config(backend.address, descriptors=[str(embedding)], routes=[]),
                        tmp_path)
    procs.append(proxy)
    r = proxy.admin_get("/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    validate_spec(doc)
    assert doc["paths"]["/v1/embeddings"]["post"]["responses"]["default"] == {
        "$ref": "#/components/responses/OpenAIError"}
    assert doc["paths"]["/v1/embed:stream"]["post"]["x-stream"] == "server"
    # Not on the listener unless asked.
    assert proxy.get("/openapi.json").status_code == 404


def test_the_document_follows_the_schema_from_reflection(tmp_path, procs):
    port = free_port()
    proxy = start_proxy(base_config(f"127.0.0.1:{port}", descriptors=[{"reflection": "backend"}],
                                    openapi={"path": "/api/openapi.json"}),
                        tmp_path, wait_ready=False)
    procs.append(proxy)
    r = proxy.admin_get("/api/openapi.json")
    assert r.status_code == 503, r.text  # No schema yet.
    backend = start_backend(f"127.0.0.1:{port}", attempts=5)
    procs.append(backend)
    wait_until(lambda: proxy.admin_get("/api/openapi.json").status_code == 200, timeout=30,
               message="the document once reflection answered")
    doc = proxy.admin_get("/api/openapi.json").json()
    validate_spec(doc)
    assert doc["paths"]["/v1/echo"]["post"]["x-grpc-method"] == f"{SERVICE}/Echo"
    assert proxy.admin_get("/openapi.json").status_code == 404  # The configured path only.


def test_oneofs_are_described_and_the_proxy_enforces_them(doc, stack):
    props = doc["components"]["schemas"]["tipperary.testing.v1.AllTypes"]["properties"]
    assert props["oString"]["x-oneof"] == props["oNested"]["x-oneof"] == "choice"
    # The document does not enforce "at most one" (docs/openapi.md); the proxy does.
    body = {"oString": "a", "oNested": {"name": "b"}}
    assert_valid(body, {"$ref": "#/components/schemas/tipperary.testing.v1.AllTypes"}, doc)
    r = stack.proxy.post("/v1/echo", body)
    assert r.status_code == 400, r.text


def test_a_client_stream_built_from_the_document_works(doc, stack):
    op = doc["paths"]["/v1/things:collect"]["post"]
    assert op["x-stream"] == "client"
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    body = [sample(schema["items"], doc), {"name": "second"}]
    assert_valid(body, schema, doc)
    r = stack.proxy.post("/v1/things:collect", body)
    assert r.status_code == 200, (body, r.text)
    assert_valid(r.json(), op["responses"]["200"]["content"]["application/json"]["schema"], doc)
    assert len(r.json()["things"]) == 2

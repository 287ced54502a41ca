"""Routing by google.api.http annotations: every rule shape in test_service.proto, path
variables, query parameters, custom verbs and methods, body and response_body selectors."""

import json
import urllib.parse

import pytest

from conftest import SERVICE, curl, error_body


def received(response) -> dict:
    """The request message the backend saw (Thing.received_json, proto field names)."""
    assert response.status_code == 200, response.text
    return json.loads(response.json()["receivedJson"])


def test_echo_post_body_star(proxy):
    r = proxy.post("/v1/echo", {"fString": "hi", "fInt32": 7})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"fString": "hi", "fInt32": 7}


def test_echo_get_additional_binding_with_path_and_query(proxy):
    r = proxy.get("/v1/echo/hello", params={"f_int32": "5", "f_bool": "true"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "hello", "fInt32": 5, "fBool": True}


def test_echo_put_binding_body_is_a_field_and_path_sets_nested_fields(proxy):
    r = proxy.request("PUT", "/v1/echo/nm/42", json={"count": "7", "tags": ["t"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"fNested": {"name": "nm", "count": "7", "tags": ["t"]}, "fInt64": "42"}


def test_get_thing_nested_path_variable(proxy):
    r = proxy.get("/v1/shelves/1/things/2")
    assert received(r) == {"name": "shelves/1/things/2"}
    assert r.json()["name"] == "shelves/1/things/2"
    assert r.json()["parent"] == "shelves/1"


def test_path_longer_than_every_template_is_404(proxy):
    r = proxy.get("/v1/shelves/1/things/2/extra")
    assert r.status_code == 404, r.text
    assert error_body(r)["code"] == 5


def test_query_parameters_nested_repeated_enum_wkt_wrapper_bytes(proxy):
    params = [
        ("filter.name", "f"), ("filter.count", "3"), ("filter.tags", "a"), ("filter.tags", "b"),
        ("filter.color", "RED"), ("filter.child.name", "cc"),
        ("view", "A"), ("view", "B"), ("color", "GREEN"), ("page_size", "10"),
        ("since", "2024-01-02T03:04:05Z"), ("within", "2s"), ("limit", "5"), ("verbose", "true"),
        ("token", "AQI="), ("colors", "RED"), ("colors", "BLUE"),
        ("big_number", "18446744073709551615"), ("ratio", "0.5"),
    ]
    r = proxy.get("/v1/shelves/1/things/2", params=params)
    assert received(r) == {
        "name": "shelves/1/things/2",
        "filter": {"name": "f", "count": "3", "tags": ["a", "b"], "color": "RED",
                   "child": {"name": "cc"}},
        "view": ["A", "B"],
        "color": "GREEN",
        "page_size": "10",
        "since": "2024-01-02T03:04:05Z",
        "within": "2s",
        "limit": 5,
        "verbose": True,
        "token": "AQI=",
        "colors": ["RED", "BLUE"],
        "big_number": "18446744073709551615",
        "ratio": 0.5,
    }


def test_query_parameters_json_names_and_enum_numbers(proxy):
    r = proxy.get("/v1/shelves/1/things/2",
                  params={"pageSize": "3", "bigNumber": "9", "color": "2"})
    assert received(r) == {"name": "shelves/1/things/2", "page_size": "3", "big_number": "9",
                           "color": "GREEN"}


def test_query_parameter_percent_decoding(proxy):
    r = proxy.get("/v1/shelves/1/things/2?filter.name=a%20b%26c%3D&view=%E2%9C%93")
    assert received(r) == {"name": "shelves/1/things/2", "filter": {"name": "a b&c="},
                           "view": ["\u2713"]}


def test_path_variable_percent_decoding(proxy):
    r = proxy.get("/v1/shelves/1/things/with%20space")
    assert received(r) == {"name": "shelves/1/things/with space"}


def test_query_parameter_cannot_override_a_path_variable_or_is_rejected(proxy):
    r = proxy.get("/v1/shelves/1/things/2", params={"name": "evil"})
    # Either the path wins or the request is rejected; the query must never win.
    if r.status_code == 200:
        assert received(r)["name"] == "shelves/1/things/2"
    else:
        assert r.status_code == 400, r.text


def test_unknown_query_parameter_is_400(proxy):
    r = proxy.get("/v1/shelves/1/things/2", params={"no_such_field": "1"})
    assert r.status_code == 400, r.text
    assert error_body(r)["code"] == 3


def test_bad_query_value_is_400(proxy):
    r = proxy.get("/v1/shelves/1/things/2", params={"page_size": "not-a-number"})
    assert r.status_code == 400, r.text
    assert error_body(r)["code"] == 3


def test_response_body_selects_a_field(proxy):
    r = proxy.get("/v1/names/widget")
    assert r.status_code == 200, r.text
    assert r.json() == "widget"


def test_list_things(proxy):
    r = proxy.get("/v1/shelves/3/things", params={"page_size": "2", "page_token": "p"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["name"] for t in body["things"]] == ["shelves/3/things/0", "shelves/3/things/1"]
    assert body["nextPageToken"] == "page-after-p"
    assert json.loads(body["things"][0]["receivedJson"]) == {
        "parent": "shelves/3", "page_size": 2, "page_token": "p"}


def test_create_thing_body_field_plus_path_and_query(proxy):
    r = proxy.post("/v1/shelves/3/things?thing_id=t1",
                   {"displayName": "D", "color": "RED", "details": {"count": "2"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "shelves/3/things/t1"
    assert body["parent"] == "shelves/3"
    assert body["displayName"] == "D"
    assert body["color"] == "RED"
    assert json.loads(body["receivedJson"]) == {
        "parent": "shelves/3", "thing": {"display_name": "D", "color": "RED",
                                         "details": {"count": "2"}}, "thing_id": "t1"}


def test_update_thing_patch_fills_the_field_mask_from_the_body(proxy):
    r = proxy.request("PATCH", "/v1/shelves/1/things/2", json={"displayName": "new", "size": "5"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "shelves/1/things/2"
    assert body["displayName"] == "new"
    assert body["size"] == "5"
    assert set(body["updateMask"].split(",")) == {"displayName", "size"}, body


def test_update_thing_patch_with_explicit_mask(proxy):
    r = proxy.request("PATCH", "/v1/shelves/1/things/2?update_mask=displayName",
                      json={"displayName": "new", "size": "5"})
    assert r.status_code == 200, r.text
    assert r.json()["updateMask"] == "displayName"


def test_delete_thing_returns_empty_object(proxy):
    r = proxy.request("DELETE", "/v1/shelves/1/things/2")
    assert r.status_code == 200, r.text
    assert r.json() == {}


def test_custom_verb_run(proxy):
    r = proxy.post("/v1/shelves/1/things/2:run", {"params": {"name": "p", "count": "1"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "shelves/1/things/2"
    assert body["details"] == {"name": "p", "count": "1"}
    assert json.loads(body["receivedJson"]) == {"name": "shelves/1/things/2",
                                                "params": {"name": "p", "count": "1"}}


def test_custom_http_method_lock(proxy):
    r = proxy.request("LOCK", "/v1/locks/l1")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "locks/l1"
    assert r.json()["displayName"] == "locked"


def test_custom_http_method_lock_with_curl(proxy):
    res = curl("-X", "LOCK", "-w", "\n%{http_code}", f"{proxy.url}/v1/locks/l2")
    assert res.returncode == 0, res.stderr
    body, _, code = res.stdout.decode().rpartition("\n")
    assert code == "200", res.stdout
    assert json.loads(body)["name"] == "locks/l2"


def test_double_wildcard_path(proxy):
    r = proxy.get("/v1/files/a/b/c.txt")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "a/b/c.txt"


def test_double_wildcard_keeps_encoded_slash(proxy):
    r = proxy.get("/v1/files/dir/a%2Fb.txt")
    assert r.status_code == 200, r.text
    # For {path=**} reserved characters stay encoded (HttpRule: multi-segment variables are
    # not percent-decoded for '/').
    assert r.json()["name"] in ("dir/a%2Fb.txt", "dir/a/b.txt")


def test_wrong_method_on_known_path_is_405(proxy):
    r = proxy.request("DELETE", "/v1/echo")
    assert r.status_code == 405, r.text
    error_body(r)


def test_unknown_path_is_404(proxy):
    r = proxy.get("/v2/nothing/here")
    assert r.status_code == 404, r.text
    assert error_body(r)["code"] == 5


def test_pretty_query_parameter(proxy):
    r = proxy.get("/v1/echo/hi", params={"pretty": ""})
    assert r.status_code == 200, r.text
    assert "\n" in r.text.strip(), r.text
    assert r.json() == {"fString": "hi"}


def test_config_route_for_unannotated_method(proxy):
    r = proxy.post("/v1/unannotated", {"fString": "u", "rInt64": ["1", "2"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "u", "rInt64": ["1", "2"]}


@pytest.mark.parametrize("method", ["Unannotated", "Echo"])
def test_grpc_method_paths(proxy, method):
    r = proxy.post(f"/{SERVICE}/{method}", {"fString": "g", "fInt64": "-5"})
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "g", "fInt64": "-5"}


def test_grpc_method_paths_off_by_default(make_stack):
    s = make_stack(transcoding={"allow_grpc_method_paths": False})
    r = s.proxy.post(f"/{SERVICE}/Unannotated", {"fString": "g"})
    assert r.status_code == 404, r.text
    # Annotated routes still work.
    assert s.proxy.post("/v1/echo", {"fString": "x"}).json() == {"fString": "x"}


def test_curl_post_json(proxy):
    res = curl("-H", "Content-Type: application/json", "-d", '{"fString":"curl","fDouble":2.5}',
               f"{proxy.url}/v1/echo")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"fString": "curl", "fDouble": 2.5}


def test_query_string_with_plus_is_space(proxy):
    r = proxy.get("/v1/shelves/1/things/2?filter.name=a+b")
    # '+' in a query string means space (application/x-www-form-urlencoded), as grpc-gateway does.
    assert received(r)["filter"]["name"] in ("a b",)


def test_many_routes_quickly(proxy):
    # A smoke check that several route kinds interleave correctly on one keep-alive session.
    for i in range(20):
        assert proxy.get(f"/v1/echo/s{i}").json() == {"fString": f"s{i}"}
        assert proxy.get(f"/v1/names/n{i}").json() == f"n{i}"
        name = urllib.parse.quote(f"shelves/{i}/things/{i}", safe="/")
        assert proxy.get(f"/v1/{name}").json()["name"] == f"shelves/{i}/things/{i}"


def test_unicode_path_segment(proxy):
    r = proxy.get("/v1/echo/%E2%9C%93%20ok")
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "\u2713 ok"}


def test_head_on_a_get_route(proxy):
    get = proxy.get("/v1/echo/headed")
    head = proxy.request("HEAD", "/v1/echo/headed")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(get.content))
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_405_lists_head_with_get(proxy):
    r = proxy.request("DELETE", "/v1/echo/x")
    assert r.status_code == 405
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"GET", "HEAD"} <= allowed, allowed

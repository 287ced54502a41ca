"""Debian's nginx as the legacy HTTP/1.1 ingress in front of the proxy, configured as a platform
team would (HTTP/1.1 upstream with keep-alive, nginx's defaults otherwise — proxy_buffering
on): JSON, errors, SSE and NDJSON streams, trailing metadata as headers, gzip and gRPC-Web all
pass through it. Streams stay live with buffering on because the proxy sends
X-Accel-Buffering: no on them."""

from __future__ import annotations

import base64
import pathlib
import shutil
import struct
import subprocess
import time

import pytest
import requests

from conftest import SERVICE, free_port, start_stack

NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream tipperary {{
    server 127.0.0.1:{upstream_port};
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://tipperary;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and
                                not pathlib.Path("/usr/sbin/nginx").exists(),
                                reason="Debian's nginx not installed")


@pytest.fixture(scope="module")
def ingress(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ingress")
    s = start_stack(directory / "stack")
    port = free_port()
    (directory / "nginx.conf").write_text(
        NGINX_CONF.format(dir=directory, port=port, upstream_port=s.proxy.port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(url + "/v1/nothing", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start: " + proc.stderr.read().decode())
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        s.stop()


def test_json_and_errors_pass_through(ingress):
    r = requests.post(f"{ingress}/v1/echo", json={"fString": "hi", "fInt32": 7}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"fString": "hi", "fInt32": 7}
    assert r.headers["X-Request-Id"]
    r = requests.get(f"{ingress}/v1/nothing", timeout=10)
    assert r.status_code == 404
    assert r.json()["code"] == 5
    r = requests.post(f"{ingress}/v1/echo", data=b"{not json", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == 3


def test_trailing_metadata_survives_as_headers(ingress):
    r = requests.post(f"{ingress}/v1/metadata", timeout=10,
                      json={"responseHeaders": {"x-init": "i"}, "responseTrailers": {"x-done": "d"}})
    assert r.status_code == 200, r.text
    # nginx drops chunked trailers; the unary response carries them as header fields.
    assert r.headers["Grpc-Trailer-X-Done"] == "d"
    assert r.headers["Grpc-Metadata-X-Init"] == "i"


@pytest.mark.parametrize("accept,first", [
    ("text/event-stream", 'data: {"name":"things/0"}'),
    ("application/x-ndjson", '{"name":"things/0"}'),
])
def test_streams_stay_live_through_a_buffering_ingress(ingress, accept, first):
    # The second message is a minute away: the first arrives now only if nothing buffers it.
    with requests.get(f"{ingress}/v1/stream", params={"count": "2", "interval_ms": "60000"},
                      headers={"Accept": accept}, stream=True, timeout=15) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == accept
        line = next(line for line in r.iter_lines() if line)
        assert line.decode() == first


@pytest.mark.parametrize("accept", ["text/event-stream", "application/x-ndjson",
                                    "application/json"])
def test_whole_streams_and_their_errors(ingress, accept):
    r = requests.get(f"{ingress}/v1/stream", params={"count": "4", "fail_after": "2"},
                     headers={"Accept": accept}, timeout=15)
    assert r.status_code == 200
    assert "things/1" in r.text
    assert "failed after 2 messages" in r.text  # The in-band error: nginx drops trailers.


def test_gzip_passes_through(ingress):
    texts = {"rString": ["lorem ipsum dolor sit amet " * 20] * 8}
    r = requests.post(f"{ingress}/v1/echo", json=texts, timeout=10,
                      headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.json() == texts


def test_grpc_web_passes_through(ingress, schema):
    AllTypes = schema.message(f"{SERVICE.rsplit('.', 1)[0]}.AllTypes")
    message = AllTypes(f_string="hi").SerializeToString()
    body = base64.b64encode(b"\x00" + struct.pack(">I", len(message)) + message)
    r = requests.post(f"{ingress}/{SERVICE}/Echo", data=body, timeout=10,
                      headers={"Content-Type": "application/grpc-web-text", "X-Grpc-Web": "1"})
    assert r.status_code == 200
    payload = b""
    text = r.content
    start = 0
    for i in range(0, len(text), 4):
        if text[i + 3:i + 4] == b"=" or i + 4 == len(text):
            payload += base64.b64decode(text[start:i + 4])
            start = i + 4
    size = struct.unpack(">I", payload[1:5])[0]
    assert AllTypes.FromString(payload[5:5 + size]).f_string == "hi"
    assert b"grpc-status:0\r\n" in payload[5 + size:]

#!/usr/bin/env python3
"""Runs the HTTP/1.1 framing cases of http_cases.py against Debian's nginx configured as an
ingress (a reverse proxy that reads the request and forwards it over HTTP/1.1), and prints what
nginx answers next to what tipperary answers: the table in docs/http-conformance.md.

    .venv/bin/python tests/integration/compare_nginx.py            # markdown table
    .venv/bin/python tests/integration/compare_nginx.py --check    # exit 1 if nginx differs
                                                                   # from the recorded column

test_http_conformance.py::test_nginx_column_is_current runs --check when nginx is installed, so
the recorded column cannot go stale.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from http_cases import CASES, NGINX, Target  # noqa: E402

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  # The ingress: reads each request and forwards it over HTTP/1.1 with keep-alive.
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 4; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  # The application behind it answers 200 to everything.
  server {{
    listen 127.0.0.1:{app_port};
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outcome(port: int, data: bytes) -> str | int:
    """'ok' when nginx passes the request on (2xx), else its status; 'closed' if it closes
    without a response."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    if not buf:
        return "closed"
    status = int(buf.split(b" ", 2)[1])
    return "ok" if 200 <= status < 300 else status


def run() -> list[tuple[str, str | int, str | int, str | int | None, str]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    directory = pathlib.Path(tempfile.mkdtemp(prefix="tipperary-nginx-"))
    port, app_port = free_port(), free_port()
    (directory / "nginx.conf").write_text(NGINX_CONF.format(dir=directory, port=port,
                                                            app_port=app_port))
    proc = subprocess.Popen([nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("nginx did not start; see " + str(directory))
                time.sleep(0.05)
        target = Target("localhost", port, "/get", "/post", b"{}")
        rows = []
        for case in CASES:
            rows.append((case.name, case.expect, outcome(port, case.build(target)),
                         NGINX.get(case.name), case.rfc))
        return rows
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    rows = run()
    if args.check:
        stale = [(n, rec, got) for n, _, got, rec, _ in rows if rec != got]
        for name, recorded, got in stale:
            print(f"{name}: recorded nginx={recorded!r}, nginx now answers {got!r}")
        return 1 if stale else 0
    print("| case | RFC | tipperary | nginx 1.22 |")
    print("|---|---|---|---|")
    for name, ours, nginx, _, rfc in rows:
        print(f"| `{name}` | {rfc} | {ours} | {nginx} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

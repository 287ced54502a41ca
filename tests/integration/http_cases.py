"""HTTP/1.1 request-framing cases, from RFC 9112 (§2-§7, mostly §3.2 and §6) and the published
request-smuggling research (Kettle's "HTTP Desync Attacks" TE.CL / CL.TE / TE.TE obfuscations,
and the "HTTP/1.1 must die" follow-ups on HTTP/1.0 + TE, chunk extensions and trailers).

Each case is raw bytes for a target that serves GET on `get` and accepts a body on `post`.
`expect` is what tipperary's listeners answer: "ok" (framed and handed to the application; the
connection stays usable) or the status the listener answers itself before closing. `rfc` names
the rule. NGINX (at the end) is what Debian 12's nginx 1.22 answers as an ingress, recorded by
compare_nginx.py (docs/http-conformance.md has both columns and why they differ).

Used by test_http_conformance.py (against the proxy's HTTP port, the proxy's admin port and the
worker's admin port) and by compare_nginx.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    get: str   # A path answered 2xx to GET.
    post: str  # A path whose handler is reached by POST (2xx, or 405 on admin ports).
    body: bytes  # A body the post path accepts (valid JSON for the proxy).


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Target], bytes]
    expect: str | int  # "ok" or the listener's status
    rfc: str
    # A request that must NOT be answered when the case is rejected (the smuggled one).
    smuggles: bool = False


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def _post(t: Target, fields: str, body: bytes, version: str = "HTTP/1.1") -> bytes:
    return (f"POST {t.post} {version}\r\nHost: {t.host}\r\n{fields}\r\n").encode("latin-1") + body


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def _get(t: Target, extra: str = "", version: str = "HTTP/1.1", target: str | None = None,
         host: str | None = "default") -> bytes:
    host_line = "" if host is None else f"Host: {t.host if host == 'default' else host}\r\n"
    return f"GET {target or t.get} {version}\r\n{host_line}{extra}\r\n".encode("latin-1")


def _te(value: str, tail: bytes = SMUGGLED) -> Callable[[Target], bytes]:
    return lambda t: _post(t, f"Transfer-Encoding: {value}\r\n", _chunked(t.body) + tail)


CASES: list[Case] = [
    # ---- Baselines ----
    Case("content_length", lambda t: _post(t, f"Content-Length: {len(t.body)}\r\n", t.body),
         "ok", "§6.2"),
    Case("chunked", lambda t: _post(t, "Transfer-Encoding: chunked\r\n", _chunked(t.body)),
         "ok", "§7.1"),
    Case("chunked_case_insensitive", _te("ChUnKeD", b""), "ok", "§7 (coding names are "
         "case-insensitive)"),
    Case("chunked_tab_ows", _te("\tchunked", b""), "ok", "§5.1 (OWS around the value)"),
    Case("leading_empty_lines", lambda t: b"\r\n\r\n" + _get(t), "ok", "§2.2"),

    # ---- Transfer-Encoding (RFC 9112 §6.1, §6.3; TE.TE obfuscations) ----
    Case("te_identity", _te("identity"), 400, "§6.3 (final coding not chunked)", True),
    Case("te_chunked_identity", _te("chunked, identity"), 400, "§6.3", True),
    Case("te_chunked_twice", _te("chunked, chunked", b""), 400, "§6.1 (chunked once)"),
    Case("te_two_lines", lambda t: _post(t, "Transfer-Encoding: chunked\r\nTransfer-Encoding: "
                                         "chunked\r\n", _chunked(t.body)), 400, "§6.1"),
    Case("te_chunked_then_gzip_lines", lambda t: _post(
        t, "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", _chunked(t.body)
        + SMUGGLED), 400, "§6.3 (lines form one list; last is gzip)", True),
    Case("te_unknown", _te("xchunked"), 400, "§6.3", True),
    Case("te_unknown_before_chunked", _te("foo, chunked", b""), 400,
         "§6.1 (501 SHOULD; 400 chosen: see docs)"),
    Case("te_gzip_chunked", _te("gzip, chunked", b""), 501, "§6.1 (known, unsupported)"),
    Case("te_gzip_only", _te("gzip"), 400, "§6.3", True),
    Case("te_empty", _te(""), 400, "§6.1 (1#transfer-coding)", True),
    Case("te_quoted", _te('"chunked"'), 400, "§6.3", True),
    Case("te_vertical_tab", _te("\x0bchunked"), 400, "§5.5 (CTL in a value)", True),
    Case("te_space_before_colon", lambda t: _post(t, "Transfer-Encoding : chunked\r\n",
                                                  _chunked(t.body) + SMUGGLED),
         400, "§5.1 (MUST 400)", True),
    Case("te_obs_fold", lambda t: _post(t, "Transfer-Encoding:\r\n chunked\r\n",
                                        _chunked(t.body) + SMUGGLED),
         400, "§5.2 (reject or unfold; rejected)", True),
    Case("te_leading_space_line", lambda t: _post(t, " Transfer-Encoding: chunked\r\n",
                                                  _chunked(t.body) + SMUGGLED),
         400, "§2.2 (whitespace-preceded line)", True),
    Case("te_bare_lf", lambda t: (f"POST {t.post} HTTP/1.1\r\nHost: {t.host}\r\nX: y\n"
                                  f"Transfer-Encoding: chunked\r\n\r\n").encode() +
         _chunked(t.body) + SMUGGLED, 400, "§2.2 (bare LF MAY be accepted; rejected)",
         True),
    Case("te_http10", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                      _chunked(t.body) + SMUGGLED, "HTTP/1.0"),
         400, "§6.1 (HTTP/1.0 + TE is faulty framing)", True),

    # ---- TE.CL / CL.TE ----
    Case("te_cl", lambda t: _post(t, "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                                  b"5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n" + SMUGGLED),
         400, "§6.1 / §6.3 (TE with CL: rejected)", True),
    Case("cl_te", lambda t: _post(t, "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
                                  b"0\r\n\r\nG" + SMUGGLED),
         400, "§6.1 / §6.3", True),
    Case("te_identity_cl", lambda t: _post(t, "Transfer-Encoding: identity\r\nContent-Length: 3\r\n",
                                           b"abc" + SMUGGLED), 400, "§6.3", True),

    # ---- Content-Length (RFC 9110 §8.6, RFC 9112 §6.3) ----
    Case("cl_list_identical", lambda t: _post(
        t, f"Content-Length: {len(t.body)}, {len(t.body)}\r\n", t.body), "ok",
         "RFC 9110 §8.6 (MAY accept)"),
    Case("cl_two_lines_identical", lambda t: _post(
        t, f"Content-Length: {len(t.body)}\r\nContent-Length: {len(t.body)}\r\n", t.body), "ok",
         "RFC 9110 §8.6 (MAY accept)"),
    Case("cl_two_lines_different", lambda t: _post(
        t, f"Content-Length: {len(t.body)}\r\nContent-Length: 0\r\n", t.body + SMUGGLED),
         400, "§6.3 (invalid)", True),
    Case("cl_plus", lambda t: _post(t, f"Content-Length: +{len(t.body)}\r\n", t.body + SMUGGLED),
         400, "§6.3 (1*DIGIT)", True),
    Case("cl_negative", lambda t: _post(t, "Content-Length: -1\r\n", SMUGGLED), 400, "§6.3", True),
    Case("cl_hex", lambda t: _post(t, "Content-Length: 0x2\r\n", t.body + SMUGGLED), 400,
         "§6.3", True),
    Case("cl_inner_space", lambda t: _post(t, "Content-Length: 1 2\r\n", t.body + SMUGGLED),
         400, "§6.3", True),
    Case("cl_overflow", lambda t: _post(t, "Content-Length: 99999999999999999999999\r\n",
                                        SMUGGLED), 400, "§6.3", True),
    Case("cl_empty", lambda t: _post(t, "Content-Length: \r\n", SMUGGLED), 400, "§6.3",
         True),

    # ---- Chunks (RFC 9112 §7.1) ----
    Case("chunk_size_negative", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                                b"-1\r\nx\r\n0\r\n\r\n" + SMUGGLED),
         400, "§7.1 (chunk-size = 1*HEXDIG)", True),
    Case("chunk_size_overflow", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                                b"1" + b"0" * 17 + b"\r\nx\r\n0\r\n\r\n"
                                                + SMUGGLED), 400, "§7.1", True),
    Case("chunk_size_0x", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                          b"0x2\r\n{}\r\n0\r\n\r\n" + SMUGGLED),
         400, "§7.1", True),
    Case("chunk_data_longer_than_size", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                                        b"1\r\n{}\r\n0\r\n\r\n" + SMUGGLED),
         400, "§7.1 (CRLF must follow chunk-data)", True),
    Case("chunk_bare_lf", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                          b"2\n{}\r\n0\r\n\r\n" + SMUGGLED),
         400, "§7.1 (CRLF)", True),
    Case("chunk_extension", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                            b"%x;name=value;q=\"quoted\"\r\n" % len(t.body)
                                            + t.body + b"\r\n0\r\n\r\n"),
         "ok", "§7.1.1 (ignored)"),
    Case("chunk_extension_over_limit", lambda t: _post(
        t, "Transfer-Encoding: chunked\r\n", b"%x;" % len(t.body) + b"e" * 2000 + b"\r\n"
        + t.body + b"\r\n0\r\n\r\n" + SMUGGLED), 400,
         "§7.1.1 (a limit with a 4xx)", True),
    Case("chunk_extension_bare_cr", lambda t: _post(
        t, "Transfer-Encoding: chunked\r\n", b"%x;a\rb\r\n" % len(t.body) + t.body
        + b"\r\n0\r\n\r\n" + SMUGGLED), 400, "§7.1.1", True),

    # ---- Trailers (RFC 9110 §6.5, RFC 9112 §7.1.2) ----
    Case("trailer_fields", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                           b"%x\r\n" % len(t.body) + t.body + b"\r\n0\r\n"
                                           b"Authorization: smuggled\r\nX-T: 1\r\n\r\n"),
         "ok", "§7.1.2 (kept apart, dropped)"),
    Case("trailer_content_length", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                                   b"%x\r\n" % len(t.body) + t.body +
                                                   b"\r\n0\r\nContent-Length: 50\r\n\r\n"
                                                   + SMUGGLED),
         400, "RFC 9110 §6.5.1 (framing fields are not trailers)", True),
    Case("trailer_over_limit", lambda t: _post(t, "Transfer-Encoding: chunked\r\n",
                                               b"0\r\nX: " + b"t" * 20000 + b"\r\n\r\n"
                                               + SMUGGLED), 431, "§7.1.2 (a limit)",
         True),

    # ---- Host (RFC 9112 §3.2) ----
    Case("host_missing", lambda t: _get(t, host=None), 400, "§3.2 (MUST 400)"),
    Case("host_missing_http10", lambda t: _get(t, version="HTTP/1.0", host=None) + b"",
         "ok", "§3.2 (1.0 may omit)"),
    Case("host_twice", lambda t: _get(t, extra=f"Host: {t.host}\r\n"), 400, "§3.2 (MUST 400)"),
    Case("host_twice_case", lambda t: _get(t, extra="host: other\r\n"), 400, "§3.2"),
    Case("host_invalid", lambda t: _get(t, host="a/b"), 400, "§3.2 (MUST 400)"),
    Case("host_userinfo", lambda t: _get(t, host="user@a"), 400, "§3.2 / RFC 9110 §4.2.4"),
    Case("host_empty", lambda t: _get(t, host=""), 400,
         "RFC 9110 §4.2.1 (an http URI has a non-empty host)"),

    # ---- Request targets (RFC 9112 §3.2) ----
    Case("absolute_form", lambda t: _get(t, target=f"http://{t.host}{t.get}"), "ok",
         "§3.2.2 (MUST accept)"),
    Case("absolute_form_other_host", lambda t: _get(t, target=f"http://elsewhere.example{t.get}",
                                                    host="ignored.example"), "ok",
         "§3.2.2 (Host ignored)"),
    Case("absolute_form_no_host_header", lambda t: _get(t, target=f"http://{t.host}{t.get}",
                                                        host=None), 400, "§3.2 (Host required)"),
    Case("absolute_form_userinfo", lambda t: _get(t, target=f"http://u:p@{t.host}{t.get}"), 400,
         "RFC 9110 §4.2.4"),
    Case("absolute_form_ftp", lambda t: _get(t, target=f"ftp://{t.host}{t.get}"), 400,
         "RFC 9110 §4.2"),
    Case("asterisk_options", lambda t: f"OPTIONS * HTTP/1.1\r\nHost: {t.host}\r\n\r\n".encode(),
         "ok", "§3.2.4"),
    Case("asterisk_get", lambda t: f"GET * HTTP/1.1\r\nHost: {t.host}\r\n\r\n".encode(), 400,
         "§3.2.4 (OPTIONS only)"),
    Case("authority_form", lambda t: f"CONNECT {t.host}:443 HTTP/1.1\r\nHost: {t.host}\r\n\r\n"
         .encode(), 501, "§3.2.3 (CONNECT is not implemented)"),
    Case("relative_target", lambda t: _get(t, target="v1/x"), 400, "§3.2"),
    Case("fragment_in_target", lambda t: _get(t, target=t.get + "#frag"), 400, "§3.2 (no '#')"),
    Case("non_ascii_target", lambda t: _get(t, target=t.get + "\xe9"), 400,
         "§3.2 (SHOULD 400 an invalid line)"),

    # ---- Request line and versions (RFC 9112 §2.3, §3; RFC 9110 §2.5) ----
    Case("http_1_2_as_1_1", lambda t: _get(t, version="HTTP/1.2"), "ok", "RFC 9110 §2.5"),
    Case("http_2_0", lambda t: _get(t, version="HTTP/2.0"), 505, "§2.3"),
    Case("http_0_9_line", lambda t: _get(t, version="HTTP/0.9"), 505, "§2.3"),
    Case("http_1_10", lambda t: _get(t, version="HTTP/1.10"), 400, "§2.3 (DIGIT . DIGIT)"),
    Case("lower_case_version", lambda t: _get(t, version="http/1.1"), 400, "§2.3"),
    Case("double_space", lambda t: f"GET  {t.get} HTTP/1.1\r\nHost: {t.host}\r\n\r\n".encode(),
         400, "§3 (MAY accept; rejected)"),
    Case("nul_in_field", lambda t: _get(t, extra="X: a\x00b\r\n"), 400, "§5.5"),
    Case("bare_cr_in_field", lambda t: _get(t, extra="X: a\rb\r\n"), 400, "§2.2"),
    Case("obs_text_in_field", lambda t: _get(t, extra="X: caf\xe9\r\n"), "ok",
         "§5.5 (obs-text allowed)"),
    Case("expect_unknown", lambda t: _post(t, f"Expect: 200-ok\r\nContent-Length: "
                                           f"{len(t.body)}\r\n", t.body), 417,
         "RFC 9110 §10.1.1 (MAY 417)"),
    Case("h2_preface", lambda t: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505,
         "§2.3 (no h2c here)"),

    # ---- Limits ----
    Case("header_over_limit", lambda t: _get(t, extra="X: " + "h" * 20000 + "\r\n"), 431,
         "RFC 6585 §5"),
    Case("request_line_over_limit", lambda t: _get(t, target=t.get + "?q=" + "l" * 20000), 414,
         "RFC 9112 §3 (414)"),
    Case("body_over_limit", lambda t: _post(t, "Content-Length: 5000000000\r\n", b""), 413,
         "RFC 9110 §15.5.14"),
]

# What Debian 12's nginx 1.22 answers to each case as an ingress (recorded with
# compare_nginx.py; test_nginx_column_is_current re-checks it).
NGINX = {
    'content_length': 'ok',
    'chunked': 'ok',
    'chunked_case_insensitive': 'ok',
    'chunked_tab_ows': 501,
    'leading_empty_lines': 'ok',
    'te_identity': 501,
    'te_chunked_identity': 501,
    'te_chunked_twice': 501,
    'te_two_lines': 400,
    'te_chunked_then_gzip_lines': 400,
    'te_unknown': 501,
    'te_unknown_before_chunked': 501,
    'te_gzip_chunked': 501,
    'te_gzip_only': 501,
    'te_empty': 501,
    'te_quoted': 501,
    'te_vertical_tab': 501,
    'te_space_before_colon': 400,
    'te_obs_fold': 400,
    'te_leading_space_line': 400,
    'te_bare_lf': 'ok',
    'te_http10': 400,
    'te_cl': 400,
    'cl_te': 400,
    'te_identity_cl': 501,
    'cl_list_identical': 400,
    'cl_two_lines_identical': 400,
    'cl_two_lines_different': 400,
    'cl_plus': 400,
    'cl_negative': 400,
    'cl_hex': 400,
    'cl_inner_space': 400,
    'cl_overflow': 400,
    'cl_empty': 400,
    'chunk_size_negative': 400,
    'chunk_size_overflow': 400,
    'chunk_size_0x': 400,
    'chunk_data_longer_than_size': 400,
    'chunk_bare_lf': 'ok',
    'chunk_extension': 'ok',
    'chunk_extension_over_limit': 'ok',
    'chunk_extension_bare_cr': 400,
    'trailer_fields': 'ok',
    'trailer_content_length': 'ok',
    'trailer_over_limit': 'ok',
    'host_missing': 400,
    'host_missing_http10': 'ok',
    'host_twice': 400,
    'host_twice_case': 400,
    'host_invalid': 400,
    'host_userinfo': 'ok',
    'host_empty': 400,
    'absolute_form': 'ok',
    'absolute_form_other_host': 'ok',
    'absolute_form_no_host_header': 400,
    'absolute_form_userinfo': 400,
    'absolute_form_ftp': 'ok',
    'asterisk_options': 400,
    'asterisk_get': 400,
    'authority_form': 400,
    'relative_target': 400,
    'fragment_in_target': 'ok',
    'non_ascii_target': 'ok',
    'http_1_2_as_1_1': 'ok',
    'http_2_0': 505,
    'http_0_9_line': 400,
    'http_1_10': 'ok',
    'lower_case_version': 400,
    'double_space': 'ok',
    'nul_in_field': 400,
    'bare_cr_in_field': 400,
    'obs_text_in_field': 'ok',
    'expect_unknown': 'ok',
    'h2_preface': 400,
    'header_over_limit': 400,
    'request_line_over_limit': 414,
    'body_over_limit': 413,
}

"""Locust load profile for tipperary: a request-rate ramp up and back down on POST /v1/embeddings.

    locust -f k8s/load/locustfile.py --headless --host http://127.0.0.1:8080 \
        --csv /tmp/ramp --csv-full-history --only-summary

The rate is controlled exactly: every user sends at a constant throughput of PER_USER_RPS
requests per second (`constant_throughput`), and the `Ramp` shape sets the number of users each
second so that users x PER_USER_RPS follows the profile, a piecewise-linear curve of
(seconds, requests per second) points. The run ends after the last point.

This file is self-contained: k8s/load ships it as a ConfigMap for an in-cluster Job, and
tests/load/test_ramp.py runs it against the local stack. It needs nothing but Locust.

Environment (all optional):
  TIPPERARY_RAMP          the profile, "t:rps,t:rps,..." (seconds from the start, requests/s);
                          default "0:2,10:2,40:50,60:50,90:2,125:2" (DEFAULT_PROFILE).
  TIPPERARY_PER_USER_RPS  requests per second per user (default 1: one user per request/s).
  TIPPERARY_LOAD_TEXTS    texts per request (default 1).
  TIPPERARY_RAMP_T0_FILE  a file to write the wall-clock time (Unix seconds) of the profile's
                          t=0 to, for lining up other measurements with it.

Each request embeds short English sentences with the default model (all-minilm-l6-v2) through
the proxy's OpenAI-compatible route. tests/load/test_ramp.py runs this file headless against a
proxy and a worker it starts itself.
"""

from __future__ import annotations

import itertools
import math
import os
import pathlib
import random
import time

import gevent
from locust import FastHttpUser, LoadTestShape, constant_throughput, task

# (seconds, requests/s): a warm-up plateau that fills the proxy's 10 s rate window, a 30 s rise
# to the peak, a 20 s hold, a 30 s fall and a quiet tail during which the autoscaler's (time
# compressed, in tests/load/test_ramp.py) scale-down stabilization runs out. Sized for the CPU
# stack on 2 cores, which sustains ~70 req/s of one short sentence each.
DEFAULT_PROFILE: list[tuple[float, float]] = [
    (0, 2), (10, 2), (40, 50), (60, 50), (90, 2), (125, 2)]


def parse_profile(text: str | None) -> list[tuple[float, float]]:
    """Parses "t:rps,t:rps,..." (from t=0, times increasing, rates >= 0); None/"" = default."""
    if not text:
        return list(DEFAULT_PROFILE)
    points = []
    for item in text.split(","):
        t, sep, rate = item.strip().partition(":")
        if not sep:
            raise ValueError(f"profile point {item!r} is not t:rps")
        points.append((float(t), float(rate)))
    if len(points) < 2 or points[0][0] != 0:
        raise ValueError(f"profile needs two or more points from t=0: {text!r}")
    if any(t1 <= t0 for (t0, _), (t1, _) in zip(points, points[1:])):
        raise ValueError(f"profile times must increase: {text!r}")
    if any(rate < 0 for _, rate in points):
        raise ValueError(f"profile rates must be >= 0: {text!r}")
    return points


def rate_at(t: float, profile: list[tuple[float, float]]) -> float | None:
    """The offered request rate at t seconds (linear between points); None after the end."""
    if t < 0:
        return profile[0][1]
    for (t0, r0), (t1, r1) in zip(profile, profile[1:]):
        if t0 <= t <= t1:
            return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
    return None


def users_for(rate: float, per_user_rps: float) -> int:
    """Users at a constant per-user throughput that offer `rate` requests/s."""
    return max(0, round(rate / per_user_rps))


MODEL = "all-minilm-l6-v2"
ROUTE = "/v1/embeddings"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
    "Autoscaling follows the request rate.",
    "Embeddings map text to vectors.",
    "The weather is lovely today.",
    "Replicas come and go with the load.",
    "GPUs are expensive when idle.",
    "Hello, world!",
]

PROFILE = parse_profile(os.environ.get("TIPPERARY_RAMP"))
PER_USER_RPS = float(os.environ.get("TIPPERARY_PER_USER_RPS", "1"))
TEXTS_PER_REQUEST = int(os.environ.get("TIPPERARY_LOAD_TEXTS", "1"))
T0_FILE = os.environ.get("TIPPERARY_RAMP_T0_FILE")


class EmbeddingsUser(FastHttpUser):
    wait_time = constant_throughput(PER_USER_RPS)

    def on_start(self) -> None:
        self._texts = itertools.cycle(SENTENCES)
        # Users started together would send together, every 1/PER_USER_RPS s: a burst, then
        # nothing. A random phase spreads their requests over the interval (a steady rate).
        self._texts = itertools.islice(self._texts, random.randrange(len(SENTENCES)), None)
        gevent.sleep(random.uniform(0, 1 / PER_USER_RPS))

    @task
    def embed(self) -> None:
        texts = [next(self._texts) for _ in range(TEXTS_PER_REQUEST)]
        with self.client.post(ROUTE, json={"model": MODEL, "input": texts},
                              name=f"POST {ROUTE}", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif len(response.json().get("data", [])) != len(texts):
                response.failure(f"expected {len(texts)} embeddings: {response.text[:200]}")


class Ramp(LoadTestShape):
    """Users (= offered rate / PER_USER_RPS) along PROFILE; stops after its last point."""

    _t0_written = False

    def tick(self):
        run_time = self.get_run_time()
        if T0_FILE and not self._t0_written:
            pathlib.Path(T0_FILE).write_text(f"{time.time() - run_time:.3f}\n")
            self._t0_written = True
        rate = rate_at(run_time, PROFILE)
        if rate is None:
            return None
        users = users_for(rate, PER_USER_RPS)
        # Start and stop users at once: the profile, not the spawn rate, shapes the load.
        return users, max(100.0, float(math.ceil(users)))

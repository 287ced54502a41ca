"""The autoscaling ramp: Locust ramps the request rate up and back down against the real stack
(tipperary-proxy in front of tipperary-worker, default model, CPU backend), the proxy's own
autoscaling signal is polled from its admin port, and the HPA simulator (hpa_simulator.py) turns
it into a desired replica count with the behavior of the shipped k8s/base/scaledobject.yaml.

What is simulated, and why:
- The signal is what KEDA's metrics-api trigger reads (k8s/components/metrics-api-trigger):
  GET /autoscaling -> routes["POST /v1/embeddings"].rps_10s, a metricType Value trigger. KEDA
  asks one replica through the Service, and with the load spread evenly that replica sees
  total / replicas. Here one real replica carries the whole load, so the simulator divides the
  measured rate by its simulated replica count (HPASimulator.step_total), which makes
  desired = ceil(current x (total / current) / target) = ceil(total / target) outside the
  tolerance -- what a real deployment of `current` replicas would report.
- minReplicaCount, maxReplicaCount and the scale-up/scale-down behavior (stabilization windows,
  policies, selectPolicy) come from the shipped ScaledObject. Two things are scaled to fit a
  two-minute test on 2 CPU cores: the target per replica (TARGET_RPS, 20 req/s, instead of the
  GPU figure in the manifest) and time: every window and policy period is divided by
  TIME_SCALE (15), so the 300 s scale-down window lasts 20 s here. The signal is polled every
  15 s / TIME_SCALE = 1 s, the HPA's 15 s sync period compressed alike. The proxy's 10 s rate
  window is real time (not compressed), so the signal lags the offered load by ~5 s.
- Replicas are ready the moment they are desired (no start-up delay).

Outputs: a PNG (offered load, the measured signal, desired replicas over time) and the samples
as JSON, under $TIPPERARY_LOAD_OUT (ctest sets the build folder) or pytest's tmp_path; with
TIPPERARY_WRITE_DOCS=1 the PNG is also written to docs/img/autoscaling-ramp.png.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import requests

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# One locustfile for this test and the in-cluster Job; it lives where kustomize can read it.
LOCUSTFILE = REPO_ROOT / "k8s" / "load" / "locustfile.py"
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO_ROOT / "tests" / "integration"))

from hpa_simulator import SHIPPED_SCALED_OBJECT, Decision, HPASimulator  # noqa: E402

ROUTE = "POST /v1/embeddings"
# The offered load, (seconds, requests/s), linear in between; given to locustfile.py as
# TIPPERARY_RAMP. The CPU stack on 2 cores sustains ~70 req/s of one short sentence each, so a
# 50 req/s peak leaves headroom; 10 s of warm-up fill the proxy's 10 s rate window; the tail
# outlasts the (compressed) scale-down stabilization window and policy periods.
PROFILE: list[tuple[float, float]] = [(0, 2), (10, 2), (40, 50), (60, 50), (90, 2), (125, 2)]
TARGET_RPS = 20.0  # Requests/s per replica (the trigger's target, scaled to the CPU stack).
TIME_SCALE = 15.0  # Windows and policy periods of the shipped behavior divided by this.
POLL_INTERVAL = 15.0 / TIME_SCALE  # The HPA's 15 s sync period, compressed.
RISE_START, PEAK_START, FALL_START, FALL_END = 10.0, 40.0, 60.0, 90.0
assert [t for t, _ in PROFILE[1:5]] == [RISE_START, PEAK_START, FALL_START, FALL_END]


def rate_at(t: float, profile: list[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in profile], [p[1] for p in profile]
    for (t0, r0), (t1, r1) in zip(profile, profile[1:]):
        if t0 <= t <= t1:
            return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
    return ys[0] if t < xs[0] else ys[-1]


def duration(profile: list[tuple[float, float]]) -> float:
    return profile[-1][0]


def peak(profile: list[tuple[float, float]]) -> float:
    return max(rate for _, rate in profile)


def profile_text(profile: list[tuple[float, float]]) -> str:
    return ",".join(f"{t:g}:{r:g}" for t, r in profile)


@dataclass
class Sample:
    t: float  # Seconds since the profile's t=0.
    rps_10s: float
    rps_60s: float
    inflight: float
    saturation: float


# --------------------------------------------------------------------------------------------
# The stack


def _stack_helpers():
    # The integration tests' process helpers and worker fixture code (no fixtures are used).
    import conftest as it  # tests/integration/conftest.py
    import test_worker_e2e as we
    return it, we


def proxy_config_with_autoscaling(we, worker) -> dict:
    config = we.proxy_config(worker)
    config["autoscaling"] = {
        "external_scaler_address": "",  # Not needed here; "" = off (no fixed port).
        "sample_interval": "1s",
        "windows": ["10s", "60s"],
        "capacity": 64,
        "worker_admin": worker.admin,
    }
    return config


def check_proxy_supports_autoscaling(it, config: dict, directory: pathlib.Path) -> None:
    path = it.write_config(directory, config, "proxy-check.yaml")
    out = subprocess.run([str(it.proxy_bin()), "--config", str(path), "--check-config"],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        pytest.fail("tipperary-proxy rejects the `autoscaling:` config section, so it cannot "
                    "serve GET /autoscaling (the signal this test scales on); build a proxy "
                    f"with autoscaling support.\n{it.proxy_bin()} --check-config said:\n"
                    f"{out.stdout[-2000:]}{out.stderr[-2000:]}", pytrace=False)


@pytest.fixture
def stack(tmp_path):
    it, we = _stack_helpers()
    worker = we.start_worker(tmp_path)
    proxy = None
    try:
        config = proxy_config_with_autoscaling(we, worker)
        check_proxy_supports_autoscaling(it, config, tmp_path)
        proxy = it.start_proxy(config, tmp_path)
        r = proxy.admin_get("/autoscaling")
        assert r.status_code == 200, f"GET /autoscaling: {r.status_code} {r.text[:500]}"
        yield worker, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        worker.stop()


# --------------------------------------------------------------------------------------------
# Polling the signal while Locust runs


class Poller(threading.Thread):
    def __init__(self, admin_url: str, interval: float):
        super().__init__(daemon=True)
        self.url = admin_url + "/autoscaling"
        self.interval = interval
        self.samples: list[tuple[float, dict]] = []  # (wall clock, document)
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._session = requests.Session()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._halt.is_set():
            try:
                r = self._session.get(self.url, timeout=2)
                if r.status_code == 200:
                    self.samples.append((time.time(), r.json()))
                else:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
            except (requests.RequestException, ValueError) as e:
                self.errors.append(repr(e))
            next_at += self.interval
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self._session.close()


def route_figures(doc: dict) -> dict:
    routes = doc.get("routes") or {}
    if ROUTE not in routes:
        return {}
    return routes[ROUTE]


def run_locust(proxy_url: str, out: pathlib.Path, env_extra: dict) -> tuple[int, str]:
    env = {**os.environ, "TIPPERARY_RAMP": profile_text(PROFILE), "TIPPERARY_PER_USER_RPS": "1",
           "TIPPERARY_LOAD_TEXTS": "1", "TIPPERARY_RAMP_T0_FILE": str(out / "t0.txt"),
           **env_extra}
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           "--host", proxy_url, "--csv", str(out / "locust"), "--csv-full-history",
           "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=duration(PROFILE) + 90, cwd=str(out))
    return proc.returncode, proc.stdout[-4000:] + proc.stderr[-4000:]


def read_locust_history(path: pathlib.Path, t0: float) -> list[dict]:
    """Per-second rows of the aggregated stats: t, users, achieved requests/s, failures."""
    rows = []
    with path.open() as f:
        for row in csv.DictReader(f):
            if row.get("Name") != "Aggregated":
                continue
            rows.append({"t": float(row["Timestamp"]) - t0, "users": int(row["User Count"]),
                         "requests": int(row["Total Request Count"]),
                         "failures": int(row["Total Failure Count"])})
    # Locust stamps whole seconds: rates over 5 rows (~5 s) rather than 1 are not all jitter.
    out = []
    for a, b in zip(rows, rows[5:]):
        dt = b["t"] - a["t"]
        if dt > 0:
            out.append({**b, "t": (a["t"] + b["t"]) / 2,
                        "achieved_rps": (b["requests"] - a["requests"]) / dt})
    return out


# --------------------------------------------------------------------------------------------
# The plot


def plot(path: pathlib.Path, samples: list[Sample], decisions: list[Decision],
         history: list[dict], sim: HPASimulator, title_note: str,
         hold_span: tuple[float, float] | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    ts = [i * 0.5 for i in range(int(duration(PROFILE) * 2) + 1)]
    ax1.plot(ts, [rate_at(t, PROFILE) for t in ts], color="0.6", lw=1.5, ls="--",
             label="offered load (Locust profile)")
    if history:
        ax1.plot([h["t"] for h in history], [h["achieved_rps"] for h in history], color="C0",
                 lw=1, alpha=0.7, label="completed (Locust, 5 s average)")
    ax1.plot([s.t for s in samples], [s.rps_10s for s in samples], color="C1", lw=2,
             label=f'signal: proxy /autoscaling rps_10s ("{ROUTE}")')
    ax1.axhline(TARGET_RPS, color="C2", lw=0.8, ls=":",
                label=f"target {TARGET_RPS:g} req/s per replica")
    ax1.set_ylabel("requests / s")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.grid(alpha=0.3)
    ax1.set_title("Autoscaling ramp: Locust -> tipperary-proxy -> tipperary-worker (CPU); "
                  "HPA simulated", fontsize=10)

    ax2.step([d.t for d in decisions], [d.desired for d in decisions], where="post", color="C3",
             lw=2, label="desired replicas (shipped ScaledObject behavior)")
    ax2.plot([d.t for d in decisions], [d.proposal for d in decisions], color="C3", lw=0.8,
             ls=":", drawstyle="steps-post", label="from the metric alone (before behavior)")
    if hold_span is not None:
        ax2.axvspan(*hold_span, color="0.85", alpha=0.6, lw=0,
                    label="held by the scale-down stabilization window")
    ax2.axhline(sim.config.max_replicas, color="0.5", lw=0.8, ls="--",
                label=f"maxReplicaCount {sim.config.max_replicas}")
    ax2.set_ylim(0, sim.config.max_replicas + 1)
    ax2.set_ylabel("replicas")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.grid(alpha=0.3)
    fig.text(0.01, 0.005, title_note, fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


LOCUSTFILE_CHECK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import locustfile as lf
out = {"default": lf.parse_profile(None), "parsed": lf.parse_profile("0:2, 10:2,40:50"),
       "rates": [lf.rate_at(t, lf.DEFAULT_PROFILE) for t in (0, 10, 25, 40, 50, 75, 90, 125)],
       "after_end": lf.rate_at(125.1, lf.DEFAULT_PROFILE),
       "users": [lf.users_for(26, 1), lf.users_for(26, 2), lf.users_for(0.2, 1)],
       "errors": []}
for bad in ("1:2,3:4", "0:2,0:3", "0:-1,5:2", "0:2", "0-2,5:3"):
    try:
        lf.parse_profile(bad)
    except ValueError:
        out["errors"].append(bad)
print(json.dumps(out))
"""


def test_locustfile_profile():
    # In a subprocess: importing Locust monkey-patches the interpreter with gevent.
    out = subprocess.run([sys.executable, "-c", LOCUSTFILE_CHECK, str(LOCUSTFILE.parent)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["default"] == [list(p) for p in PROFILE]  # The in-repo default is this test's.
    assert got["parsed"] == [[0, 2], [10, 2], [40, 50]]
    assert got["rates"] == [2, 2, 26, 50, 50, 26, 2, 2]
    assert got["after_end"] is None
    assert got["users"] == [26, 13, 0]
    assert len(got["errors"]) == 5, got["errors"]


def output_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    value = os.environ.get("TIPPERARY_LOAD_OUT")
    out = pathlib.Path(value) if value else tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_desired_replicas_follow_the_ramp(stack, tmp_path):
    assert SHIPPED_SCALED_OBJECT.is_file(), f"{SHIPPED_SCALED_OBJECT} is missing"
    worker, proxy = stack
    out = output_dir(tmp_path)
    run_dir = tmp_path / "locust"
    run_dir.mkdir()

    # The HPA as KEDA would configure it from the shipped ScaledObject, with the metrics-api
    # trigger's semantics (metricType Value), a CPU-sized target and compressed time.
    sim = HPASimulator.from_scaled_object(target=TARGET_RPS, metric_type="Value",
                                          time_scale=TIME_SCALE)
    b = sim.behavior
    min_r, max_r = sim.config.min_replicas, sim.config.max_replicas
    expected_peak = min(max_r, math.ceil(peak(PROFILE) / TARGET_RPS))
    assert min_r < expected_peak <= max_r, (
        f"the ramp ({peak(PROFILE)} req/s over a {TARGET_RPS} req/s target) cannot show "
        f"scaling within the shipped range {min_r}..{max_r}")

    poller = Poller(proxy.admin_url, POLL_INTERVAL)
    poller.start()
    try:
        rc, log = run_locust(proxy.url, run_dir, {})
    finally:
        poller.stop()
    assert rc == 0, f"locust exited with {rc}:\n{log}"
    t0 = float((run_dir / "t0.txt").read_text())
    history = read_locust_history(run_dir / "locust_stats_history.csv", t0)
    assert len(poller.samples) > duration(PROFILE) / POLL_INTERVAL * 0.8, (
        f"only {len(poller.samples)} polls; errors: {poller.errors[:5]}")

    # The signal, on the profile's clock, and the simulated HPA, driven by the poll timestamps.
    samples = []
    for wall, doc in poller.samples:
        figures = route_figures(doc)
        if not figures and wall - t0 < 2:
            continue  # No request on the route yet.
        assert figures, f"no {ROUTE!r} in /autoscaling routes: {json.dumps(doc)[:800]}"
        samples.append(Sample(wall - t0, float(figures["rps_10s"]), float(figures["rps_60s"]),
                              float(figures["inflight"]), float(figures["saturation"])))
    samples = [s for s in samples if 0 <= s.t <= duration(PROFILE) + 1]
    decisions = [sim.step_total(s.t, s.rps_10s) for s in samples]

    # ---- Records, then the plot, before any assertion can stop the test.
    desired = [d.desired for d in decisions]
    peak_desired = max(desired)
    first_up = next((d.t for d in decisions if d.desired > d.current), None)
    at_peak = next((d.t for d in decisions if d.desired == peak_desired), None)
    first_down = next((d.t for d in decisions if d.desired < d.current), None)
    back_to_min = next((d.t for d in decisions
                        if first_down is not None and d.t >= first_down and d.desired == min_r),
                       None)
    peak_signal = max(s.rps_10s for s in samples)
    # The last poll whose metric alone still asked for the peak: the stabilization window
    # holds the peak from there.
    last_peak_ask = max((d.t for d in decisions if d.proposal >= peak_desired
                         and (first_down is None or d.t <= first_down)), default=None)
    hold_span = (last_peak_ask, first_down) if last_peak_ask and first_down else None
    failures = history[-1]["failures"] if history else None
    requests_total = history[-1]["requests"] if history else None
    summary = {
        "target_rps_per_replica": TARGET_RPS, "time_scale": TIME_SCALE,
        "poll_interval_s": POLL_INTERVAL, "profile": PROFILE,
        "min_replicas": min_r, "max_replicas": max_r,
        "scale_up": {"stabilization_s": b.scale_up.stabilization_window_seconds,
                     "select": b.scale_up.select_policy,
                     "policies": [(p.type, p.value, p.period_seconds)
                                  for p in b.scale_up.policies]},
        "scale_down": {"stabilization_s": b.scale_down.stabilization_window_seconds,
                       "select": b.scale_down.select_policy,
                       "policies": [(p.type, p.value, p.period_seconds)
                                    for p in b.scale_down.policies]},
        "peak_offered_rps": peak(PROFILE), "peak_signal_rps_10s": peak_signal,
        "peak_desired": peak_desired, "expected_peak": expected_peak,
        "first_scale_up_s": first_up, "peak_reached_s": at_peak,
        "last_peak_ask_s": last_peak_ask, "first_scale_down_s": first_down,
        "back_to_min_s": back_to_min,
        "requests": requests_total, "failures": failures,
        "samples": [[round(s.t, 2), s.rps_10s, s.rps_60s, s.inflight, s.saturation, d.proposal,
                     d.desired] for s, d in zip(samples, decisions)],
        "last_autoscaling_document": poller.samples[-1][1] if poller.samples else None,
        "locust_history": [[round(h["t"], 2), h["users"], round(h["achieved_rps"], 2)]
                           for h in history],
    }
    (out / "autoscaling-ramp.json").write_text(json.dumps(summary, indent=1))
    note = (f"target {TARGET_RPS:g} req/s/replica (metricType Value); behavior of "
            f"k8s/base/scaledobject.yaml with time / {TIME_SCALE:g} (scale-down window "
            f"{b.scale_down.stabilization_window_seconds:g} s here); polled every "
            f"{POLL_INTERVAL:g} s")
    plot(out / "autoscaling-ramp.png", samples, decisions, history, sim, note, hold_span)
    if os.environ.get("TIPPERARY_WRITE_DOCS") == "1":
        plot(REPO_ROOT / "docs" / "img" / "autoscaling-ramp.png", samples, decisions, history,
             sim, note, hold_span)
    print(f"\nramp: peak signal {peak_signal:.1f} req/s, desired {min_r} -> {peak_desired} "
          f"(expected {expected_peak}); first scale-up at {first_up} s, peak at {at_peak} s, "
          f"first scale-down at {first_down} s, back to {min_r} at {back_to_min} s; "
          f"{requests_total} requests, {failures} failures; plot {out / 'autoscaling-ramp.png'}")

    # ---- The load was delivered, and the signal measured it.
    assert requests_total and failures is not None and failures <= 0.01 * requests_total, (
        f"{failures} of {requests_total} requests failed:\n{log}")
    hold = [h["achieved_rps"] for h in history if PEAK_START + 3 <= h["t"] <= FALL_START - 1]
    assert hold and sum(hold) / len(hold) >= 0.85 * peak(PROFILE), (
        f"the stack did not keep up with the peak: {hold}")
    # rps_10s at the end of the hold averages the 10 s of peak load.
    late_hold = [s.rps_10s for s in samples if PEAK_START + 12 <= s.t <= FALL_START]
    assert late_hold and all(abs(v - peak(PROFILE)) <= 0.15 * peak(PROFILE) for v in late_hold), (
        f"signal during the hold {late_hold} vs offered {peak(PROFILE)}")
    warm = [s.rps_10s for s in samples if 8 <= s.t <= RISE_START]
    assert warm and all(v <= 0.2 * TARGET_RPS for v in warm), warm

    # ---- Desired replicas follow the ramp both ways.
    assert all(d == min_r for d, s in zip(desired, samples) if s.t <= RISE_START), (
        f"desired before the rise: {desired[:12]}")
    # Up during the rise (the signal lags the offered load by about half its 10 s window).
    assert first_up is not None and RISE_START < first_up <= PEAK_START + 5, first_up
    # ... to the peak that peak_rate / target asks for (the tolerance may keep one fewer when the
    # signal ends within 10% of a step).
    assert peak_desired == expected_peak or (
        peak_desired == expected_peak - 1
        and math.ceil(peak_signal / TARGET_RPS) - 1 == peak_desired), summary["samples"]
    assert at_peak <= FALL_START + 1, at_peak
    # No scale-down while the load is high, nor until the stabilization window has passed
    # since the last sample that asked for the peak.
    assert first_down is not None and first_down > FALL_START, first_down
    assert last_peak_ask is not None
    assert first_down - last_peak_ask >= b.scale_down.stabilization_window_seconds - 1e-6, (
        first_down, last_peak_ask)
    # Back down to minReplicaCount before the end: the window plus one policy period per step
    # after the signal reached the bottom, and it stays there.
    assert back_to_min is not None, f"never back to {min_r}: {desired}"
    assert all(d == min_r for d, s in zip(desired, samples) if s.t >= back_to_min)
    # Monotone on each side: up only before the first scale-down, down only after it.
    ups = [d for d in decisions if d.desired > d.current]
    downs = [d for d in decisions if d.desired < d.current]
    assert all(d.t < first_down for d in ups) and all(d.t >= first_down for d in downs)
    assert not poller.errors or len(poller.errors) <= 2, poller.errors

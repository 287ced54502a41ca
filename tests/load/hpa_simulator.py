"""A small simulator of the Kubernetes HorizontalPodAutoscaler, as KEDA drives it.

It replays what the HPA controller (pkg/controller/podautoscaler in kubernetes/kubernetes,
autoscaling/v2) does on each sync, for one external metric, given the metric value at a series of
timestamps (the simulator has no clock of its own; it is driven by the poll timestamps):

1. The replica proposal from the metric, with tolerance 0.1 (a ratio within 10% of 1 keeps the
   current count):
     metricType Value:        ratio = metric / target;
                              desired = ceil(current x ratio)
     metricType AverageValue: ratio = metric / (target x current), metric = the sum over replicas;
                              desired = ceil(metric / target)
2. Stabilization (behavior.scaleUp/scaleDown.stabilizationWindowSeconds): the result is kept
   between the lowest proposal of the scale-up window and the highest of the scale-down window
   (proposals strictly newer than now - window, the current one included).
3. Rate limits (behavior.*.policies, selectPolicy): Pods adds/removes `value` pods and Percent
   `value`% of the replicas counted at the start of the policy's periodSeconds (replicas now
   minus the scale events of that period); selectPolicy Max takes the policy allowing the
   largest change, Min the smallest, Disabled forbids scaling in that direction. Percent rounds
   up when scaling up and truncates when scaling down, as the controller does.
4. minReplicas/maxReplicas bound the result; a current count outside them is corrected at once.

Defaults follow the API: behavior absent (or a direction, or its fields, absent) means
  scaleUp:   stabilizationWindowSeconds 0,   selectPolicy Max,
             policies [Pods 4 per 15 s, Percent 100 per 15 s]
  scaleDown: stabilizationWindowSeconds 300, selectPolicy Max, policies [Percent 100 per 15 s]
(with no behavior at all the controller's legacy path differs only in details: a scale-up limit
of max(2 x current, 4) per sync instead of per 15 s).

KEDA: a ScaledObject becomes an HPA with minReplicas = max(minReplicaCount, 1) (KEDA itself moves
0 <-> 1 on its activation threshold, not simulated here), maxReplicas = maxReplicaCount
(default 100) and behavior = spec.advanced.horizontalPodAutoscalerConfig.behavior.
`from_scaled_object` reads those from a manifest (k8s/base/scaledobject.yaml by default).

Not simulated: pod readiness and start-up (a new replica counts at once), missing metrics,
several metrics at once, KEDA's fallback, and the controller's sync period (the caller decides
how often to call `step`; the HPA's default is every 15 s).

Arithmetic follows the controller's: metric values and targets are milli-quantities (KEDA
truncates a scaler's float to int64 milli units), ratios and policy limits are float64 as in the
Go code, quirks included (Percent 10 on 50 pods allows ceil(50 x 1.1) = ceil(55.00000000000001) = 56
pods; a metric exactly 10% above target, ratio 1.1, is outside the tolerance since
|1 - 1.1| = 0.10000000000000009).

`time_scale` compresses time: every window and period is divided by it, so that a ramp of a few
minutes of real load exercises a behavior tuned in tens of minutes with its proportions intact
(time_scale 10 makes a 300 s stabilization window last 30 s of the caller's timestamps).
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED_SCALED_OBJECT = REPO_ROOT / "k8s" / "base" / "scaledobject.yaml"

DEFAULT_TOLERANCE = 0.1
KEDA_DEFAULT_MAX_REPLICAS = 100

POLICY_TYPES = ("Pods", "Percent")
SELECT_POLICIES = ("Max", "Min", "Disabled")
METRIC_TYPES = ("Value", "AverageValue")


# --------------------------------------------------------------------------------------------
# behavior


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" | "Percent"
    value: int
    period_seconds: float

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Policy":
        kind = d.get("type")
        if kind not in POLICY_TYPES:
            raise ValueError(f"policy type must be one of {POLICY_TYPES}: {d!r}")
        value = d.get("value")
        period = d.get("periodSeconds")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"policy value must be an integer > 0: {d!r}")
        if not isinstance(period, int) or isinstance(period, bool) or not 0 < period <= 1800:
            raise ValueError(f"policy periodSeconds must be an integer in (0, 1800]: {d!r}")
        return Policy(kind, value, period)


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: float
    select_policy: str
    policies: tuple[Policy, ...]

    @staticmethod
    def from_dict(d: Mapping[str, Any] | None, default: "ScalingRules") -> "ScalingRules":
        """Fills what d leaves out from default, as the API server's defaulting does."""
        if d is None:
            return default
        window = d.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
        if (not isinstance(window, (int, float)) or isinstance(window, bool)
                or not 0 <= window <= 3600):
            raise ValueError(f"stabilizationWindowSeconds must be in [0, 3600]: {d!r}")
        select = d.get("selectPolicy", default.select_policy)
        if select not in SELECT_POLICIES:
            raise ValueError(f"selectPolicy must be one of {SELECT_POLICIES}: {d!r}")
        raw = d.get("policies")
        if raw is None:
            policies = default.policies
        else:
            if not raw:
                raise ValueError(f"policies: must specify at least one policy: {d!r}")
            policies = tuple(Policy.from_dict(p) for p in raw)
        return ScalingRules(window, select, policies)

    def longest_period(self) -> float:
        return max((p.period_seconds for p in self.policies), default=0)


DEFAULT_SCALE_UP = ScalingRules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN

    @staticmethod
    def from_dict(d: Mapping[str, Any] | None) -> "Behavior":
        d = d or {}
        return Behavior(ScalingRules.from_dict(d.get("scaleUp"), DEFAULT_SCALE_UP),
                        ScalingRules.from_dict(d.get("scaleDown"), DEFAULT_SCALE_DOWN))

    def compressed(self, time_scale: float) -> "Behavior":
        """Every window and period divided by time_scale (> 0)."""
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")

        def rules(r: ScalingRules) -> ScalingRules:
            return ScalingRules(
                r.stabilization_window_seconds / time_scale, r.select_policy,
                tuple(replace(p, period_seconds=p.period_seconds / time_scale)
                      for p in r.policies))

        return Behavior(rules(self.scale_up), rules(self.scale_down))


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class HPAConfig:
    target: float  # Per replica (Value: what one replica reports; AverageValue: the average).
    metric_type: str = "Value"
    min_replicas: int = 1
    max_replicas: int = KEDA_DEFAULT_MAX_REPLICAS
    behavior: Behavior = field(default_factory=Behavior)
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.metric_type not in METRIC_TYPES:
            raise ValueError(f"metric_type must be one of {METRIC_TYPES}: {self.metric_type!r}")
        if not self.target >= 0.001:  # One milli unit, the metric's resolution.
            raise ValueError(f"target must be >= 0.001: {self.target!r}")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 1 <= min_replicas <= max_replicas: "
                             f"{self.min_replicas}, {self.max_replicas}")
        if self.tolerance < 0:
            raise ValueError("tolerance must be >= 0")


def load_scaled_object(source: str | pathlib.Path | None = None) -> dict:
    """The ScaledObject document of a manifest file (or of YAML text when source contains a
    newline); multi-document files are searched for kind: ScaledObject."""
    if source is None:
        source = SHIPPED_SCALED_OBJECT
    if isinstance(source, str) and "\n" in source:
        text, where = source, "<inline YAML>"
    else:
        path = pathlib.Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"ScaledObject manifest not found: {path}")
        text, where = path.read_text(), str(path)
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    found = [d for d in docs if d.get("kind") == "ScaledObject"]
    if not found:
        raise ValueError(f"{where}: no kind: ScaledObject document")
    if len(found) > 1:
        raise ValueError(f"{where}: {len(found)} ScaledObject documents; expected one")
    return found[0]


# What each scaler calls its per-replica target in trigger metadata.
_TARGET_KEYS = ("targetValue", "threshold", "target", "value")


def trigger_of(scaled_object: Mapping[str, Any], trigger: str | None = None) -> dict:
    """The trigger named `trigger` (by name, else by type); the first one when None."""
    triggers = (scaled_object.get("spec") or {}).get("triggers") or []
    if not triggers:
        raise ValueError("ScaledObject has no triggers")
    if trigger is None:
        return triggers[0]
    for t in triggers:
        if t.get("name") == trigger:
            return t
    for t in triggers:
        if t.get("type") == trigger:
            return t
    raise ValueError(f"no trigger named or of type {trigger!r}: "
                     f"{[t.get('name') or t.get('type') for t in triggers]}")


def trigger_target(t: Mapping[str, Any]) -> tuple[float, str]:
    """(target, metricType) of a trigger; KEDA's default metricType is AverageValue."""
    metadata = t.get("metadata") or {}
    for key in _TARGET_KEYS:
        if key in metadata:
            return float(metadata[key]), t.get("metricType", "AverageValue")
    raise ValueError(f"trigger {t.get('name') or t.get('type')!r} has none of {_TARGET_KEYS} "
                     f"in its metadata")


def config_from_scaled_object(scaled_object: Mapping[str, Any], *, target: float | None = None,
                              metric_type: str | None = None, trigger: str | None = None,
                              tolerance: float = DEFAULT_TOLERANCE) -> HPAConfig:
    """HPAConfig from a ScaledObject: min/max replica counts and behavior as KEDA hands them to
    the HPA; target and metric type from the trigger unless given."""
    spec = scaled_object.get("spec") or {}
    min_count = int(spec.get("minReplicaCount", 0))
    max_count = int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX_REPLICAS))
    hpa = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {})
    behavior = Behavior.from_dict(hpa.get("behavior"))
    if target is None or metric_type is None:
        t_target, t_type = trigger_target(trigger_of(scaled_object, trigger))
        target = t_target if target is None else target
        metric_type = t_type if metric_type is None else metric_type
    return HPAConfig(target=target, metric_type=metric_type, min_replicas=max(1, min_count),
                     max_replicas=max_count, behavior=behavior, tolerance=tolerance)


# --------------------------------------------------------------------------------------------
# the controller


@dataclass(frozen=True)
class Decision:
    t: float
    metric: float  # The value the HPA saw (per replica for Value, the sum for AverageValue).
    current: int  # Replicas before this step.
    proposal: int  # From the metric alone (step 1).
    stabilized: int  # After the stabilization windows (step 2).
    desired: int  # After rate limits and min/max (steps 3, 4): the new replica count.
    reason: str


class HPASimulator:
    """One HPA, one metric. Call step(t, metric) at increasing t (seconds); `replicas` is the
    count after the latest step (scaling is assumed to take effect at once)."""

    def __init__(self, config: HPAConfig, *, initial_replicas: int | None = None,
                 time_scale: float = 1.0):
        self.config = config
        self.time_scale = time_scale
        self.behavior = config.behavior.compressed(time_scale)
        self.replicas = config.min_replicas if initial_replicas is None else initial_replicas
        if self.replicas < 0:
            raise ValueError("initial_replicas must be >= 0")
        self.history: list[Decision] = []
        self._recommendations: list[tuple[float, int]] = []
        self._up_events: list[tuple[float, int]] = []
        self._down_events: list[tuple[float, int]] = []
        self._last_t: float | None = None

    @classmethod
    def from_scaled_object(cls, source: str | pathlib.Path | None = None, *,
                           target: float | None = None, metric_type: str | None = None,
                           trigger: str | None = None, time_scale: float = 1.0,
                           initial_replicas: int | None = None) -> "HPASimulator":
        """From a ScaledObject manifest; the shipped k8s/base/scaledobject.yaml by default."""
        config = config_from_scaled_object(load_scaled_object(source), target=target,
                                           metric_type=metric_type, trigger=trigger)
        return cls(config, initial_replicas=initial_replicas, time_scale=time_scale)

    # -- the metric a single test replica sees, spread over the simulated replicas

    def metric_for_total(self, total: float) -> float:
        """What the HPA would read when `total` is the load over all replicas, spread evenly:
        Value triggers ask one replica (through the Service), which sees total / replicas;
        AverageValue triggers sum over replicas, which is total."""
        if self.config.metric_type == "Value":
            return total / max(1, self.replicas)
        return total

    def step_total(self, t: float, total: float) -> Decision:
        return self.step(t, self.metric_for_total(total))

    # -- one controller sync

    def proposal(self, current: int, metric: float) -> int:
        """Step 1: the replica count the metric asks for (replica_calculator.go)."""
        c = self.config
        usage, target = _milli(metric), _milli(c.target)
        if c.metric_type == "Value":  # GetExternalMetricReplicas / getUsageRatioReplicaCount
            ratio = usage / target
            if current == 0:
                return math.ceil(ratio)
            if abs(1.0 - ratio) <= c.tolerance:
                return current
            return math.ceil(ratio * current)
        # AverageValue (GetExternalPerPodMetricReplicas): metric is the sum over the replicas.
        if current == 0:
            return math.ceil(usage / target)
        ratio = usage / (target * current)
        if abs(1.0 - ratio) <= c.tolerance:
            return current
        return math.ceil(usage / target)

    def step(self, t: float, metric: float) -> Decision:
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"time went backwards: {t} < {self._last_t}")
        self._last_t = t
        c = self.config
        current = self.replicas
        if current > c.max_replicas:
            proposal = stabilized = desired = c.max_replicas
            reason = "AboveMaxReplicas"
        elif current < c.min_replicas:
            proposal = stabilized = desired = c.min_replicas
            reason = "BelowMinReplicas"
        else:
            proposal = self.proposal(current, metric)
            stabilized = self._stabilize(t, current, proposal)
            desired, reason = self._limit_rate(t, current, stabilized)
        if desired != current:
            self._store_event(t, current, desired)
        self.replicas = desired
        decision = Decision(t, metric, current, proposal, stabilized, desired, reason)
        self.history.append(decision)
        return decision

    def _stabilize(self, now: float, current: int, proposal: int) -> int:
        up_cutoff = now - self.behavior.scale_up.stabilization_window_seconds
        down_cutoff = now - self.behavior.scale_down.stabilization_window_seconds
        up, down = proposal, proposal
        for ts, rec in self._recommendations:
            if ts > up_cutoff:
                up = min(up, rec)
            if ts > down_cutoff:
                down = max(down, rec)
        recommendation = max(current, up)
        recommendation = min(recommendation, down)
        oldest = min(up_cutoff, down_cutoff)
        self._recommendations = [(ts, r) for ts, r in self._recommendations if ts > oldest]
        self._recommendations.append((now, proposal))
        return recommendation

    def _limit_rate(self, now: float, current: int, desired: int) -> tuple[int, str]:
        c = self.config
        if desired > current:
            limit = self._scale_up_limit(now, current, self.behavior.scale_up)
            limit = max(limit, current)
            if c.max_replicas > limit:
                bound, reason = limit, "ScaleUpLimit"
            else:
                bound, reason = c.max_replicas, "TooManyReplicas"
            if desired > bound:
                return bound, reason
        elif desired < current:
            limit = self._scale_down_limit(now, current, self.behavior.scale_down)
            limit = min(limit, current)
            if c.min_replicas < limit:
                bound, reason = limit, "ScaleDownLimit"
            else:
                bound, reason = c.min_replicas, "TooFewReplicas"
            if desired < bound:
                return bound, reason
        return desired, "DesiredWithinRange"

    def _period_start(self, now: float, current: int, period: float) -> int:
        cutoff = now - period
        added = sum(n for ts, n in self._up_events if ts > cutoff)
        removed = sum(n for ts, n in self._down_events if ts > cutoff)
        return current - added + removed

    def _scale_up_limit(self, now: float, current: int, rules: ScalingRules) -> int:
        if rules.select_policy == "Disabled":
            return current
        pick = min if rules.select_policy == "Min" else max
        result: int | None = None
        for p in rules.policies:
            start = self._period_start(now, current, p.period_seconds)
            if p.type == "Pods":
                proposed = start + p.value
            else:  # Rounded up, or a small count would never grow.
                proposed = math.ceil(start * (1 + p.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result

    def _scale_down_limit(self, now: float, current: int, rules: ScalingRules) -> int:
        if rules.select_policy == "Disabled":
            return current
        # Scaling down, the smallest change is the largest count.
        pick = max if rules.select_policy == "Min" else min
        result: int | None = None
        for p in rules.policies:
            start = self._period_start(now, current, p.period_seconds)
            if p.type == "Pods":
                proposed = start - p.value
            else:  # Truncated, like the controller's int32(...).
                proposed = int(start * (1 - p.value / 100))
            result = proposed if result is None else pick(result, proposed)
        return current if result is None else result

    def _store_event(self, now: float, before: int, after: int) -> None:
        if after > before:
            keep = now - self.behavior.scale_up.longest_period()
            self._up_events = [e for e in self._up_events if e[0] > keep]
            self._up_events.append((now, after - before))
        else:
            keep = now - self.behavior.scale_down.longest_period()
            self._down_events = [e for e in self._down_events if e[0] > keep]
            self._down_events.append((now, before - after))

    # -- convenience

    def run(self, samples: Iterable[tuple[float, float]], *, totals: bool = False
            ) -> list[Decision]:
        """Steps through (t, metric) samples; with totals=True each value is the total load
        (see metric_for_total)."""
        out = []
        for t, value in samples:
            out.append(self.step_total(t, value) if totals else self.step(t, value))
        return out


def _milli(value: float) -> int:
    """A float as Kubernetes sees it through KEDA: int64(value * 1000) milli units."""
    return int(value * 1000)


# --------------------------------------------------------------------------------------------
# backlog_seconds behind the HPA


@dataclass(frozen=True)
class BacklogStep:
    t: float
    offered_tokens_per_second: float  # Over all replicas.
    backlog_seconds: float  # What each replica reports (the Service spreads the load evenly).
    replicas: int  # After the HPA's sync at t (unchanged between syncs).


class BacklogReplay:
    """The worker's backlog_seconds as a fluid queue in front of `replicas` workers, fed to the
    HPA: what scaling on `metric: backlog_seconds` does over a load given in tokens per second.

    Each replica works through `capacity` real tokens per second (the worker's
    tokens_per_second). Tokens arrive at the offered rate, spread evenly over the replicas. Every
    `dt` seconds the queue grows by what arrived beyond the replicas' capacity and shrinks by
    the capacity left over. A replica's backlog_seconds is its share of that queue divided by its
    capacity, plus what the dynamic batcher holds even below capacity: the tokens that arrive
    while a batch runs (`batch_seconds`) wait for the next one, min(utilization, 1) x
    batch_seconds. Every `sync_seconds` the HPA (a Value trigger) reads one replica's
    backlog_seconds. New replicas serve at once (no start-up time), as in HPASimulator.

    The model is deliberately coarse; what it shows is the shape: below capacity the backlog is
    the batching floor (under any target above batch_seconds), so the HPA scales in until the
    replicas run at capacity and a queue of about the target forms, then holds the queue there.
    Scaling on backlog_seconds keeps the wait a text sees near the target, whatever the texts'
    lengths, at the price of running replicas at full utilization."""

    def __init__(self, hpa: HPASimulator, *, capacity: float, batch_seconds: float = 0.05,
                 dt: float = 1.0, sync_seconds: float = 15.0):
        if capacity <= 0 or dt <= 0 or sync_seconds <= 0 or batch_seconds < 0:
            raise ValueError("capacity, dt and sync_seconds must be > 0, batch_seconds >= 0")
        self.hpa, self.capacity, self.batch_seconds = hpa, capacity, batch_seconds
        self.dt, self.sync_seconds = dt, sync_seconds
        self.queued_tokens = 0.0  # All replicas together.
        self.steps: list[BacklogStep] = []

    def backlog_seconds(self, offered: float) -> float:
        replicas = max(1, self.hpa.replicas)
        utilization = min(1.0, offered / (replicas * self.capacity))
        return self.queued_tokens / replicas / self.capacity + utilization * self.batch_seconds

    def run(self, offered_tokens_per_second, duration: float) -> list[BacklogStep]:
        """offered_tokens_per_second: a function of t (seconds from 0 to duration)."""
        t, next_sync = 0.0, 0.0
        while t <= duration:
            offered = offered_tokens_per_second(t)
            served = max(1, self.hpa.replicas) * self.capacity
            self.queued_tokens = max(0.0, self.queued_tokens + (offered - served) * self.dt)
            backlog = self.backlog_seconds(offered)
            if t >= next_sync:
                self.hpa.step(t, backlog)
                next_sync += self.sync_seconds
            self.steps.append(BacklogStep(t, offered, backlog, self.hpa.replicas))
            t += self.dt
        return self.steps

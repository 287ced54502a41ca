"""Unit tests for tests/load/hpa_simulator.py: known answers from the Kubernetes documentation
(https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/, "Algorithm details"
and "Configurable scaling behavior") and from the controller's code, plus the shipped
k8s/base/scaledobject.yaml read the way the ramp test reads it."""

from __future__ import annotations

import pathlib
import sys
from dataclasses import replace

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from hpa_simulator import (DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, SHIPPED_SCALED_OBJECT, Behavior,
                           HPAConfig, HPASimulator, Policy, ScalingRules, config_from_scaled_object,
                           load_scaled_object, trigger_of, trigger_target)

# No stabilization, no rate limit: the bare algorithm.
FREE = Behavior(ScalingRules(0, "Max", (Policy("Percent", 100000, 1),)),
                ScalingRules(0, "Max", (Policy("Percent", 100, 1),)))


def sim(target=100.0, *, metric_type="Value", min_replicas=1, max_replicas=1000,
        behavior=FREE, initial=1, tolerance=0.1, time_scale=1.0) -> HPASimulator:
    return HPASimulator(HPAConfig(target=target, metric_type=metric_type,
                                  min_replicas=min_replicas, max_replicas=max_replicas,
                                  behavior=behavior, tolerance=tolerance),
                        initial_replicas=initial, time_scale=time_scale)


def rules(window, *policies, select="Max") -> ScalingRules:
    return ScalingRules(window, select, tuple(Policy(*p) for p in policies))


# --------------------------------------------------------------------------------------------
# The algorithm: desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)]


def test_docs_example_double_and_halve():
    # "if the current metric value is 200m, and the desired value is 100m, the number of
    # replicas will be doubled ... If the current value is instead 50m, you'll halve".
    s = sim(target=0.1, initial=4)
    assert s.step(0, 0.2).desired == 8
    s = sim(target=0.1, initial=4)
    assert s.step(0, 0.05).desired == 2


@pytest.mark.parametrize("current, metric, expected", [
    (1, 250, 3),   # ceil(1 x 2.5)
    (3, 150, 5),   # ceil(3 x 1.5) = ceil(4.5)
    (5, 20, 1),    # ceil(5 x 0.2)
    (4, 0, 1),     # ceil(0) = 0, raised to minReplicas
])
def test_value_metric(current, metric, expected):
    assert sim(initial=current).step(0, metric).desired == expected


@pytest.mark.parametrize("current, total, expected", [
    (10, 1090, 10),  # ratio 1.09: within the tolerance
    (10, 1110, 12),  # ratio 1.11: ceil(1110 / 100) = ceil(11.1)
    (10, 911, 10),   # ratio 0.911
    (10, 890, 9),    # ratio 0.89: ceil(8.9)
    (2, 500, 5),
])
def test_average_value_metric(current, total, expected):
    s = sim(metric_type="AverageValue", initial=current)
    assert s.step(0, total).desired == expected


@pytest.mark.parametrize("metric, expected", [
    (109.9, 10),  # |1 - 1.099| <= 0.1: no change
    (110.0, 11),  # float64: |1 - 1.1| = 0.10000000000000009 > 0.1, as in the controller
    (110.1, 12),  # ceil(10 x 1.101) = ceil(11.01)
    (90.0, 10),
    (89.9, 9),    # ceil(10 x 0.899) = ceil(8.99)
])
def test_tolerance_value(metric, expected):
    assert sim(initial=10).step(0, metric).desired == expected


def test_tolerance_is_configurable():
    assert sim(initial=10, tolerance=0.0).step(0, 105).desired == 11
    assert sim(initial=10, tolerance=0.2).step(0, 119).desired == 10


def test_value_metric_spread_over_replicas():
    # One replica's figure is total / replicas; desired = ceil(total / target) whatever the
    # current count, as long as the ratio is outside the tolerance.
    for current in (1, 2, 3, 7):
        s = sim(target=10, initial=current)
        assert s.step_total(0, 50).desired == 5, current
    s = sim(target=10, initial=1)
    assert [d.desired for d in s.run([(0, 50), (15, 50), (30, 20), (45, 20)], totals=True)] == \
        [5, 5, 2, 2]
    # AverageValue sums over replicas: the total is the metric.
    s = sim(target=10, metric_type="AverageValue", initial=3)
    assert s.metric_for_total(50) == 50 and s.step_total(0, 50).desired == 5


def test_milli_quantities():
    # KEDA truncates to milli units: 50 / 3 = 16.666 (not 16.6667), ratio x 3 = 4.9998 -> 5.
    s = sim(target=10, initial=3)
    assert s.step_total(0, 50).proposal == 5


# --------------------------------------------------------------------------------------------
# min / max


def test_min_max_bounds():
    s = sim(min_replicas=2, max_replicas=5, initial=2)
    d = s.step(0, 10000)
    assert (d.proposal, d.desired, d.reason) == (200, 5, "TooManyReplicas")
    d = s.step(1, 0)
    assert (d.proposal, d.desired, d.reason) == (0, 2, "TooFewReplicas")


def test_current_outside_bounds_is_corrected_at_once():
    s = sim(min_replicas=2, max_replicas=5, initial=9)
    assert s.step(0, 900).desired == 5  # The metric is not consulted.
    s = sim(min_replicas=3, max_replicas=5, initial=1)
    assert s.step(0, 0).desired == 3


# --------------------------------------------------------------------------------------------
# Stabilization


def test_scale_down_stabilization_uses_highest_recent_recommendation():
    # scaleDown.stabilizationWindowSeconds: 300 -- "the highest value from the specified
    # interval" of previously computed desired states.
    behavior = Behavior(FREE.scale_up, rules(300, ("Percent", 100, 15)))
    s = sim(target=10, initial=10, behavior=behavior)
    assert s.step(0, 10).desired == 10   # Recommendation 10 at t=0.
    assert s.step(60, 5).desired == 10   # Recommends 5; 10 is still in the window.
    assert s.step(200, 3).desired == 10  # Recommends ceil(10 x 0.3) = 3.
    assert s.step(299, 3).desired == 10
    # t=300: the t=0 sample is not newer than the cutoff; the highest left is 5 (t=60).
    d = s.step(300, 3)
    assert (d.proposal, d.stabilized, d.desired) == (3, 5, 5)
    # Metric 6 on 5 replicas recommends ceil(5 x 0.6) = 3; until t=360 the window still holds
    # the 5 recommended at t=60, then only 3s: (60, 360] starts after it.
    assert s.step(359, 6).desired == 5
    assert s.step(360, 6).desired == 3


def test_scale_up_stabilization_uses_lowest_recent_recommendation():
    behavior = Behavior(rules(60, ("Percent", 1000, 1)), FREE.scale_down)
    s = sim(target=10, initial=2, behavior=behavior)
    assert s.step(0, 10).desired == 2   # Recommends 2.
    assert s.step(30, 40).desired == 2  # Recommends 8; 2 is in the window.
    d = s.step(61, 20)                  # (1, 61]: 8 (t=30) and now ceil(2 x 2) = 4.
    assert (d.proposal, d.desired) == (4, 4)
    d = s.step(91, 10)                  # (31, 91]: 4 and now 4 -> 4.
    assert d.desired == 4


def test_default_behavior_scales_up_at_once_and_down_after_five_minutes():
    s = sim(target=10, initial=1, behavior=Behavior())
    assert s.step(0, 30).desired == 3
    for t in range(15, 300, 15):
        assert s.step(t, 1 / 3).desired == 3, t  # 1 rps over 3 replicas; wants 1
    assert s.step(300, 1 / 3).desired == 1


# --------------------------------------------------------------------------------------------
# Policies


def test_docs_default_scale_up_policies():
    # Default scaleUp: 4 pods or 100% per 15 s, whichever is more (selectPolicy Max).
    s = sim(target=1, initial=1, behavior=Behavior())
    d = s.step(0, 100)
    assert (d.proposal, d.desired, d.reason) == (100, 5, "ScaleUpLimit")  # max(1+4, 1x2)
    assert s.step(10, 20).desired == 5   # Within the same 15 s period: no more.
    assert s.step(16, 20).desired == 10  # max(5+4, 5x2)
    assert s.step(32, 10).desired == 20  # max(10+4, 10x2)
    assert s.step(48, 5).desired == 40


def test_docs_percent_900_scale_up():
    # "type: Percent, value: 900 ... 9 times the current number of pods may be added ...
    # 1 -> 10 -> 100 -> 1000" (one step per periodSeconds: 60).
    behavior = Behavior(rules(0, ("Percent", 900, 60)), DEFAULT_SCALE_DOWN)
    s = sim(target=1, initial=1, max_replicas=10000, behavior=behavior)
    counts = [s.step(t, 1e6 / max(1, s.replicas)).desired for t in (0, 30, 61, 122, 183)]
    assert counts == [10, 10, 100, 1000, 10000]  # The last one capped by maxReplicas.


def test_docs_scale_down_pods_and_percent_policies():
    # "scaleDown: policies: Pods 4 per 60 s, Percent 10 per 60 s ... if there are 80
    # replicas and the target has to be scaled down to 10 replicas then during the first step
    # 8 replicas will be reduced. In the next iteration when the number of replicas is 72, 10%
    # of the pods is 7.2 but the number is rounded up to 8 ... When the number of replicas falls
    # below 40, the first policy (Pods) is applied and 4 replicas will be reduced at a time."
    behavior = Behavior(DEFAULT_SCALE_UP, rules(0, ("Pods", 4, 60), ("Percent", 10, 60)))
    s = sim(target=10, initial=80, behavior=behavior)
    seen = []
    t = 0
    while s.replicas > 10:
        seen.append(s.step(t, 100 / s.replicas).desired)  # Total 100 rps: wants 10.
        # Nothing more within the same period.
        assert s.step(t + 30, 100 / s.replicas).desired == seen[-1]
        t += 61
    assert seen == [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    assert [a - b for a, b in zip([80] + seen, seen)][:2] == [8, 8]


def test_docs_select_policy_min_limits_scale_down():
    # "To ensure that no more than 5 Pods are removed per minute, you can add a second
    # scale-down policy with a fixed size of 5, and set selectPolicy to minimum."
    behavior = Behavior(DEFAULT_SCALE_UP, rules(0, ("Percent", 10, 60), ("Pods", 5, 60),
                                                select="Min"))
    s = sim(target=10, initial=100, behavior=behavior)
    assert s.step(0, 1).desired == 95   # Percent allows 90, Pods 95: the smaller change.
    s = sim(target=10, initial=30, behavior=behavior)
    assert s.step(0, 1).desired == 27   # Percent allows 27, Pods 25.
    # selectPolicy Max: the larger change.
    behavior = Behavior(DEFAULT_SCALE_UP, rules(0, ("Percent", 10, 60), ("Pods", 5, 60)))
    assert sim(target=10, initial=100, behavior=behavior).step(0, 1).desired == 90
    assert sim(target=10, initial=30, behavior=behavior).step(0, 1).desired == 25


def test_select_policy_min_scale_up():
    behavior = Behavior(rules(0, ("Pods", 4, 15), ("Percent", 100, 15), select="Min"),
                        DEFAULT_SCALE_DOWN)
    s = sim(target=1, initial=10, behavior=behavior)
    assert s.step(0, 100).desired == 14  # min(10+4, 20)
    s = sim(target=1, initial=2, behavior=behavior)
    assert s.step(0, 100).desired == 4   # min(2+4, 4)


def test_select_policy_disabled():
    # "selectPolicy: Disabled" turns scaling in that direction off.
    behavior = Behavior(DEFAULT_SCALE_UP, rules(0, ("Percent", 100, 15), select="Disabled"))
    s = sim(target=10, initial=8, behavior=behavior)
    assert s.step(0, 0.1).desired == 8
    assert s.step(600, 0.1).desired == 8
    assert s.step(615, 100).desired == 16  # Scaling up still works: max(8+4, 2 x 8).
    behavior = Behavior(rules(0, ("Pods", 4, 15), select="Disabled"), FREE.scale_down)
    s = sim(target=10, initial=2, behavior=behavior)
    assert s.step(0, 1000).desired == 2
    assert s.step(15, 1).desired == 1


def test_percent_scale_up_rounds_up_like_the_controller():
    behavior = Behavior(rules(0, ("Percent", 10, 60)), DEFAULT_SCALE_DOWN)
    # ceil(1 x 1.1) = 2: a small count still grows.
    assert sim(target=1, initial=1, behavior=behavior).step(0, 100).desired == 2
    assert sim(target=1, initial=10, behavior=behavior).step(0, 100).desired == 11
    # float64: 50 x 1.1 = 55.00000000000001, ceil -> 56 (as in the Go code).
    assert sim(target=1, initial=50, behavior=behavior).step(0, 1000).desired == 56


def test_scale_events_count_across_periods():
    # Pods 2 per 60 s: two scale-ups within one minute share the budget.
    behavior = Behavior(rules(0, ("Pods", 2, 60)), DEFAULT_SCALE_DOWN)
    s = sim(target=10, initial=1, behavior=behavior)
    assert s.step(0, 20).desired == 2   # Wants 2.
    assert s.step(20, 50).desired == 3  # Wants ceil(2 x 2.5) = 5; 1 left in this period.
    assert s.step(40, 50).desired == 3
    assert s.step(61, 50).desired == 4  # The t=0 event left the period; t=20's still counts.
    assert s.step(81, 50).desired == 5


def test_time_scale_compresses_windows_and_periods():
    behavior = Behavior(rules(0, ("Pods", 1, 60)), rules(300, ("Pods", 1, 60)))
    s = sim(target=10, initial=1, behavior=behavior, time_scale=10)
    assert s.behavior.scale_down.stabilization_window_seconds == 30
    assert s.behavior.scale_up.policies[0].period_seconds == 6
    assert s.step(0, 50).desired == 2
    assert s.step(5, 25).desired == 2
    assert s.step(6.5, 25).desired == 3
    assert s.step(20, 0).desired == 3   # Scale-down window (30 s here) still holds 5.
    assert s.step(37, 0).desired == 2   # Pods 1 per 6 s.
    assert s.step(44, 0).desired == 1


def test_time_must_not_go_backwards():
    s = sim()
    s.step(10, 1)
    with pytest.raises(ValueError):
        s.step(9, 1)


# --------------------------------------------------------------------------------------------
# Reading behavior from YAML


INLINE = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: tipperary}
spec:
  scaleTargetRef: {name: tipperary}
  minReplicaCount: 2
  maxReplicaCount: 12
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleUp:
          stabilizationWindowSeconds: 0
          policies:
            - {type: Percent, value: 100, periodSeconds: 15}
            - {type: Pods, value: 2, periodSeconds: 15}
          selectPolicy: Max
        scaleDown:
          stabilizationWindowSeconds: 120
          policies:
            - {type: Percent, value: 50, periodSeconds: 60}
  triggers:
    - type: prometheus
      name: rps
      metadata:
        serverAddress: http://prometheus:9090
        query: sum(rate(tipperary_http_requests_total[30s]))
        threshold: "40"
    - type: metrics-api
      name: direct
      metricType: Value
      metadata:
        url: http://tipperary:9901/autoscaling
        valueLocation: routes.POST /v1/embeddings.rps_10s
        targetValue: "25"
"""


def test_inline_scaled_object():
    so = load_scaled_object("---\nkind: ConfigMap\n---\n" + INLINE)
    config = config_from_scaled_object(so)
    assert (config.min_replicas, config.max_replicas) == (2, 12)
    assert (config.target, config.metric_type) == (40.0, "AverageValue")  # First trigger.
    up, down = config.behavior.scale_up, config.behavior.scale_down
    assert up == ScalingRules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 2, 15)))
    assert down == ScalingRules(120, "Max", (Policy("Percent", 50, 60),))  # selectPolicy default
    direct = config_from_scaled_object(so, trigger="direct")
    assert (direct.target, direct.metric_type) == (25.0, "Value")
    assert config_from_scaled_object(so, trigger="metrics-api").target == 25.0
    override = config_from_scaled_object(so, target=10, metric_type="Value")
    assert (override.target, override.metric_type) == (10, "Value")

    s = HPASimulator(direct)
    assert s.replicas == 2
    assert s.step_total(0, 300).desired == 4        # Wants 12; max(2+2, 2x2) = 4.
    assert s.step_total(15, 300).desired == 8
    assert s.step_total(30, 300).desired == 12      # maxReplicaCount.
    assert s.step_total(45, 0).desired == 12        # 120 s scale-down window.
    assert s.step_total(150, 0).desired == 6        # Then 50% per 60 s.
    assert s.step_total(165, 0).desired == 6
    assert s.step_total(211, 0).desired == 3
    assert s.step_total(272, 0).desired == 2        # minReplicaCount.


def test_defaults_when_behavior_absent():
    so = yaml.safe_load(INLINE)
    del so["spec"]["advanced"]
    del so["spec"]["minReplicaCount"]
    del so["spec"]["maxReplicaCount"]
    config = config_from_scaled_object(so)
    assert config.behavior == Behavior(DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    assert (config.min_replicas, config.max_replicas) == (1, 100)  # KEDA: min 0 -> HPA min 1.
    # Only scaleDown given: scaleUp is defaulted whole, scaleDown's missing fields filled.
    b = Behavior.from_dict({"scaleDown": {"stabilizationWindowSeconds": 60}})
    assert b.scale_up == DEFAULT_SCALE_UP
    assert b.scale_down == ScalingRules(60, "Max", DEFAULT_SCALE_DOWN.policies)


@pytest.mark.parametrize("bad", [
    {"scaleUp": {"policies": []}},
    {"scaleUp": {"policies": [{"type": "Pod", "value": 1, "periodSeconds": 15}]}},
    {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}},
    {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}},
    {"scaleDown": {"selectPolicy": "Maximum"}},
    {"scaleDown": {"stabilizationWindowSeconds": 3601}},
])
def test_invalid_behavior_is_rejected(bad):
    with pytest.raises(ValueError):
        Behavior.from_dict(bad)


def test_missing_manifest_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        HPASimulator.from_scaled_object(tmp_path / "none.yaml", target=1)
    with pytest.raises(ValueError):
        load_scaled_object("kind: Deployment\nmetadata: {name: x}\n")


# --------------------------------------------------------------------------------------------
# The shipped ScaledObject: what the ramp test uses by default.


def _shipped() -> dict:
    if not SHIPPED_SCALED_OBJECT.is_file():
        pytest.fail(f"{SHIPPED_SCALED_OBJECT} is missing: the simulator's default behavior comes "
                    f"from the shipped ScaledObject", pytrace=False)
    return load_scaled_object()


def test_shipped_scaled_object_is_what_the_simulator_uses():
    so = _shipped()
    spec = so["spec"]
    s = HPASimulator.from_scaled_object(target=10, metric_type="Value")  # The default path.
    config = s.config
    assert config.min_replicas == max(1, int(spec.get("minReplicaCount", 0)))
    assert config.max_replicas == int(spec.get("maxReplicaCount", 100))
    assert config.min_replicas < config.max_replicas, "the shipped ScaledObject cannot scale"
    raw = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    assert raw, "the shipped ScaledObject should tune the HPA behavior"
    for key, parsed in (("scaleUp", config.behavior.scale_up),
                        ("scaleDown", config.behavior.scale_down)):
        given = raw.get(key)
        if given is None:
            continue
        if "stabilizationWindowSeconds" in given:
            assert parsed.stabilization_window_seconds == given["stabilizationWindowSeconds"]
        if "selectPolicy" in given:
            assert parsed.select_policy == given["selectPolicy"]
        if "policies" in given:
            assert [(p.type, p.value, p.period_seconds) for p in parsed.policies] == \
                [(p["type"], p["value"], p["periodSeconds"]) for p in given["policies"]]
    # Every trigger names a per-replica target the simulator can read.
    for trigger in spec["triggers"]:
        if trigger.get("type") in ("prometheus", "metrics-api", "external"):
            target, metric_type = trigger_target(trigger)
            assert target > 0 and metric_type in ("Value", "AverageValue"), trigger


def test_shipped_behavior_scales_up_promptly_and_down_after_its_window():
    _shipped()
    s = HPASimulator.from_scaled_object(target=10, metric_type="Value")
    b, c = s.behavior, s.config
    if b.scale_up.select_policy == "Disabled" or b.scale_down.select_policy == "Disabled":
        pytest.skip("the shipped ScaledObject disables scaling in one direction")
    # A load of max_replicas x target, polled every 15 s (the HPA's sync period).
    t, total = 0.0, c.max_replicas * 10.0
    while s.replicas < c.max_replicas and t < 3600:
        s.step_total(t, total)
        t += 15
    assert s.replicas == c.max_replicas
    up_time = t - 15
    # The scale-up window delays the first step by at most its length (+1 sync).
    first_up = next(d.t for d in s.history if d.desired > d.current)
    assert first_up <= b.scale_up.stabilization_window_seconds + 15
    # Then the load stops: nothing happens within the scale-down window, then down to min.
    t0 = t
    while s.replicas > c.min_replicas and t < t0 + 3600:
        s.step_total(t, 0.0)
        t += 15
    assert s.replicas == c.min_replicas
    first_down = next(d.t for d in s.history if d.desired < d.current)
    window = b.scale_down.stabilization_window_seconds
    last_busy = t0 - 15  # The last sync that saw the load.
    assert window <= first_down - last_busy <= window + 15
    print(f"shipped behavior, {c.min_replicas}->{c.max_replicas} replicas: max after "
          f"{up_time:.0f} s, first scale-down {first_down - t0:.0f} s after the load stopped, "
          f"min after {t - 15 - t0:.0f} s")


# --------------------------------------------------------------------------------------------
# backlog_seconds: a ramp replayed on the queue it builds (docs/autoscaling.md#backlog-seconds)

from hpa_simulator import BacklogReplay  # noqa: E402

CAPACITY = 20000.0  # Real tokens/s one replica sustains.
DURATION = 3600


def ramp(peak: float, rise=(300, 900), fall=(1500, 2100)):
    """0 -> peak tokens/s over `rise`, held, then back to 0 over `fall` (seconds)."""
    def offered(t: float) -> float:
        if t < rise[0]:
            return 0.0
        if t < rise[1]:
            return peak * (t - rise[0]) / (rise[1] - rise[0])
        if t < fall[0]:
            return peak
        if t < fall[1]:
            return peak * (fall[1] - t) / (fall[1] - fall[0])
        return 0.0
    return offered


def mean_replicas(steps) -> float:
    return sum(s.replicas for s in steps) / len(steps)


def backlog_replay(peak: float, target: float = 2.0) -> BacklogReplay:
    # The shipped behavior, with room to grow (the base manifest caps replicas at a few).
    shipped = HPASimulator.from_scaled_object(target=target, metric_type="Value").config
    hpa = HPASimulator(replace(shipped, max_replicas=100))
    replay = BacklogReplay(hpa, capacity=CAPACITY, batch_seconds=0.05)
    replay.run(ramp(peak), DURATION)
    return replay


def test_backlog_ramp_follows_the_work_and_holds_the_queue_near_the_target():
    peak = 8 * CAPACITY
    replay = backlog_replay(peak)
    hpa, steps = replay.hpa, replay.steps
    before = [s for s in steps if s.t < 300]
    plateau = [s for s in steps if 1200 <= s.t < 1500]
    after = [s for s in steps if s.t >= DURATION - 60]
    # Idle: the minimum.
    assert {s.replicas for s in before} == {hpa.config.min_replicas}
    # The plateau: on average enough replicas for the work (8 replicas' capacity), not half as
    # many again. Backlog alone scales in until the replicas run at capacity, so the count
    # hunts around the need (docs/autoscaling.md#backlog-seconds says why and what to pair it with).
    assert 8 <= mean_replicas(plateau) <= 12, [s.replicas for s in plateau]
    # The queue a text waits in stays bounded on the plateau: a few targets at worst.
    assert max(s.backlog_seconds for s in plateau) <= 3 * hpa.config.target
    # The rise built a backlog (the signal reacted to work, not to requests).
    assert max(s.backlog_seconds for s in steps if s.t < 1200) > hpa.config.target
    # After the fall and the scale-down window: back to the minimum, queue empty.
    assert {s.replicas for s in after} == {hpa.config.min_replicas}
    assert replay.queued_tokens == 0


def test_backlog_scales_with_text_length_where_requests_per_second_cannot():
    # The same 200 requests/s, of 100-token texts and of 400-token texts: rps is the same, the
    # work is four times more. Scaling on backlog_seconds gives about four times the replicas.
    rps = 300.0
    short = backlog_replay(rps * 100)  # 1.5 replicas' capacity.
    long = backlog_replay(rps * 400)  # 6 replicas' capacity.
    plateau = lambda r: mean_replicas([s for s in r.steps if 1200 <= s.t < 1500])  # noqa: E731
    assert 1.5 <= plateau(short) <= 4
    assert 6 <= plateau(long) <= 10
    assert plateau(long) >= 2 * plateau(short)
    # An rps trigger sees the same 200 requests/s in both and sizes both alike.
    by_rps = [HPASimulator.from_scaled_object(target=50, metric_type="Value") for _ in range(2)]
    for s in by_rps:
        for t in range(0, 600, 15):
            s.step_total(t, rps)
    assert by_rps[0].replicas == by_rps[1].replicas == 4


def test_backlog_replay_rejects_nonsense():
    hpa = HPASimulator.from_scaled_object(target=2, metric_type="Value")
    with pytest.raises(ValueError):
        BacklogReplay(hpa, capacity=0)

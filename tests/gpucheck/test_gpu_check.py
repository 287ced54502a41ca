"""scripts/gpu-check without a GPU: the summary it writes from the GPU run's outputs, and its
refusal to pass on a machine with no GPU. The inputs below have the exact form the real tools
write (ctest --output-junit, the real-model test's "GPU-CHECK cosine" line, gpu_encoder_bench's
"GPU-CHECK" lines)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "scripts" / "gpu_check_summary.py"
SEQS, BATCHES, DTYPES = (16, 128, 256), (1, 32, 256), ("float16", "bfloat16")


def junit(cases):
    body = ""
    for name, status in cases:
        inner = {"run": "", "skip": '<skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>',
                 "fail": '<failure message="Failed"/>'}[status]
        body += (f'<testcase name="{name}" classname="{name}" time="0.5" '
                 f'status="{"notrun" if status == "skip" else status}">{inner}'
                 f"<system-out>[ RUN      ] {name}</system-out></testcase>\n")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="(empty)">\n{body}</testsuite>\n'


def write_run(out, gpu_cases=None, cosine=DTYPES, bench_rows=None, extra_bench="", worst=0.99942):
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.env").write_text("gpu=NVIDIA H200, 580.159.04, 143771 MiB, 9.0\nnvcc=release 13.0\n")
    (out / "phases.env").write_text("configure_rc=0\nbuild_rc=0\nctest_gpu_rc=0\nctest_cpu_rc=0\nbench_rc=0\n")
    if gpu_cases is None:
        gpu_cases = [("DTypes/KernelTest.Softmax/Float16", "run"),
                     ("DTypes/CudaEncoderTest.RealModelMatchesReferenceFixture/Float16", "run")]
    (out / "ctest-gpu.xml").write_text(junit(gpu_cases))
    (out / "ctest-cpu.xml").write_text(junit([("HostSafetensorsTest.ReadsF32F16AndBf16AsFloat", "run")]))
    log = "".join(f"GPU-CHECK cosine dtype={d} texts=312 worst={worst:.6f} gate="
                  f"{0.999 if d == 'float16' else 0.995:.4f} file_dtypes=F16x40,F32x64\n" for d in cosine)
    (out / "tests.log").write_text("[ RUN      ] x\n" + log)
    if bench_rows is None:
        bench_rows = [(d, s, b) for d in DTYPES for s in SEQS for b in BATCHES]
    bench = "device: NVIDIA H200 (sm_90)\nGPU-CHECK matmul dtype=bfloat16 m=8192 n=8192 k=8192 tflops=780.5\n"
    for d, s, b in bench_rows:
        sps = 120000.0 if (s, b) == (128, 256) else 40000.0
        bench += (f"GPU-CHECK bench variant=reference dtype={d} seq={s} batch={b} "
                  f"sentences_per_s={sps} ms_per_batch={1000.0 * b / sps:.4f} tflops=100.00 "
                  f"fraction_of_peak=0.1281\n")
    (out / "bench.log").write_text(bench + extra_bench)
    return out


def summarize(out, *flags):
    r = subprocess.run([sys.executable, str(SUMMARY), str(out), *flags], capture_output=True,
                       text=True, timeout=60)
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "summary.md").read_text().startswith(
        "# GPU check: PASSED" if r.returncode == 0 else "# GPU check: FAILED")
    return r, summary


def test_complete_run_passes_and_reports_every_figure(tmp_path):
    r, s = summarize(write_run(tmp_path))
    assert r.returncode == 0, r.stdout
    assert s["ok"] and s["problems"] == []
    assert s["worst_cosine"]["float16"]["worst"] == 0.99942
    assert s["worst_cosine"]["bfloat16"]["gate"] == 0.995
    assert s["matmul_bf16_tflops"] == 780.5
    assert len(s["bench"]) == 18
    goals = {(g["goal"].split()[1], g["dtype"]): g for g in s["goals"]}
    assert goals[("100000", "float16")]["met"] and goals[("100000", "float16")]["at_batch"] == 256
    md = (tmp_path / "summary.md").read_text()
    assert "| float16 | 0.999420 | 0.999 | 312 | F16x40,F32x64 |" in md
    assert "780.5 TFLOP/s" in md


def test_a_skipped_or_failed_test_fails_the_check(tmp_path):
    r, s = summarize(write_run(tmp_path / "skip", gpu_cases=[("DTypes/KernelTest.Softmax/Float16", "skip")]))
    assert r.returncode == 1
    assert "test DTypes/KernelTest.Softmax/Float16: skipped" in s["problems"]
    r, s = summarize(write_run(tmp_path / "fail", gpu_cases=[("A.B", "run"), ("A.C", "fail")]))
    assert r.returncode == 1 and s["problems"] == ["test A.C: failed"]
    r, s = summarize(write_run(tmp_path / "none", gpu_cases=[]))
    assert r.returncode == 1 and "no test labelled gpu ran" in s["problems"]


def test_a_missing_or_low_cosine_line_fails_the_check(tmp_path):
    r, s = summarize(write_run(tmp_path / "missing", cosine=("float16",)))
    assert r.returncode == 1
    assert s["problems"] == ["no real-model cosine line for bfloat16 (GPU-CHECK cosine dtype=bfloat16)"]
    r, s = summarize(write_run(tmp_path / "low", worst=0.9985))
    assert r.returncode == 1 and "float16 worst cosine 0.998500 < gate 0.999" in s["problems"]


def test_a_bench_that_measured_nothing_or_refused_a_variant_fails(tmp_path):
    r, s = summarize(write_run(tmp_path / "empty", bench_rows=[]))
    assert r.returncode == 1
    assert "bench: no reference float16 seq 128 batch 256 row" in s["problems"]
    unknown = ('GPU-CHECK variant-skipped variant=fused dtype=float16 unknown=1 '
               'reason="unknown variant "fused" (this build has: reference)"\n')
    r, s = summarize(write_run(tmp_path / "unknown", extra_bench=unknown))
    assert r.returncode == 0 and s["variants_not_built"] == [
        'fused (float16): unknown variant "fused" (this build has: reference)']
    refused = 'GPU-CHECK variant-skipped variant=fused dtype=float16 unknown=0 reason="out of memory"\n'
    r, s = summarize(write_run(tmp_path / "refused", extra_bench=refused))
    assert r.returncode == 1 and "variant refused: fused (float16): out of memory" in s["problems"]
    no_matmul = write_run(tmp_path / "nomatmul")
    text = (no_matmul / "bench.log").read_text().replace("GPU-CHECK matmul", "matmul")
    (no_matmul / "bench.log").write_text(text)
    r, s = summarize(no_matmul)
    assert r.returncode == 1 and s["problems"] == ["no measured bf16 matmul rate (GPU-CHECK matmul)"]


def ablation_lines(variant, base_ms, stages):
    """gpu_encoder_bench --ablate's lines: stage -> (ms with it removed, ms with it doubled)."""
    head = f"GPU-CHECK ablate variant={variant} dtype=float16 seq=128 batch=256"
    text = f"{head} stage=none scale=1 ms_per_batch={base_ms:.4f}\n"
    for stage, (removed, doubled) in stages.items():
        text += f"{head} stage={stage} scale=0 ms_per_batch={removed:.4f}\n"
        text += f"{head} stage={stage} scale=2 ms_per_batch={doubled:.4f}\n"
    return text


def test_stage_ablation_says_where_the_time_goes_and_names_the_dominant_stage(tmp_path):
    # fused misses 100k sentences/s at 128 tokens (256 / 4 ms = 64k); attention holds the most:
    # doubled - base = 1.6 ms, base - removed = 1.4 ms, mean 1.5 ms of 4.0 (37.5%).
    fused_rows = "".join(
        f"GPU-CHECK bench variant=fused dtype={d} seq=128 batch={b} sentences_per_s={256 / 0.004:.1f} "
        f"ms_per_batch=4.0000 tflops=50.00 fraction_of_peak=0.0641\n" for d in DTYPES for b in (1, 256))
    # fused+graphs (no ablation of its own) misses too: it is read from fused's ablation.
    fused_rows += ("GPU-CHECK bench variant=fused+graphs dtype=float16 seq=128 batch=256 "
                   "sentences_per_s=80000.0 ms_per_batch=3.2000 tflops=60.00 fraction_of_peak=0.08\n")
    ablation = ablation_lines("fused", 4.0, {"attention": (2.6, 5.6), "ffn_gemms": (3.0, 5.0),
                                             "gelu": (3.8, 4.2), "pooling": (4.0, 4.01)})
    ablation += ablation_lines("reference", 2.0, {"attention": (1.5, 2.5), "qkv_permute": (1.7, 2.3)})
    r, s = summarize(write_run(tmp_path / "run", extra_bench=fused_rows + ablation), "--ablate")
    assert r.returncode == 0, r.stdout  # goals never gate
    a = s["ablation"]["fused"]
    assert a["base_ms"] == 4.0 and a["dominant"] == "attention"
    assert [x["stage"] for x in a["stages"]] == ["attention", "ffn_gemms", "gelu", "pooling"]
    attention = a["stages"][0]
    assert abs(attention["doubled_ms"] - 1.6) < 1e-9 and abs(attention["removed_ms"] - 1.4) < 1e-9
    assert abs(attention["ms"] - 1.5) < 1e-9 and abs(attention["share"] - 0.375) < 1e-9
    assert s["ablation"]["reference"]["dominant"] == "attention"
    goals = [g for g in s["goals"] if g["goal"].startswith(">= 100000")]
    missed = [g for g in goals if not g["met"]]
    assert {(g["variant"], g["dtype"]) for g in missed} == {
        ("fused", "float16"), ("fused", "bfloat16"), ("fused+graphs", "float16")}
    assert all(g["held_by"] == "attention" for g in missed)
    assert all("held_by" not in g for g in goals if g["met"])  # reference meets it: 120k
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "## Where the time goes: fused (float16, 128 tokens x 256, 4.000 ms per batch)" in md
    assert "| attention | 1.600 | 1.400 | 1.500 | 37.5% |" in md
    assert "attention: 1.500 of 4.000 ms per batch (37.5%; ablation of fused in float16" in md


def test_missing_stage_ablation_is_a_problem_only_when_asked_for(tmp_path):
    r, s = summarize(write_run(tmp_path / "plain"))
    assert r.returncode == 0 and s["ablation"] == {}
    r, s = summarize(write_run(tmp_path / "asked"), "--ablate")
    assert r.returncode == 1
    assert s["problems"] == ["bench: no stage ablation (GPU-CHECK ablate ... stage=none) lines"]
    # A missed goal with no ablation for its variant says so rather than naming a stage.
    slow = "".join(f"GPU-CHECK bench variant=fused dtype=float16 seq=128 batch=256 "
                   f"sentences_per_s=50000.0 ms_per_batch=5.1200 tflops=40.00 "
                   f"fraction_of_peak=0.05\n" for _ in range(1))
    r, s = summarize(write_run(tmp_path / "noablation", extra_bench=slow))
    g = [g for g in s["goals"] if g["variant"] == "fused" and g["goal"].startswith(">= 100000")][0]
    assert not g["met"] and g["held_by"] is None
    assert g["held_by_note"] == "no stage ablation for this variant"


def test_gpu_check_without_a_gpu_fails_loudly(tmp_path):
    # A machine whose nvidia-smi finds no device (as when the driver is missing), with a stand-in
    # nvcc and carried folder so that the check reaches its GPU probe on any machine.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    (bin_dir / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / "MANIFEST").write_text("[packages]\nlibabsl-dev 1\n[sizes]\n")
    out = tmp_path / "out"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", GPU_CARRY_DIR=str(carry),
               GPU_CHECK_BUILD_DIR=str(tmp_path / "build"))
    r = subprocess.run([str(ROOT / "scripts" / "gpu-check"), "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "gpu-check: FAILED: no GPU" in r.stderr
    assert "nvidia-smi failed: No devices were found" in r.stdout
    assert not (tmp_path / "build").exists()  # stopped before building anything
    s = json.loads((out / "summary.json").read_text())
    assert not s["ok"] and s["problems"][0].startswith("no GPU")

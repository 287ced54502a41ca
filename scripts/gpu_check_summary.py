#!/usr/bin/env python3
"""Reads what scripts/gpu-check left in its output folder and writes summary.json + summary.md.

Inputs (all in OUT): probe.env (KEY=value lines: versions, GPU, carried packages), phases.env
(phase=exit status/seconds), ctest-gpu.xml and ctest-cpu.xml (ctest --output-junit), tests.log
(ctest's full LastTest.log: the tests' own output), bench.log (gpu_encoder_bench's output).

Exit status 0 only when the check checked everything: every test ran and passed (a skip is a
failure: TIPPERARY_REQUIRE_GPU=1 already turns GPU skips into failures, this catches the rest),
at least one `gpu` test ran, a "GPU-CHECK cosine" line exists for every dtype (float16 and
bfloat16) and meets its gate, the bf16 matmul microbench measured a rate, and the bench measured
every (dtype, seq, batch) point of the reference variant. A variant the build does not know
("unknown variant") is listed as not built, not as a failure. The throughput goals are reported
(met / missed), never gating: they are goals, not correctness.
  python3 scripts/gpu_check_summary.py OUT [--seqs 16,128,256] [--batches 1,32,256]
"""
import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

DTYPES = ("float16", "bfloat16")
GOAL_SENTENCES_PER_S_128 = 100_000
GOAL_BATCH1_MS = 1.0


def read_env(path):
    out = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8", errors="replace"):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                out[k.strip()] = v.strip()
    return out


def read_junit(path):
    """[{name, status: passed|failed|skipped|notrun, seconds}] from ctest --output-junit."""
    if not os.path.exists(path):
        return None
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        status = case.get("status", "run")
        if case.find("failure") is not None or status == "fail":
            result = "failed"
        elif case.find("skipped") is not None:
            result = "skipped"  # ctest: status="notrun" with <skipped message=...>
        elif status in ("notrun", "disabled"):
            result = status
        else:
            result = "passed"
        tests.append({"name": case.get("name"), "result": result,
                      "seconds": float(case.get("time", "0") or 0)})
    return tests


def parse_fields(line):
    """key=value pairs; a final reason="..." runs to the end of the line (it may hold quotes)."""
    fields = {}
    at = line.find(' reason="')
    if at >= 0:
        fields["reason"] = line[at + 9:].rstrip().removesuffix('"')
        line = line[:at]
    for m in re.finditer(r'(\w+)=(\S+)', line):
        fields[m.group(1)] = m.group(2)
    return fields


def summarize(out, seqs, batches):
    probe = read_env(os.path.join(out, "probe.env"))
    phases = read_env(os.path.join(out, "phases.env"))
    problems = [phases["failure"]] if "failure" in phases else []
    for phase, status in phases.items():
        if phase.endswith("_rc") and status != "0":
            problems.append(f"phase {phase[:-3]} exited {status}")

    tests = []
    for label, name in (("gpu", "ctest-gpu.xml"), ("cpu", "ctest-cpu.xml")):
        got = read_junit(os.path.join(out, name))
        if got is None:
            problems.append(f"no {name}: the {label} tests did not run")
            continue
        if label == "gpu" and not got:
            problems.append("no test labelled gpu ran")
        for t in got:
            t["label"] = label
            if t["result"] != "passed":
                problems.append(f"test {t['name']}: {t['result']}")
        tests += got

    log = ""
    if os.path.exists(os.path.join(out, "tests.log")):
        log = open(os.path.join(out, "tests.log"), encoding="utf-8", errors="replace").read()
    cosine = {}
    for line in log.splitlines():
        if "GPU-CHECK cosine" in line:
            f = parse_fields(line[line.index("GPU-CHECK cosine"):])
            d = f.get("dtype")
            # One line per (dtype, variant): the dtype's figure is its worst variant's.
            if d in DTYPES:
                worst = float(f["worst"])
                entry = cosine.setdefault(d, {"worst": worst, "gate": float(f["gate"]),
                                              "texts": int(f["texts"]),
                                              "model_file_dtypes": f.get("file_dtypes", ""),
                                              "variants": {}})
                entry["worst"] = min(entry["worst"], worst)
                entry["variants"][f.get("variant", "reference")] = worst
    for d in DTYPES:
        if d not in cosine:
            problems.append(f"no real-model cosine line for {d} (GPU-CHECK cosine dtype={d})")
        elif cosine[d]["worst"] < cosine[d]["gate"]:
            problems.append(f"{d} worst cosine {cosine[d]['worst']:.6f} < gate {cosine[d]['gate']}")

    bench_text = ""
    if os.path.exists(os.path.join(out, "bench.log")):
        bench_text = open(os.path.join(out, "bench.log"), encoding="utf-8", errors="replace").read()
    matmul = None
    rows, not_built, variant_failures = [], [], []
    for line in bench_text.splitlines():
        if line.startswith("GPU-CHECK matmul"):
            matmul = float(parse_fields(line)["tflops"])
        elif line.startswith("GPU-CHECK bench"):
            f = parse_fields(line)
            rows.append({"variant": f["variant"], "dtype": f["dtype"], "seq": int(f["seq"]),
                         "batch": int(f["batch"]),
                         "sentences_per_s": float(f["sentences_per_s"]),
                         "ms_per_batch": float(f["ms_per_batch"]), "tflops": float(f["tflops"]),
                         "fraction_of_matmul": float(f["fraction_of_peak"])})
        elif line.startswith("GPU-CHECK variant-skipped"):
            f = parse_fields(line)
            entry = f"{f['variant']} ({f['dtype']}): {f.get('reason', '')}"
            (not_built if f.get("unknown") == "1" else variant_failures).append(entry)
    if not matmul:
        problems.append("no measured bf16 matmul rate (GPU-CHECK matmul)")
    for v in variant_failures:
        problems.append(f"variant refused: {v}")
    for d in DTYPES:
        for s in seqs:
            for b in batches:
                if not any(r["variant"] == "reference" and r["dtype"] == d and r["seq"] == s
                           and r["batch"] == b for r in rows):
                    problems.append(f"bench: no reference {d} seq {s} batch {b} row")

    goals = []
    for variant in sorted({r["variant"] for r in rows}):
        for d in DTYPES:
            at128 = [r for r in rows if r["variant"] == variant and r["dtype"] == d and r["seq"] == 128]
            if at128:
                best = max(at128, key=lambda r: r["sentences_per_s"])
                goals.append({"goal": f">= {GOAL_SENTENCES_PER_S_128} sentences/s at 128 tokens",
                              "variant": variant, "dtype": d, "value": best["sentences_per_s"],
                              "at_batch": best["batch"],
                              "met": best["sentences_per_s"] >= GOAL_SENTENCES_PER_S_128})
            one = [r for r in at128 if r["batch"] == 1]
            if one:
                goals.append({"goal": f"batch-1 latency <= {GOAL_BATCH1_MS} ms at 128 tokens "
                                      "(bench, Encode incl. copies; the worker adds its queue)",
                              "variant": variant, "dtype": d, "value": one[0]["ms_per_batch"],
                              "met": one[0]["ms_per_batch"] <= GOAL_BATCH1_MS})
    for d, c in cosine.items():
        goals.append({"goal": "cosine >= 0.999 vs sentence-transformers (fixture corpus)",
                      "variant": "reference", "dtype": d, "value": c["worst"],
                      "met": c["worst"] >= 0.999})

    summary = {"ok": not problems, "problems": problems, "probe": probe, "phases": phases,
               "tests": tests, "worst_cosine": cosine, "matmul_bf16_tflops": matmul,
               "bench": rows, "variants_not_built": not_built, "goals": goals}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(markdown(summary, seqs, batches))
    return summary


def markdown(s, seqs, batches):
    p = s["probe"]
    lines = [f"# GPU check: {'PASSED' if s['ok'] else 'FAILED'}", ""]
    if s["problems"]:
        lines += ["## Problems", ""] + [f"- {x}" for x in s["problems"]] + [""]
    lines += ["## Machine", "", "| what | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(p.items())] + [""]
    lines += ["## Phases", "", "| phase | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in s["phases"].items()] + [""]
    counts = {}
    for t in s["tests"]:
        counts[t["result"]] = counts.get(t["result"], 0) + 1
    lines += ["## Tests", "", ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none",
              "", "| test | label | result | s |", "| --- | --- | --- | --- |"]
    lines += [f"| {t['name']} | {t['label']} | {t['result']} | {t['seconds']:.2f} |"
              for t in s["tests"]] + [""]
    lines += ["## Real model: worst cosine vs sentence-transformers (fixture corpus)", "",
              "| dtype | worst cosine | gate | texts | model file dtypes |",
              "| --- | --- | --- | --- | --- |"]
    for d in DTYPES:
        c = s["worst_cosine"].get(d)
        lines.append(f"| {d} | {c['worst']:.6f} | {c['gate']} | {c['texts']} | "
                     f"{c['model_file_dtypes']} |" if c else f"| {d} | MISSING | | | |")
    mm = s["matmul_bf16_tflops"]
    lines += ["", "## Throughput (random weights, model shape; Encode incl. host packing and copies)",
              "", f"Measured bf16 GEMM rate (8192^3, cuBLAS): {mm:.1f} TFLOP/s" if mm
              else "Measured bf16 GEMM rate: MISSING", ""]
    lines += ["| variant | dtype | seq | batch | sentences/s | ms/batch | TFLOP/s | of bf16 GEMM |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in s["bench"]:
        lines.append(f"| {r['variant']} | {r['dtype']} | {r['seq']} | {r['batch']} | "
                     f"{r['sentences_per_s']:.0f} | {r['ms_per_batch']:.3f} | {r['tflops']:.1f} | "
                     f"{100 * r['fraction_of_matmul']:.1f}% |")
    if s["variants_not_built"]:
        lines += ["", "Variants not in this build: " + "; ".join(s["variants_not_built"])]
    lines += ["", "## Goals (reported, not gating)", "", "| goal | variant | dtype | value | met |",
              "| --- | --- | --- | --- | --- |"]
    for g in s["goals"]:
        lines.append(f"| {g['goal']} | {g['variant']} | {g['dtype']} | {g['value']:.6g} | "
                     f"{'yes' if g['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seqs", default="16,128,256")
    ap.add_argument("--batches", default="1,32,256")
    a = ap.parse_args()
    s = summarize(a.out, [int(x) for x in a.seqs.split(",")], [int(x) for x in a.batches.split(",")])
    for x in s["problems"]:
        print(f"gpu-check: {x}")
    print(f"gpu-check: {'PASSED' if s['ok'] else 'FAILED'}; summary in {a.out}/summary.md and summary.json")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

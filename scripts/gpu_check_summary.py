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

Stage ablation (gpu_encoder_bench --ablate, "GPU-CHECK ablate ... stage=S scale=0|1|2
ms_per_batch=T" lines; stage=none scale=1 is the normal pass): per variant, a "where the time
goes" table with each stage's ms per batch estimated twice, doubled - base and base - removed,
their mean and its share of the base; when the 100k sentences/s goal is missed, the goal names the
variant's dominant stage. With --ablate (scripts/gpu-check passes it), missing ablation lines are
a problem.
  python3 scripts/gpu_check_summary.py OUT [--seqs 16,128,256] [--batches 1,32,256] [--ablate]
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


def where_the_time_goes(ablate_rows):
    """{variant: {dtype, seq, batch, base_ms, stages: [{stage, removed_ms, doubled_ms, ms,
    share}] sorted by ms, dominant}} from the ablation lines. removed_ms = base - (stage removed),
    doubled_ms = (stage doubled) - base; ms is their mean (either alone when the other is
    missing), share = ms / base. The two estimates differ when a stage overlaps others or when
    removing it changes what later stages compute (e.g. NaNs); both are shown."""
    out = {}
    for variant in sorted({r["variant"] for r in ablate_rows}):
        rows = [r for r in ablate_rows if r["variant"] == variant]
        base = [r for r in rows if r["stage"] == "none"]
        if not base:
            continue
        b = base[0]
        stages = []
        for stage in dict.fromkeys(r["stage"] for r in rows if r["stage"] != "none"):
            by_scale = {r["scale"]: r["ms_per_batch"] for r in rows if r["stage"] == stage}
            removed = b["ms_per_batch"] - by_scale[0] if 0 in by_scale else None
            doubled = by_scale[2] - b["ms_per_batch"] if 2 in by_scale else None
            known = [x for x in (removed, doubled) if x is not None]
            ms = sum(known) / len(known)
            stages.append({"stage": stage, "removed_ms": removed, "doubled_ms": doubled, "ms": ms,
                           "share": ms / b["ms_per_batch"] if b["ms_per_batch"] > 0 else 0.0})
        stages.sort(key=lambda x: -x["ms"])
        out[variant] = {"variant": variant, "dtype": b["dtype"], "seq": b["seq"], "batch": b["batch"],
                        "base_ms": b["ms_per_batch"], "stages": stages,
                        "dominant": stages[0]["stage"] if stages else None}
    return out


def summarize(out, seqs, batches, expect_ablation=False):
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
    rows, not_built, variant_failures, ablate_rows = [], [], [], []
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
        elif line.startswith("GPU-CHECK ablate"):
            f = parse_fields(line)
            ablate_rows.append({"variant": f["variant"], "dtype": f["dtype"], "seq": int(f["seq"]),
                                "batch": int(f["batch"]), "stage": f["stage"],
                                "scale": int(f["scale"]),
                                "ms_per_batch": float(f["ms_per_batch"])})
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

    ablation = where_the_time_goes(ablate_rows)
    if expect_ablation and not ablation:
        problems.append("bench: no stage ablation (GPU-CHECK ablate ... stage=none) lines")

    goals = []
    for variant in sorted({r["variant"] for r in rows}):
        for d in DTYPES:
            at128 = [r for r in rows if r["variant"] == variant and r["dtype"] == d and r["seq"] == 128]
            if at128:
                best = max(at128, key=lambda r: r["sentences_per_s"])
                goal = {"goal": f">= {GOAL_SENTENCES_PER_S_128} sentences/s at 128 tokens",
                        "variant": variant, "dtype": d, "value": best["sentences_per_s"],
                        "at_batch": best["batch"],
                        "met": best["sentences_per_s"] >= GOAL_SENTENCES_PER_S_128}
                if not goal["met"]:
                    # Which stage holds the time: the variant's ablation (one dtype, see there);
                    # "fused+graphs" falls back to the ablation of "fused".
                    a = ablation.get(variant) or ablation.get(variant.split("+")[0])
                    goal["held_by"] = a["dominant"] if a else None
                    goal["held_by_note"] = (
                        f"{a['dominant']}: {a['stages'][0]['ms']:.3f} of {a['base_ms']:.3f} "
                        f"ms per batch ({100 * a['stages'][0]['share']:.1f}%; ablation of "
                        f"{a['variant']} in {a['dtype']}, {a['seq']} tokens x {a['batch']})"
                        if a and a["stages"] else "no stage ablation for this variant")
                goals.append(goal)
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
               "bench": rows, "variants_not_built": not_built, "ablation": ablation,
               "goals": goals}
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
    for variant, a in s["ablation"].items():
        lines += ["", f"## Where the time goes: {variant} ({a['dtype']}, {a['seq']} tokens x "
                      f"{a['batch']}, {a['base_ms']:.3f} ms per batch)", "",
                  "Each stage run twice and removed (outputs garbage, times only); ms per batch "
                  "held by the stage = doubled - base and base - removed.", "",
                  "| stage | doubled - base ms | base - removed ms | ms (mean) | share |",
                  "| --- | --- | --- | --- | --- |"]
        for st in a["stages"]:
            def ms(x):
                return "-" if x is None else f"{x:.3f}"
            lines.append(f"| {st['stage']} | {ms(st['doubled_ms'])} | {ms(st['removed_ms'])} | "
                         f"{st['ms']:.3f} | {100 * st['share']:.1f}% |")
        lines.append(f"| (sum of stages) | | | {sum(x['ms'] for x in a['stages']):.3f} | "
                     f"{100 * sum(x['share'] for x in a['stages']):.1f}% |")
    lines += ["", "## Goals (reported, not gating)", "",
              "| goal | variant | dtype | value | met | held by (stage ablation) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for g in s["goals"]:
        lines.append(f"| {g['goal']} | {g['variant']} | {g['dtype']} | {g['value']:.6g} | "
                     f"{'yes' if g['met'] else 'NO'} | {g.get('held_by_note', '')} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seqs", default="16,128,256")
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--ablate", action="store_true",
                    help="the bench ran --ablate: missing ablation lines are a problem")
    a = ap.parse_args()
    s = summarize(a.out, [int(x) for x in a.seqs.split(",")], [int(x) for x in a.batches.split(",")],
                  expect_ablation=a.ablate)
    for x in s["problems"]:
        print(f"gpu-check: {x}")
    print(f"gpu-check: {'PASSED' if s['ok'] else 'FAILED'}; summary in {a.out}/summary.md and summary.json")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

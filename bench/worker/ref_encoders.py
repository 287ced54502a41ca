#!/usr/bin/env python3
"""Reference encoders for bench/run-worker-bench: sentence-transformers (torch CPU) and
onnxruntime (CPU) on all-MiniLM-L6-v2, timed on fixed-shape token ids (batch x tokens, every row
the same length, [CLS] ... [SEP]) exactly like bench/cpu_encoder_bench.

Runs under the bench venv (.venv-bench: torch, sentence-transformers, onnxruntime, onnx).
  ref_encoders.py --model DIR --onnx build/bench/minilm.onnx --threads 2 \
      --shapes 32x128,1x16 --impl st,ort --min-time 0.5
Prints one JSON object per line: {"impl", "batch", "tokens", "iterations", "seconds_per_batch"}.
The ONNX file is exported once (torch.onnx.export of the transformer) and then reused.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def token_ids(batch, tokens):
    rng = np.random.default_rng(42)
    ids = rng.integers(1000, 29000, size=(batch, tokens), dtype=np.int64)
    ids[:, 0] = 101
    ids[:, -1] = 102
    return ids


def time_it(fn, min_time, warmup):
    if warmup:
        fn()
    iterations, start = 0, time.perf_counter()
    while True:
        fn()
        iterations += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return iterations, elapsed / iterations


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", required=True)
    p.add_argument("--impl", default="st,ort")
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--export-only", action="store_true")
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()

    if not os.path.exists(args.onnx):
        os.makedirs(os.path.dirname(os.path.abspath(args.onnx)), exist_ok=True)
        bert = model[0].auto_model
        ids = torch.tensor(token_ids(2, 16))
        tmp = args.onnx + ".tmp"
        kwargs = {}
        try:  # torch >= 2.5: the TorchScript exporter is dynamo=False.
            torch.onnx.export(bert, (ids, torch.ones_like(ids), torch.zeros_like(ids)), tmp,
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17,
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                            ["input_ids", "attention_mask", "token_type_ids",
                                             "last_hidden_state"]},
                              dynamo=False)
        except TypeError:
            torch.onnx.export(bert, (ids, torch.ones_like(ids), torch.zeros_like(ids)), tmp,
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17,
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                            ["input_ids", "attention_mask", "token_type_ids",
                                             "last_hidden_state"]})
        os.replace(tmp, args.onnx)
        print(f"exported {args.onnx}", file=sys.stderr)
    if args.export_only:
        return

    impls = args.impl.split(",")
    session = None
    if "ort" in impls:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])

    for shape in args.shapes.split(","):
        batch, tokens = (int(x) for x in shape.split("x"))
        ids = token_ids(batch, tokens)
        mask = np.ones_like(ids)
        warmup = batch * tokens <= 8192
        for impl in impls:
            if impl == "st":
                feats = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                         "token_type_ids": torch.zeros(ids.shape, dtype=torch.int64)}

                def run():  # model.forward: transformer + mean pooling + Normalize, as encode().
                    with torch.inference_mode():
                        return model(dict(feats))["sentence_embedding"].numpy()
            else:
                feeds = {"input_ids": ids, "attention_mask": mask,
                         "token_type_ids": np.zeros_like(ids)}

                def run():
                    hidden = session.run(None, feeds)[0]
                    pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
                    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
            iterations, seconds = time_it(run, args.min_time, warmup)
            print(json.dumps({"impl": impl, "batch": batch, "tokens": tokens,
                              "iterations": iterations, "seconds_per_batch": seconds}),
                  flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference encoders for bench/run-worker-bench and bench/run-peers-bench on all-MiniLM-L6-v2,
timed on fixed-shape token ids (batch x tokens, every row the same length, [CLS] ... [SEP]) exactly
like bench/cpu_encoder_bench:

  st           sentence-transformers, backend="torch" (float32)
  ort          onnxruntime on the transformer exported once by torch.onnx.export (--onnx)
  st-onnx      sentence-transformers, backend="onnx" (optimum's ONNX export, onnx/model.onnx)
  st-onnx-O3   the same with optimum's O3 graph optimisations (export_optimized_onnx_model,
               onnx/model_O3.onnx)
  st-onnx-O4   O4 = O3 + fp16 (optimum: meant for GPUs; exported and run here on the CPU to
               show what it does there)
  st-openvino  sentence-transformers, backend="openvino" (optimum-intel's export,
               openvino/openvino_model.xml), OpenVINO's default precision on this CPU
  st-openvino-f32  the same with INFERENCE_PRECISION_HINT=f32

Runs under the bench venv (.venv-bench: torch, sentence-transformers, onnxruntime, onnx,
optimum-onnx); st-openvino* under .venv-openvino (bench/requirements-openvino.txt).
  ref_encoders.py --model DIR --onnx build/bench/minilm.onnx --threads 2 \
      --shapes 32x128,1x16 --impl st,ort --min-time 0.5
Prints one JSON object per line: {"impl", "batch", "tokens", "iterations", "seconds_per_batch"};
notes for the report on stderr, prefixed "[ref] ". The exports are made once, into --model's
onnx/ and openvino/ directories (bench/run-peers-bench gives it a directory of links to the
model package's files), and then reused: every peer computes from the same safetensors.
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


def note(msg):
    print(f"[ref] {msg}", file=sys.stderr, flush=True)


def move_subdir(tmp, name, model_dir):
    """Moves tmp/name (what save_pretrained exported) into model_dir/name; only that
    directory: model_dir's other entries may be links into the model package."""
    import shutil
    src, dst = os.path.join(tmp, name), os.path.join(model_dir, name)
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        shutil.move(os.path.join(src, f), os.path.join(dst, f))


def load_st_backend(impl, model_dir, threads):
    """A SentenceTransformer with backend onnx or openvino at `threads` threads, exporting its
    model files into model_dir once."""
    import tempfile
    from sentence_transformers import SentenceTransformer
    if impl.startswith("st-onnx"):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        kwargs = {"provider": "CPUExecutionProvider", "session_options": so}
        plain = os.path.join(model_dir, "onnx/model.onnx")
        if not os.path.exists(plain):
            m = SentenceTransformer(model_dir, device="cpu", backend="onnx", model_kwargs=kwargs)
            with tempfile.TemporaryDirectory() as tmp:
                m.save_pretrained(tmp)
                move_subdir(tmp, "onnx", model_dir)
            note(f"st-onnx: exported {plain} (optimum)")
        if impl in ("st-onnx-O3", "st-onnx-O4"):
            o3 = os.path.join(model_dir, "onnx/model_O3.onnx")
            if not os.path.exists(o3):
                from sentence_transformers import export_optimized_onnx_model
                m = SentenceTransformer(model_dir, device="cpu", backend="onnx",
                                        model_kwargs=kwargs)
                for level in ("O3", "O4"):
                    with tempfile.TemporaryDirectory() as tmp:
                        try:
                            export_optimized_onnx_model(m, level, tmp, push_to_hub=False,
                                                        create_pr=False)
                            move_subdir(tmp, "onnx", model_dir)
                            note(f"st-onnx: export_optimized_onnx_model {level}: done")
                        except Exception as e:  # O4 is fp16, which optimum allows on GPU only.
                            note(f"st-onnx: export_optimized_onnx_model {level} failed on this "
                                 f"CPU: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            kwargs["file_name"] = f"onnx/model_{impl[-2:]}.onnx"
        else:
            kwargs["file_name"] = "onnx/model.onnx"
        return SentenceTransformer(model_dir, device="cpu", backend="onnx", model_kwargs=kwargs)
    # OpenVINO: one stream of `threads` threads (optimum-intel's default hint is LATENCY).
    ov_config = {"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY",
                 "CACHE_DIR": ""}
    if impl == "st-openvino-f32":
        ov_config["INFERENCE_PRECISION_HINT"] = "f32"
    kwargs = {"ov_config": ov_config}
    xml = os.path.join(model_dir, "openvino/openvino_model.xml")
    if not os.path.exists(xml):
        m = SentenceTransformer(model_dir, device="cpu", backend="openvino", model_kwargs=kwargs)
        with tempfile.TemporaryDirectory() as tmp:
            m.save_pretrained(tmp)
            move_subdir(tmp, "openvino", model_dir)
        note(f"st-openvino: exported {xml} (optimum-intel)")
    kwargs["file_name"] = "openvino/openvino_model.xml"
    m = SentenceTransformer(model_dir, device="cpu", backend="openvino", model_kwargs=kwargs)
    try:
        req = m[0].auto_model.request
        compiled = req.get_compiled_model() if hasattr(req, "get_compiled_model") else req
        note(f"{impl}: OpenVINO {__import__('openvino').__version__} INFERENCE_PRECISION_HINT="
             f"{compiled.get_property('INFERENCE_PRECISION_HINT')}, INFERENCE_NUM_THREADS="
             f"{compiled.get_property('INFERENCE_NUM_THREADS')}")
    except Exception as e:  # Only a note.
        note(f"{impl}: could not read the compiled model's properties: {e}")
    return m


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
    impls = args.impl.split(",")
    backends = {i: load_st_backend(i, args.model, args.threads) for i in impls
                if i.startswith("st-")}
    model = None
    if "st" in impls or "ort" in impls or args.export_only:
        model = SentenceTransformer(args.model, device="cpu")
        model.eval()

    if model is not None and not os.path.exists(args.onnx):
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
            elif impl in backends:
                m = backends[impl]
                feats = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                         "token_type_ids": torch.zeros(ids.shape, dtype=torch.int64)}

                def run(m=m, feats=feats):  # the same modules, BERT run by ORT / OpenVINO.
                    with torch.inference_mode():
                        return m(dict(feats))["sentence_embedding"].numpy()
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

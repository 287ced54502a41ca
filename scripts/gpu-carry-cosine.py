#!/usr/bin/env python3
"""What rounding the model's matrices to fp16 (scripts/gpu-carry) costs, measured on the CPU.

A plain float64 NumPy forward pass of the BERT encoder + mean pooling (all-MiniLM-L6-v2's
shape: 6 layers, 12 heads, erf GELU), over the fixture corpus's token ids, compared by cosine
with sentence-transformers' fp32 embeddings (tests/fixtures/embeddings.f32). Run on the original
model it checks the forward pass itself (expect ~1 - 1e-7); on the carried one it isolates the
weight rounding from the GPU's fp16 arithmetic. Slow (minutes), not a test:
  .venv/bin/python scripts/gpu-carry-cosine.py MODEL.safetensors [.gpu-carry/model/model.safetensors]
"""
import json, struct, sys
from pathlib import Path
import numpy as np
def load(path):
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8+n]); data = raw[8+n:]; out = {}
    for k, e in h.items():
        if k == "__metadata__": continue
        a, b = e["data_offsets"]; dt = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}[e["dtype"]]
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(e["shape"]).astype(np.float64 if dt != "<i8" else np.int64)
    return out
def ln(x, g, b, eps=1e-12):
    m = x.mean(-1, keepdims=True); v = ((x-m)**2).mean(-1, keepdims=True); return (x-m)/np.sqrt(v+eps)*g+b
from scipy.special import erf as verf
def gelu(x): return 0.5*x*(1+verf(x/np.sqrt(2)))
def encode(W, ids):
    p = "bert." if "bert.embeddings.word_embeddings.weight" in W else ""
    T = len(ids)
    x = W[p+"embeddings.word_embeddings.weight"][ids] + W[p+"embeddings.position_embeddings.weight"][:T] + W[p+"embeddings.token_type_embeddings.weight"][0]
    x = ln(x, W[p+"embeddings.LayerNorm.weight"], W[p+"embeddings.LayerNorm.bias"])
    H = 12; d = x.shape[1] // H
    for i in range(6):
        q = p+f"encoder.layer.{i}."
        lin = lambda x, n: x @ W[q+n+".weight"].T + W[q+n+".bias"]
        Q, K, V = (lin(x, "attention.self."+n).reshape(T, H, d).transpose(1, 0, 2) for n in ("query", "key", "value"))
        s = Q @ K.transpose(0, 2, 1) / np.sqrt(d); s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        a = (s @ V).transpose(1, 0, 2).reshape(T, H*d)
        x = ln(lin(a, "attention.output.dense") + x, W[q+"attention.output.LayerNorm.weight"], W[q+"attention.output.LayerNorm.bias"])
        f = lin(gelu(lin(x, "intermediate.dense")), "output.dense")
        x = ln(f + x, W[q+"output.LayerNorm.weight"], W[q+"output.LayerNorm.bias"])
    return x.mean(0)
root = str(Path(__file__).resolve().parents[1])
seqs = [json.loads(l)["ids"] for l in open(root + "/tests/fixtures/tokens.jsonl")]
want = np.fromfile(root + "/tests/fixtures/embeddings.f32", dtype="<f4").reshape(len(seqs), -1)
for name in sys.argv[1:]:
    W = load(name); worst = 1
    for i, ids in enumerate(seqs):
        y = encode(W, ids); c = y @ want[i] / np.linalg.norm(y) / np.linalg.norm(want[i]); worst = min(worst, c)
    print(f"{name}: worst cosine {worst:.7f} over {len(seqs)} texts (float64 compute)")

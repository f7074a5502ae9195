"""torch_eval.py: the PyTorch side of tests/bench/eval.sh: what agn-eval
does, done with PyTorch, end to end in one process: read an agn checkpoint
(safetensors; the weights, the vocabulary and the config are in it), read a
token stream (agn-tokenize's output), map the tokens as agn-shard does
(unknown -> 1, cut at max_len), run the model in batches in order, padded to
the longest example of each batch as agn-eval pads, under
torch.inference_mode(), and print accuracy.  The model is the functional one
of torch_model.py (GELU with tanh, as agn's), so the predictions are agn's
up to rounding.

Prints one line of key=value pairs: examples, accuracy, seconds (whole
process from the first line of this file to the end), compute_s (the
batches alone), samples_per_s (over compute_s), peak_rss_mb, torch=.

  torch_eval.py CHECKPOINT TOKENS [--batch 64] [--threads N] [--compile]
"""
import time

T_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import struct  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def load_checkpoint(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    meta = header.pop("__metadata__", {})
    p = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            continue
        b, e = t["data_offsets"]
        p[name] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(t["shape"])
    cfg = {}
    for line in meta["config"].splitlines():
        k, _, v = line.strip().partition(":")
        cfg.setdefault(k, v.strip())
    vocab = {}
    for line in meta["vocab"].split("\n"):
        if not line or (line.startswith("#") and "\t" not in line):  # the header, not the token "#"
            continue
        vocab[line.split("\t")[0].encode("utf-8")] = len(vocab)
    return p, cfg, vocab


def forward(p, ids, H, L):
    B, T = ids.shape
    D = p["tok_emb"].shape[1]
    hd = D // H
    pad = ids == 0
    x = F.embedding(ids, p["tok_emb"]) + p["pos_emb"][:T]
    for layer in range(L):
        w = lambda s: p["blocks.%d.%s" % (layer, s)]  # noqa: E731
        h = F.layer_norm(x, (D,), w("ln1.weight"), w("ln1.bias"), 1e-5)
        q, k, v = F.linear(h, w("attn.qkv.weight"), w("attn.qkv.bias")).split(D, dim=-1)
        q, k, v = [t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v)]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(pad[:, None, None, :], float("-inf"))
        y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(y, w("attn.proj.weight"), w("attn.proj.bias"))
        h = F.layer_norm(x, (D,), w("ln2.weight"), w("ln2.bias"), 1e-5)
        h = F.gelu(F.linear(h, w("mlp.fc1.weight"), w("mlp.fc1.bias")), approximate="tanh")
        x = x + F.linear(h, w("mlp.fc2.weight"), w("mlp.fc2.bias"))
    h = F.layer_norm(x, (D,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    keep = (~pad).to(h.dtype)[..., None]
    return F.linear((h * keep).sum(1) / keep.sum(1), p["head.weight"], p["head.bias"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("tokens")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    p, cfg, vocab = load_checkpoint(a.checkpoint)
    T, H, L = int(cfg["max_len"]), int(cfg["n_heads"]), int(cfg["n_layers"])
    labels, rows = [], []
    with open(a.tokens, "rb") as f:
        for line in f:
            label, _, text = line.rstrip(b"\n").partition(b"\t")
            rows.append([vocab.get(t, 1) for t in text.split(b" ") if t][:T] or [1])
            labels.append(int(label))
    fwd = torch.compile(forward, dynamic=True) if a.compile else forward
    correct = 0
    t0 = time.time()
    with torch.inference_mode():
        for i in range(0, len(rows), a.batch):
            chunk = rows[i:i + a.batch]
            Tb = max(len(r) for r in chunk)
            ids = torch.zeros(len(chunk), Tb, dtype=torch.long)
            for j, r in enumerate(chunk):
                ids[j, :len(r)] = torch.tensor(r)
            pred = fwd(p, ids, H, L).argmax(-1)
            correct += int((pred == torch.tensor(labels[i:i + a.batch])).sum())
    t1 = time.time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("impl=torch%s torch=%s threads=%d examples=%d accuracy=%.4f seconds=%.3f compute_s=%.3f "
          "samples_per_s=%.1f peak_rss_mb=%.1f"
          % ("-compile" if a.compile else "", torch.__version__, a.threads, len(rows),
             correct / len(rows), t1 - T_START, t1 - t0, len(rows) / (t1 - t0), rss))


if __name__ == "__main__":
    main()

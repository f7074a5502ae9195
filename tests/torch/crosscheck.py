"""crosscheck.py: agn's CPU model against PyTorch.

Runs tests/t-torchref (the C side), which writes the weights of the tiny
model and a padded batch to safetensors, its logits, loss and every gradient
after one backward pass, and its weights after three AdamW steps with
clipping and the warmup/decay schedule.  This script rebuilds the same model
from PyTorch's own primitives (torch.nn.functional embedding, layer_norm,
linear, softmax, gelu(approximate='tanh'), cross_entropy; not
nn.TransformerEncoderLayer), padded the usual way: the whole [B, T] batch is
computed, pad keys are masked with -inf and pooling averages non-pad
positions.  It then runs torch.optim.AdamW with clip_grad_norm_, and
compares logits, loss, each gradient and each final weight: the relative
error max|agn - torch| / max|torch| of each tensor must stay below 1e-4.

One exception, explained: the K third of each attn.qkv.bias has a gradient
that is exactly zero in exact arithmetic (adding a constant to every key of a
softmax row changes nothing).  PyTorch computes rounding noise there, which
Adam (m / (sqrt(v) + eps)) turns into steps of unpredictable size; agn
leaves that gradient at exactly 0 (model.c).  So the K part is checked to be
exactly 0 in agn's gradient and unchanged in agn's final weights, PyTorch's
gradient there must be noise (tiny against the tensor's scale), and the
final-weight comparison covers the Q and V parts.

Exit status: 0 pass, 1 fail, 77 skip (no PyTorch; py-runner.sh also skips).
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print("SKIP: %s" % e)
    sys.exit(77)

TOL = 1e-4
DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    """The format in a few lines: u64 header length, JSON, raw data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def lr_at(step, lr, warmup, total):
    """The schedule as model.h / optim.c document it."""
    if total > 0 and step >= total:
        return 0.0
    if step < warmup:
        return lr * (step + 1) / warmup
    if total <= 0 or total <= warmup:
        return lr
    return lr * (total - step) / (total - warmup)


def forward(p, ids, labels, n_heads, n_layers):
    B, T = ids.shape
    D = p["tok_emb"].shape[1]
    hd = D // n_heads
    pad = ids == 0  # [B, T]
    x = F.embedding(ids, p["tok_emb"]) + p["pos_emb"][:T]
    for l in range(n_layers):
        w = lambda s: p["blocks.%d.%s" % (l, s)]
        h = F.layer_norm(x, (D,), w("ln1.weight"), w("ln1.bias"), 1e-5)
        qkv = F.linear(h, w("attn.qkv.weight"), w("attn.qkv.bias"))
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = [t.view(B, T, n_heads, hd).transpose(1, 2) for t in (q, k, v)]
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(pad[:, None, None, :], float("-inf"))
        y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(y, w("attn.proj.weight"), w("attn.proj.bias"))
        h = F.layer_norm(x, (D,), w("ln2.weight"), w("ln2.bias"), 1e-5)
        h = F.gelu(F.linear(h, w("mlp.fc1.weight"), w("mlp.fc1.bias")), approximate="tanh")
        x = x + F.linear(h, w("mlp.fc2.weight"), w("mlp.fc2.bias"))
    h = F.layer_norm(x, (D,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    keep = (~pad).to(h.dtype)[..., None]
    pooled = (h * keep).sum(1) / keep.sum(1)
    logits = F.linear(pooled, p["head.weight"], p["head.bias"])
    return logits, F.cross_entropy(logits, labels)


def rel_err(a, b, mask=None):
    a = a.detach().double().flatten()
    b = b.detach().double().flatten()
    if mask is not None:
        a, b = a[mask], b[mask]
    scale = b.abs().max().item()
    d = (a - b).abs().max().item()
    return d / scale if scale > 0 else d


def main():
    builddir = os.environ.get("top_builddir", ".")
    exe = os.path.join(builddir, "tests", "t-torchref")
    if not os.path.exists(exe):
        print("FAIL: %s not built (run make check)" % exe)
        return 1
    torch.manual_seed(0)
    failures = []

    def report(what, err, tol=TOL):
        bad = not (err <= tol)
        print("  %-36s %.3e%s" % (what, err, "  FAIL" if bad else ""))
        if bad:
            failures.append(what)

    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([exe, d], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        if r.returncode != 0:
            print("FAIL: t-torchref exited %d: %s" % (r.returncode, r.stderr))
            return 1
        inp, meta = load_safetensors(os.path.join(d, "inputs.safetensors"))
        step0, _ = load_safetensors(os.path.join(d, "step0.safetensors"))
        final, _ = load_safetensors(os.path.join(d, "final.safetensors"))

    ids, labels = inp.pop("ids"), inp.pop("labels")
    H, L = int(meta["n_heads"]), int(meta["n_layers"])
    names = list(inp.keys())  # checkpoint order
    params = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    D = params["tok_emb"].shape[1]

    lr = float(meta["lr"])
    warmup, total, steps = int(meta["warmup_steps"]), int(meta["total_steps"]), int(meta["steps"])
    decay = [params[n] for n in names if params[n].dim() == 2]
    no_decay = [params[n] for n in names if params[n].dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(meta["weight_decay"])},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(float(meta["beta1"]), float(meta["beta2"])), eps=float(meta["eps"]))
    clip = float(meta["grad_clip"])

    clipped = 0
    for step in range(steps):
        opt.zero_grad()
        logits, loss = forward(params, ids, labels, H, L)
        loss.backward()
        if step == 0:
            print("after one backward pass (relative error per tensor):")
            report("logits", rel_err(step0["logits"], logits))
            report("loss", rel_err(step0["loss"].reshape(1), loss.reshape(1)))
            for n in names:
                report("grad " + n, rel_err(step0["grad." + n], params[n].grad))
                if n.endswith("attn.qkv.bias"):
                    g = params[n].grad
                    kb = g[D : 2 * D].abs().max().item() / g.abs().max().item()
                    report("  K part, PyTorch (noise)", kb, 1e-5)
                    report("  K part, agn (exactly 0)", step0["grad." + n][D : 2 * D].abs().max().item(), 0.0)
        norm = torch.nn.utils.clip_grad_norm_([params[n] for n in names], clip).item()
        clipped += norm > clip
        want_lr = lr_at(step, lr, warmup, total)
        for g in opt.param_groups:
            g["lr"] = want_lr
        report("step %d lr (%.6g)" % (step, want_lr), abs(final["lr"][step].item() - want_lr) / lr)
        report("step %d grad norm (%.6g)" % (step, norm), abs(final["grad_norm"][step].item() - norm) / norm)
        opt.step()
    if clipped == 0:
        print("FAIL: clipping never triggered; lower grad_clip in t-torchref.c")
        failures.append("clipping")

    print("after %d AdamW steps (relative error per tensor):" % steps)
    for n in names:
        mask = None
        if n.endswith("attn.qkv.bias"):
            mask = torch.ones(3 * D, dtype=torch.bool)
            mask[D : 2 * D] = False
        report(n + (" (Q and V parts)" if mask is not None else ""), rel_err(final[n], params[n], mask))
        if mask is not None:
            report("  K part unchanged in agn", (final[n][D : 2 * D] - inp[n][D : 2 * D]).abs().max().item(), 0.0)
        moved = (final[n] - inp[n]).abs().max().item()
        if moved == 0:
            print("FAIL: %s did not move" % n)
            failures.append(n + " moved")

    if failures:
        print("FAIL: %d comparisons above tolerance: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("agn matches PyTorch within %.0e on every tensor" % TOL)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""torch_model.py: the PyTorch side of tests/bench/model.sh.

The same pre-LayerNorm transformer classifier as agn (DESIGN.md, Model),
trained the way the study did: every batch padded to T, dropout 0.1, AdamW
with weight decay on matrices, global-norm clipping at 1.0.  Batches come
from the same token stream and vocabulary as agn's shards, in a fixed
shuffled order, and are assembled before the clock starts.  Two
implementations (--impl):

  functional  the model written from torch.nn.functional primitives;
  module      PyTorch's own modules: nn.Embedding, nn.TransformerEncoder of
              nn.TransformerEncoderLayer(batch_first, norm_first) with
              src_key_padding_mask, a final nn.LayerNorm, mean pooling over
              non-pad positions, nn.Linear head.  The layer's attention-
              weight dropout and its dropout after the activation are
              switched off so the dropout sites are the model's (embedding
              and the two residual branches).  GELU(tanh) is a callable, so
              the function is exactly the model's.

For inference --fastpath (module only) builds the layers with the string
activation 'gelu' so that, in eval mode under torch.inference_mode(), each
layer runs PyTorch's fused fast path (torch._transformer_encoder_layer_fwd).
Caveat: that kernel only knows ReLU and the exact (erf) GELU, so the fast
path computes GELU_erf where the model has GELU_tanh (logits differ by
~1e-4); and PyTorch 1.13 takes no nested-tensor (pad-skipping) path for
norm_first layers, so it still computes every padded position.
Inference always runs under torch.inference_mode() in eval mode.

--mkldnn on|off sets torch.backends.mkldnn.enabled (default: PyTorch's).
It changes nothing measurable here: with ONEDNN_VERBOSE=1 no variant runs a
single oneDNN primitive (fp32 Linear and bmm go to BLAS in 1.13; oneDNN
serves convolutions and bf16), so OpenBLAS does all the matrix work.
--check compares the two implementations on the same weights and checks
the loss falls over a few steps, then exits.

Prints one line of key=value pairs like bench-model: samples_per_s,
tokens_per_s (real tokens), ms_per_step, peak_rss_mb, and impl=.

  torch_model.py --tokens FILE --vocab FILE [--config small|large]
                 [--impl functional|module] [--fastpath] [--mkldnn on|off]
                 [--threads N] [--steps N] [--warmup N] [--infer] [--check]
                 [--compile]

--compile wraps the model in torch.compile (PyTorch 2.x, the inductor
backend, which compiles C++ for the CPU); the warm-up steps compile it.
"""
import argparse
import math
import random
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "small": dict(T=128, D=128, H=4, L=2, Fd=512, B=32),
    "large": dict(T=256, D=256, H=4, L=4, Fd=1024, B=128),
}


def load(tokens_path, vocab_path, T):
    vocab = {}
    with open(vocab_path, "rb") as f:
        for line in f:
            if line.startswith(b"#") and b"\t" not in line:  # the header, not the token "#"
                continue
            vocab[line.split(b"\t")[0]] = len(vocab)
    examples = []
    with open(tokens_path, "rb") as f:
        for line in f:
            label, _, text = line.rstrip(b"\n").partition(b"\t")
            ids = [vocab.get(t, 1) for t in text.split(b" ") if t][:T] or [1]
            examples.append((int(label), ids))
    return vocab, examples


def load_shuffled(tokens_path, vocab_path, T):
    """load(), plus the number of classes and the benchmarks' fixed order."""
    vocab, examples = load(tokens_path, vocab_path, T)
    C = max(e[0] for e in examples) + 1
    order = list(range(len(examples)))
    random.Random(12345).shuffle(order)
    return vocab, examples, C, order


class Model:
    def __init__(self, V, C, T, D, H, L, Fd, **_):
        g = torch.Generator().manual_seed(1)
        n = lambda *s, std=0.02: (torch.randn(*s, generator=g) * std).requires_grad_(True)
        z = lambda *s: torch.zeros(*s, requires_grad=True)
        o = lambda *s: torch.ones(*s, requires_grad=True)
        r = 0.02 / math.sqrt(2 * L)
        self.H, self.D, self.L = H, D, L
        self.tok, self.pos = n(V, D), n(T, D)
        self.blocks = [dict(ln1w=o(D), ln1b=z(D), qkvw=n(3 * D, D), qkvb=z(3 * D),
                            projw=n(D, D, std=r), projb=z(D), ln2w=o(D), ln2b=z(D),
                            fc1w=n(Fd, D), fc1b=z(Fd), fc2w=n(D, Fd, std=r), fc2b=z(D))
                       for _ in range(L)]
        self.lnfw, self.lnfb, self.headw, self.headb = o(D), z(D), n(C, D), z(C)

    def params(self):
        ps = [self.tok, self.pos]
        for b in self.blocks:
            ps += list(b.values())
        return ps + [self.lnfw, self.lnfb, self.headw, self.headb]

    def train(self, on):
        self.training = on

    def eval(self):
        self.training = False

    def __call__(self, ids):
        return self.forward(ids, self.training)

    def param_groups(self):
        ps = self.params()
        return [{"params": [p for p in ps if p.dim() == 2], "weight_decay": 0.01},
                {"params": [p for p in ps if p.dim() != 2], "weight_decay": 0.0}]

    def forward(self, ids, train, p=0.1):
        B, T = ids.shape
        D, H = self.D, self.H
        hd = D // H
        pad = ids == 0
        x = F.dropout(F.embedding(ids, self.tok) + self.pos[:T], p, train)
        for w in self.blocks:
            h = F.layer_norm(x, (D,), w["ln1w"], w["ln1b"], 1e-5)
            q, k, v = F.linear(h, w["qkvw"], w["qkvb"]).split(D, dim=-1)
            q, k, v = [t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v)]
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            s = s.masked_fill(pad[:, None, None, :], float("-inf"))
            y = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
            x = x + F.dropout(F.linear(y, w["projw"], w["projb"]), p, train)
            h = F.layer_norm(x, (D,), w["ln2w"], w["ln2b"], 1e-5)
            h = F.gelu(F.linear(h, w["fc1w"], w["fc1b"]), approximate="tanh")
            x = x + F.dropout(F.linear(h, w["fc2w"], w["fc2b"]), p, train)
        h = F.layer_norm(x, (D,), self.lnfw, self.lnfb, 1e-5)
        keep = (~pad).to(h.dtype)[..., None]
        return F.linear((h * keep).sum(1) / keep.sum(1), self.headw, self.headb)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


class ModuleModel(nn.Module):
    """The model from PyTorch's own modules (see the file's comment)."""

    def __init__(self, V, C, T, D, H, L, Fd, fastpath=False, p=0.1, **_):
        super().__init__()
        self.tok = nn.Embedding(V, D)
        self.pos = nn.Parameter(torch.zeros(T, D))
        self.drop = nn.Dropout(p)
        layer = nn.TransformerEncoderLayer(
            D, H, Fd, p, activation="gelu" if fastpath else gelu_tanh,
            layer_norm_eps=1e-5, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, L, norm=nn.LayerNorm(D, eps=1e-5),
                                         enable_nested_tensor=True)
        for lyr in self.enc.layers:
            lyr.self_attn.dropout = 0.0       # no dropout on attention weights
            lyr.dropout = nn.Identity()       # nor after the activation
        self.head = nn.Linear(D, C)
        g = torch.Generator().manual_seed(1)
        r = 0.02 / math.sqrt(2 * L)
        with torch.no_grad():
            for name, w in self.named_parameters():
                if w.dim() == 2:
                    std = r if name.endswith(("out_proj.weight", "linear2.weight")) else 0.02
                    w.copy_(torch.randn(w.shape, generator=g) * std)
                elif name.endswith("bias"):
                    w.zero_()

    def forward(self, ids):
        T = ids.shape[1]
        pad = ids == 0
        x = self.drop(self.tok(ids) + self.pos[:T])
        h = self.enc(x, src_key_padding_mask=pad)
        if h.is_nested:
            h = h.to_padded_tensor(0.0, (ids.shape[0], T, h.size(-1)))
        keep = (~pad).to(h.dtype)[..., None]
        return self.head((h * keep).sum(1) / keep.sum(1))

    def param_groups(self):
        ps = list(self.parameters())
        return [{"params": [p for p in ps if p.dim() == 2], "weight_decay": 0.01},
                {"params": [p for p in ps if p.dim() != 2], "weight_decay": 0.0}]

    def load_functional(self, f):
        """Copies the weights of a functional Model f."""
        with torch.no_grad():
            self.tok.weight.copy_(f.tok)
            self.pos.copy_(f.pos)
            for lyr, w in zip(self.enc.layers, f.blocks):
                lyr.norm1.weight.copy_(w["ln1w"]); lyr.norm1.bias.copy_(w["ln1b"])
                lyr.self_attn.in_proj_weight.copy_(w["qkvw"])
                lyr.self_attn.in_proj_bias.copy_(w["qkvb"])
                lyr.self_attn.out_proj.weight.copy_(w["projw"])
                lyr.self_attn.out_proj.bias.copy_(w["projb"])
                lyr.norm2.weight.copy_(w["ln2w"]); lyr.norm2.bias.copy_(w["ln2b"])
                lyr.linear1.weight.copy_(w["fc1w"]); lyr.linear1.bias.copy_(w["fc1b"])
                lyr.linear2.weight.copy_(w["fc2w"]); lyr.linear2.bias.copy_(w["fc2b"])
            self.enc.norm.weight.copy_(f.lnfw); self.enc.norm.bias.copy_(f.lnfb)
            self.head.weight.copy_(f.headw); self.head.bias.copy_(f.headb)


def make_optimizer(m):
    # PyTorch 1.13's AdamW has no fused CPU kernel; foreach is its fastest
    # path.  PyTorch 2.4 and later have one (fused=True) for the CPU.
    try:
        return torch.optim.AdamW(m.param_groups(), lr=1e-3, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(m.param_groups(), lr=1e-3, foreach=True)


def train_step(m, opt, ids, labels):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(ids), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
    opt.step()
    return loss


def batches(ex, order, B, T, n):
    out, cursor = [], 0
    for _ in range(n):
        rows = [ex[order[(cursor + r) % len(ex)]] for r in range(B)]
        cursor += B
        ids = torch.zeros(B, T, dtype=torch.long)  # padded to T, as the study did
        for r, (_, t) in enumerate(rows):
            ids[r, : len(t)] = torch.tensor(t)
        out.append((ids, torch.tensor([l for l, _ in rows]), sum(len(t) for _, t in rows)))
    return out


def check(V, C, cfg, data):
    """Same weights, same loss; the loss falls; the fast path agrees."""
    ok = True
    f = Model(V, C, **cfg)
    m = ModuleModel(V, C, **cfg)
    m.load_functional(f)
    ids, labels, _ = data[0]
    f.eval(); m.eval()
    lf = F.cross_entropy(f(ids), labels)
    lm = F.cross_entropy(m(ids), labels)
    print("check: init loss functional=%.6f module=%.6f (ln C=%.6f)" % (lf, lm, math.log(C)))
    ok &= abs(lf.item() - lm.item()) < 1e-4
    with torch.inference_mode():
        yf = f(ids)
        ym = m(ids)
        fp = ModuleModel(V, C, fastpath=True, **cfg)
        fp.load_functional(f); fp.eval()
        yp = fp(ids)
    d1, d2 = (yf - ym).abs().max().item(), (yf - yp).abs().max().item()
    print("check: inference max |logit diff| module=%.2e fastpath(erf GELU)=%.2e" % (d1, d2))
    ok &= d1 < 1e-4 and d2 < 1e-2
    for name, mod in (("functional", f), ("module", m)):
        mod.train(True)
        opt = make_optimizer(mod)
        losses = [train_step(mod, opt, ids, labels).item() for _ in range(8)]
        print("check: %s loss over 8 steps on one batch: %s" % (name, " ".join("%.4f" % l for l in losses)))
        ok &= losses[-1] < losses[0] - 0.1
    print("check: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--config", default="small", choices=CONFIGS)
    ap.add_argument("--impl", default="functional", choices=("functional", "module"))
    ap.add_argument("--fastpath", action="store_true")
    ap.add_argument("--mkldnn", choices=("on", "off"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (PyTorch 2.x; compiled during the warm-up steps)")
    a = ap.parse_args()
    if a.fastpath and (a.impl != "module" or not a.infer):
        ap.error("--fastpath needs --impl module and --infer")
    torch.set_num_interop_threads(1)
    torch.set_num_threads(a.threads)
    if a.mkldnn:
        torch.backends.mkldnn.enabled = a.mkldnn == "on"
    cfg = CONFIGS[a.config]
    T, B = cfg["T"], cfg["B"]
    vocab, ex, C, order = load_shuffled(a.tokens, a.vocab, T)
    data = batches(ex, order, B, T, a.warmup + a.steps)
    if a.check:
        return check(len(vocab), C, cfg, data)
    if a.impl == "functional":
        m = Model(len(vocab), C, **cfg)
    else:
        m = ModuleModel(len(vocab), C, fastpath=a.fastpath, **cfg)
    if a.infer:
        m.eval()
    else:
        m.train(True)
        opt = make_optimizer(m)
    if a.compile:
        if a.impl == "functional":
            m.forward = torch.compile(m.forward)
        else:
            m = torch.compile(m)
    tokens, t0 = 0, 0.0
    for step, (ids, labels, ntok) in enumerate(data):
        if step == a.warmup:
            t0, tokens = time.perf_counter(), 0
        tokens += ntok
        if a.infer:
            with torch.inference_mode():
                m(ids)
        else:
            train_step(m, opt, ids, labels)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    impl = (a.impl + ("-fastpath" if a.fastpath else "") + ("-compile" if a.compile else "")
            + ("-mkldnn_" + a.mkldnn if a.mkldnn else ""))
    print("impl=torch-%s config=%s mode=%s padding=max threads=%d batch=%d steps=%d "
          "samples_per_s=%.1f tokens_per_s=%.0f ms_per_step=%.2f peak_rss_mb=%.1f torch=%s"
          % (impl, a.config, "infer" if a.infer else "train", a.threads, B, a.steps,
             a.steps * B / dt, tokens / dt, 1000 * dt / a.steps, rss, torch.__version__))


if __name__ == "__main__":
    sys.exit(main())

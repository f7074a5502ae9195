"""torch_model.py: the PyTorch side of tests/bench/model.sh.

The same pre-LayerNorm transformer classifier as agn (DESIGN.md, Model),
written from torch.nn.functional primitives, trained the way the study did:
every batch padded to T, dropout 0.1, AdamW with weight decay on matrices,
global-norm clipping at 1.0.  Batches come from the same token stream and
vocabulary as agn's shards, in a fixed shuffled order.  Prints one line of
key=value pairs like bench-model: samples_per_s, tokens_per_s (real
tokens), ms_per_step, peak_rss_mb.

  torch_model.py --tokens FILE --vocab FILE [--config small|large]
                 [--threads N] [--steps N] [--warmup N] [--infer]
"""
import argparse
import math
import random
import resource
import sys
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    "small": dict(T=128, D=128, H=4, L=2, Fd=512, B=32),
    "large": dict(T=256, D=256, H=4, L=4, Fd=1024, B=128),
}


def load(tokens_path, vocab_path, T):
    vocab = {}
    with open(vocab_path, "rb") as f:
        for line in f:
            if line.startswith(b"#"):
                continue
            vocab[line.split(b"\t")[0]] = len(vocab)
    examples = []
    with open(tokens_path, "rb") as f:
        for line in f:
            label, _, text = line.rstrip(b"\n").partition(b"\t")
            ids = [vocab.get(t, 1) for t in text.split(b" ") if t][:T] or [1]
            examples.append((int(label), ids))
    return vocab, examples


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--config", default="small", choices=CONFIGS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = CONFIGS[a.config]
    T, B = cfg["T"], cfg["B"]
    vocab, ex = load(a.tokens, a.vocab, T)
    C = max(e[0] for e in ex) + 1
    order = list(range(len(ex)))
    random.Random(12345).shuffle(order)
    m = Model(len(vocab), C, **cfg)
    ps = m.params()
    decay = [p for p in ps if p.dim() == 2]
    nodecay = [p for p in ps if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": nodecay, "weight_decay": 0.0}], lr=1e-3)
    cursor, tokens, t0 = 0, 0, 0.0
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t0, tokens = time.perf_counter(), 0
        rows = [ex[order[(cursor + r) % len(ex)]] for r in range(B)]
        cursor += B
        ids = torch.zeros(B, T, dtype=torch.long)  # padded to T, as the study did
        for r, (_, t) in enumerate(rows):
            ids[r, : len(t)] = torch.tensor(t)
            tokens += len(t)
        labels = torch.tensor([l for l, _ in rows])
        if a.infer:
            with torch.no_grad():
                m.forward(ids, False)
        else:
            opt.zero_grad()
            loss = F.cross_entropy(m.forward(ids, True), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ps, 1.0)
            opt.step()
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("impl=torch config=%s mode=%s padding=max threads=%d batch=%d steps=%d "
          "samples_per_s=%.1f tokens_per_s=%.0f ms_per_step=%.2f peak_rss_mb=%.1f"
          % (a.config, "infer" if a.infer else "train", a.threads, B, a.steps,
             a.steps * B / dt, tokens / dt, 1000 * dt / a.steps, rss))


if __name__ == "__main__":
    sys.exit(main())

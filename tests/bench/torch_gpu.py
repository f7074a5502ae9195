"""torch_gpu.py: the PyTorch side of tests/bench/gpu.sh: the model of
torch_model.py (same functional primitives, same batches padded to T, same
AdamW with weight decay on matrices and clipping at 1.0) trained on a CUDA
device, in bf16 autocast (the products in bf16, fp32 master weights, as
agn's default precision) or fp32 (TF32 off), eagerly or through
torch.compile.  AdamW is PyTorch's fused CUDA kernel.  Batches are moved to
the device before the clock starts; the clock reads after a
torch.cuda.synchronize().

Prints one line of key=value pairs: samples_per_s, tokens_per_s (real
tokens), ms_per_step, and impl=.

  torch_gpu.py --tokens FILE --vocab FILE [--config small|large]
               [--precision bf16|fp32] [--compile] [--steps N] [--warmup N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_model as tm  # noqa: E402


def to_device(m, dev):
    """The functional model's tensors, moved (as new leaves) to DEV."""
    mv = lambda t: t.detach().to(dev).requires_grad_(True)
    m.tok, m.pos = mv(m.tok), mv(m.pos)
    m.blocks = [{k: mv(v) for k, v in b.items()} for b in m.blocks]
    m.lnfw, m.lnfb, m.headw, m.headb = mv(m.lnfw), mv(m.lnfb), mv(m.headw), mv(m.headb)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--config", default="small", choices=tm.CONFIGS)
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device", file=sys.stderr)
        return 77
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = tm.CONFIGS[a.config]
    T, B = cfg["T"], cfg["B"]
    vocab, ex, C, order = tm.load_shuffled(a.tokens, a.vocab, T)
    data = [(i.to(dev), l.to(dev), n) for i, l, n in tm.batches(ex, order, B, T, a.warmup + a.steps)]
    m = to_device(tm.Model(len(vocab), C, **cfg), dev)
    m.train(True)
    opt = torch.optim.AdamW(m.param_groups(), lr=1e-3, fused=True)
    params = [p for g in opt.param_groups for p in g["params"]]
    fwd = torch.compile(m.forward) if a.compile else m.forward

    def step(ids, labels):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = F.cross_entropy(fwd(ids, True).float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    tokens, t0 = 0, 0.0
    for i, (ids, labels, ntok) in enumerate(data):
        if i == a.warmup:
            torch.cuda.synchronize()
            t0, tokens = time.perf_counter(), 0
        tokens += ntok
        step(ids, labels)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    impl = "torch-%s%s" % ("compile" if a.compile else "eager", "" if a.precision == "bf16" else "-fp32")
    print("impl=%s config=%s mode=train padding=max device=%s batch=%d steps=%d "
          "samples_per_s=%.1f tokens_per_s=%.0f ms_per_step=%.3f"
          % (impl, a.config, torch.cuda.get_device_name(0).replace(" ", "_"), B, a.steps,
             a.steps * B / dt, tokens / dt, 1000 * dt / a.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

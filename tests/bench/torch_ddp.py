"""torch_ddp.py: the PyTorch side of tests/bench/ddp.sh.

The model of tests/bench/torch_model.py (agn's classifier from
torch.nn.functional primitives; every batch padded to T as the study did;
dropout 0.1; AdamW; clipping at 1.0), trained with W processes: W = 1 is
plain PyTorch, W > 1 is DistributedDataParallel over the gloo backend on
this host, each rank taking its slice of the same global batch.

Exposed communication: each rank first runs --steps timed steps with DDP's
gradient all-reduce, then the same number of steps inside no_sync() (the
same computation with no all-reduce).  The difference per step is the
communication DDP did not hide behind backward; its share of the synced
step time is printed as exposed_comm_share.

Prints one line of key=value pairs (rank 0): samples_per_s (global, synced
steps), ms_per_step, ms_per_step_nosync, exposed_comm_share, peak_rss_mb.

  torch_ddp.py --tokens FILE --vocab FILE [--config small|large]
               [--world W] [--threads N] [--steps N] [--warmup N] [--bind 0|1]
"""
import argparse
import os
import resource
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import CONFIGS, Model, load_shuffled  # noqa: E402


class Net(torch.nn.Module):
    """torch_model.Model's tensors as registered Parameters, for DDP."""

    def __init__(self, m):
        super().__init__()
        m.tok = torch.nn.Parameter(m.tok.detach())
        m.pos = torch.nn.Parameter(m.pos.detach())
        for b in m.blocks:
            for k in b:
                b[k] = torch.nn.Parameter(b[k].detach())
        m.lnfw, m.lnfb = torch.nn.Parameter(m.lnfw.detach()), torch.nn.Parameter(m.lnfb.detach())
        m.headw, m.headb = torch.nn.Parameter(m.headw.detach()), torch.nn.Parameter(m.headb.detach())
        self.m = m
        self.ps = torch.nn.ParameterList(m.params())

    def forward(self, ids):
        return self.m.forward(ids, self.training)


def rank_main(rank, a, port):
    world = a.world
    # bound as agn's forked ranks are (agn-train --bind-to core): a block of
    # the allowed CPUs each, when there are enough
    cpus = sorted(os.sched_getaffinity(0))
    if a.bind and 1 < world <= len(cpus):
        n = len(cpus)
        os.sched_setaffinity(0, cpus[n * rank // world: n * (rank + 1) // world])
    torch.set_num_threads(a.threads)
    if world > 1:
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port,
                                rank=rank, world_size=world)
    cfg = CONFIGS[a.config]
    T, B = cfg["T"], cfg["B"]
    vocab, ex, C, order = load_shuffled(a.tokens, a.vocab, T)
    net = Net(Model(len(vocab), C, **cfg))
    net.train()
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    ps = list(net.parameters())
    decay = [p for p in ps if p.dim() == 2]
    nodecay = [p for p in ps if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": nodecay, "weight_decay": 0.0}], lr=1e-3)
    lo, hi = B * rank // world, B * (rank + 1) // world
    cursor = 0

    def step(sync):
        nonlocal cursor
        rows = [ex[order[(cursor + r) % len(ex)]] for r in range(B)][lo:hi]
        cursor += B
        ids = torch.zeros(len(rows), T, dtype=torch.long)  # padded to T
        for r, (_, t) in enumerate(rows):
            ids[r, : len(t)] = torch.tensor(t)
        labels = torch.tensor([l for l, _ in rows])
        opt.zero_grad()
        # the mean over the global batch: DDP averages the ranks' gradients
        if sync or world == 1:
            loss = F.cross_entropy(model(ids), labels)
            loss.backward()
        else:
            with model.no_sync():
                loss = F.cross_entropy(model(ids), labels)
                loss.backward()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        opt.step()

    for _ in range(a.warmup):
        step(True)
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step(True)
    if world > 1:
        dist.barrier()
    t_sync = (time.perf_counter() - t0) / a.steps
    t_nosync = t_sync
    if world > 1:
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step(False)
        dist.barrier()
        t_nosync = (time.perf_counter() - t0) / a.steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if rank == 0:
        share = max(0.0, (t_sync - t_nosync) / t_sync)
        print("impl=torch config=%s world=%d threads=%d batch=%d steps=%d samples_per_s=%.2f "
              "ms_per_step=%.1f ms_per_step_nosync=%.1f exposed_comm_share=%.4f peak_rss_mb=%.1f"
              % (a.config, world, a.threads, B, a.steps, B / t_sync, 1000 * t_sync,
                 1000 * t_nosync, share, rss), flush=True)
    if world > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--config", default="small", choices=CONFIGS)
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", type=int, default=1, help="1: each rank on its own CPUs")
    a = ap.parse_args()
    port = a.port or 29500 + os.getpid() % 2000
    if a.world == 1:
        rank_main(0, a, port)
    else:
        mp.spawn(rank_main, args=(a, port), nprocs=a.world, join=True)


if __name__ == "__main__":
    sys.exit(main())

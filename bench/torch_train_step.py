#!/usr/bin/env python3
"""PyTorch CPU training step of GPT-2 124M, the peer of `shoggo bench`.

    reference/.venv/bin/python bench/torch_train_step.py --batch 4 --seq 64 --threads 2

Same model config as shoggo's gpt2 preset (transformers GPT2LMHeadModel: 12
layers, 768 hidden, 12 heads, vocab 50257, tied LM head; dropout 0, since
shoggo has none), random init, random tokens, labels = inputs (shifted inside
the loss, as shoggo's ShiftLabels), fp32, torch.optim.AdamW (lr 1e-4, torch
defaults otherwise; --adamw picks torch's implementation: the default per-tensor
loop, foreach or fused) with gradient clipping to norm 1.0, as `shoggo bench`.

Phases timed per step: forward (model(ids) incl. the LM-head logits and the
loss), backward (loss.backward()), optimizer (clip_grad_norm_ + AdamW step +
zero_grad). Prints medians over the timed steps, wall and CPU time
(getrusage, all threads), peak RSS (VmHWM), and a RESULT line that
bench/train_step.sh parses.
"""
import argparse
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default",
                    help="torch.optim.AdamW implementation: torch's default (the per-tensor loop on CPU), "
                         "foreach=True or fused=True")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from transformers import GPT2Config, GPT2LMHeadModel
    import transformers

    cfg = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                     activation_function="gelu_new", tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg).float()
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    kw = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[a.adamw]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **kw)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    V = cfg.vocab_size

    fw, bw, op, cf, cb, co = [], [], [], [], [], []
    loss_v = 0.0
    for i in range(a.warmup + a.steps):
        c0, t0 = cpu_s(), time.perf_counter()
        logits = model(ids).logits
        loss = F.cross_entropy(logits[:, :-1, :].reshape(-1, V), ids[:, 1:].reshape(-1))
        c1, t1 = cpu_s(), time.perf_counter()
        loss.backward()
        c2, t2 = cpu_s(), time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        c3, t3 = cpu_s(), time.perf_counter()
        loss_v = loss.item()
        del logits, loss
        if i >= a.warmup:
            fw.append((t1 - t0) * 1e3); bw.append((t2 - t1) * 1e3); op.append((t3 - t2) * 1e3)
            cf.append((c1 - c0) * 1e3); cb.append((c2 - c1) * 1e3); co.append((c3 - c2) * 1e3)

    med = statistics.median
    steps = [x + y + z for x, y, z in zip(fw, bw, op)]
    csteps = [x + y + z for x, y, z in zip(cf, cb, co)]
    step = med(steps)
    tok = a.batch * a.seq
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"GPT-2 {nparams} parameters, B={a.batch}, T={a.seq}, fp32, AdamW ({a.adamw}) + clip 1.0")
    print(f"{a.warmup} warmup + {a.steps} timed steps; medians (ms):")
    print(f"{'forward+loss':>14} {'backward':>10} {'optimizer':>10} {'step':>9} {'min step':>9} {'tokens/s':>9}")
    print(f"{med(fw):14.1f} {med(bw):10.1f} {med(op):10.1f} {step:9.1f} {min(steps):9.1f} {tok / (step / 1e3):9.1f}  (wall ms)")
    print(f"{med(cf):14.1f} {med(cb):10.1f} {med(co):10.1f} {med(csteps):9.1f}  (CPU ms, all threads; "
          f"{100 * med(csteps) / step / a.threads:.0f}% of {a.threads} threads busy)")
    print(f"final loss {loss_v:.4f}")
    rss = vm_hwm_mib()
    print(f"peak RSS (VmHWM) {rss:.0f} MiB")
    print(f"RESULT impl=torch adamw={a.adamw} step_ms={step:.1f} cpu_ms={med(csteps):.1f} tokens_per_s={tok / (step / 1e3):.2f} rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()

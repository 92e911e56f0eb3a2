#!/usr/bin/env python3
"""DPO loss parity fixture for shoggo's align.DPOLoss (align/parity_test.go).

    /work/refvenv/.venv/bin/python reference/make_dpo_fixture.py

It calls TRL 1.16's own DPOTrainer._compute_loss (not a copy of it) on fixed log-prob tensors:
the trainer object is built without a model (object.__new__) with the attributes that method
reads, precompute_ref_logps = True (the reference log-probs are inputs), and a stub model whose
forward returns per-token log-probs made from a leaf tensor of per-sequence log-probs (each
sequence's sum sits on its first completion token), so autograd gives d loss / d policy logp.

Cases: sigmoid, ipo, hinge, robust (TRL applies label smoothing in "robust") at several betas.
TRL 1.16's sigmoid loss ignores label_smoothing; shoggo's sigmoid with label smoothing is the
conservative DPO (cDPO) form of TRL before 1.0, replicated here exactly:
    -(1-eps) * logsigmoid(beta*d) - eps * logsigmoid(-beta*d)

Writes testdata/align/dpo_parity.safetensors:
  policy_chosen, policy_rejected, ref_chosen, ref_rejected (N) float64, n_chosen, n_rejected (N) float64 (token counts)
  case<k>.loss (1), case<k>.grad_chosen (N), case<k>.grad_rejected (N), case<k>.metrics (5:
  rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, loss) float64
and metadata case<k> = "type,beta,label_smoothing". float64 throughout.
"""
from __future__ import annotations

import collections
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from trl import DPOTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata" / "align" / "dpo_parity.safetensors"

CASES = [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.0), ("ipo", 0.1, 0.0), ("ipo", 0.7, 0.0),
         ("hinge", 0.1, 0.0), ("hinge", 1.0, 0.0), ("robust", 0.2, 0.1), ("robust", 0.5, 0.3),
         ("cdpo", 0.1, 0.2)]


class Acc:
    device = torch.device("cpu")

    def gather(self, x):
        return x

    def gather_for_metrics(self, x):
        return x


def trl_loss(loss_type, beta, eps, lp, ref, comp_mask):
    tr = object.__new__(DPOTrainer)
    tr.beta, tr.label_smoothing = beta, eps
    tr.loss_types, tr.loss_weights = [loss_type], [1.0]
    tr.ld_alpha, tr.f_divergence_type, tr.use_weighting = None, "reverse_kl", False
    tr.aux_loss_enabled, tr.precompute_ref_logps = False, True
    tr._metrics = {"train": collections.defaultdict(list), "eval": collections.defaultdict(list)}
    tr._total_train_tokens, tr._tp_size = 0, 1
    tr.accelerator = Acc()
    tr.model = types.SimpleNamespace(training=True)
    n2, T = comp_mask.shape
    first = torch.zeros(n2, T - 1, dtype=torch.float64)
    for r in range(n2):
        first[r, int(comp_mask[r, 1:].nonzero()[0])] = 1

    def model(**kw):
        return types.SimpleNamespace(log_probs=lp[:, None] * first, entropy=torch.zeros(n2, T - 1),
                                     mean_logits=torch.zeros(n2, T - 1), is_top1=torch.zeros(n2, T - 1, dtype=torch.bool))
    inputs = {"input_ids": torch.zeros(n2, T, dtype=torch.long), "attention_mask": torch.ones(n2, T, dtype=torch.long),
              "completion_mask": comp_mask, "ref_chosen_logps": ref[: n2 // 2], "ref_rejected_logps": ref[n2 // 2:]}
    loss = tr._compute_loss(model, inputs, False)
    m = tr._metrics["train"]
    metrics = [m["rewards/chosen"][0], m["rewards/rejected"][0], m["rewards/accuracies"][0], m["rewards/margins"][0]]
    return loss, metrics


def main() -> int:
    torch.manual_seed(0)
    N = 6
    pc = -torch.rand(N, dtype=torch.float64) * 20
    pr = -torch.rand(N, dtype=torch.float64) * 20
    rc = pc + torch.randn(N, dtype=torch.float64) * 2
    rr = pr + torch.randn(N, dtype=torch.float64) * 2
    nc = torch.randint(1, 7, (N,))
    nr = torch.randint(1, 7, (N,))
    T = 2 + int(max(nc.max(), nr.max()))
    comp = torch.zeros(2 * N, T, dtype=torch.long)
    for i, n in enumerate(list(nc) + list(nr)):
        comp[i, 2:2 + int(n)] = 1
    out = {"policy_chosen": pc, "policy_rejected": pr, "ref_chosen": rc, "ref_rejected": rr,
           "n_chosen": nc.double(), "n_rejected": nr.double()}
    meta = {}
    for k, (typ, beta, eps) in enumerate(CASES):
        lp = torch.cat([pc, pr]).clone().requires_grad_(True)
        ref = torch.cat([rc, rr])
        if typ == "cdpo":
            d = (lp[:N] - rc) - (lp[N:] - rr)
            loss = (-(1 - eps) * F.logsigmoid(beta * d) - eps * F.logsigmoid(-beta * d)).mean()
            r_c, r_r = beta * (lp[:N] - rc).detach(), beta * (lp[N:] - rr).detach()
            metrics = [r_c.mean().item(), r_r.mean().item(), (r_c > r_r).double().mean().item(), (r_c - r_r).mean().item()]
            typ = "sigmoid"
        else:
            loss, metrics = trl_loss(typ, beta, eps, lp, ref, comp)
        loss.backward()
        out[f"case{k}.loss"] = loss.detach().reshape(1).double()
        out[f"case{k}.grad_chosen"] = lp.grad[:N].clone()
        out[f"case{k}.grad_rejected"] = lp.grad[N:].clone()
        out[f"case{k}.metrics"] = torch.tensor(metrics + [loss.item()], dtype=torch.float64)
        meta[f"case{k}"] = f"{typ},{beta},{eps}"
        print(f"case{k} {meta[f'case{k}']}: loss {loss.item():.6f}")
    meta["cases"] = str(len(CASES))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, str(OUT), metadata=meta)
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())

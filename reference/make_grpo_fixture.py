"""GRPO parity fixture: TRL 1.16's GRPO advantages and loss on fixed tensors.

Writes testdata/align/grpo_parity.json. The loss lines replicate
trl/trainer/grpo_trainer.py GRPOTrainer._compute_loss (token-level importance
sampling, loss types grpo, bnpo, dr_grpo, dapo, KL term with the k3 estimator,
one process, no gradient accumulation, steps_per_generation = 1) and the
advantage lines _generate_and_score_completions (scale_rewards="group"); the
reward std is trl.trainer.utils.nanstd (Bessel-corrected). Gradients of the
loss with respect to the per-token log-probs come from torch autograd.

Run: /work/refvenv/.venv/bin/python reference/make_grpo_fixture.py
"""
import json
import os

import torch
import trl
from trl.trainer.utils import nanstd

torch.manual_seed(0)
B, T, G = 6, 5, 3
MAXLEN = T


def advantages(rewards, scale):
    mean = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    std = nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    adv = rewards - mean
    if scale:
        adv = adv / (std + 1e-4)
    return torch.nan_to_num(adv, nan=0.0)


def loss_fn(per_token_logps, old, ref, mask, adv, loss_type, beta, eps_low, eps_high):
    advantages = adv.unsqueeze(1)
    old_per_token_logps = per_token_logps.detach() if old is None else old
    log_ratio = per_token_logps - old_per_token_logps
    coef_1 = torch.exp(log_ratio)
    if beta != 0.0:
        per_token_kl = torch.exp(ref - per_token_logps) - (ref - per_token_logps) - 1
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss1 = coef_1 * advantages
    per_token_loss2 = coef_2 * advantages
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * MAXLEN)
    elif loss_type == "dapo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    return loss


rewards = torch.tensor([1.0, 0.0, 0.0, 0.5, 0.5, 0.5], dtype=torch.float64)
mask = torch.ones(B, T, dtype=torch.float64)
mask[0, 3:] = 0
mask[2, 1:] = 0
mask[4, 4:] = 0
lp = (-torch.rand(B, T, dtype=torch.float64) * 3)
old = lp + 0.3 * torch.randn(B, T, dtype=torch.float64)
ref = lp + 0.2 * torch.randn(B, T, dtype=torch.float64)
cases = []
for scale in (True, False):
    adv = advantages(rewards, scale)
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"):
        for use_old in (False, True):
            for beta in (0.0, 0.04):
                x = lp.clone().requires_grad_(True)
                loss = loss_fn(x, old if use_old else None, ref, mask, adv, loss_type, beta, 0.2, 0.28)
                loss.backward()
                cases.append({"scale_rewards": scale, "loss_type": loss_type, "use_old": use_old, "beta": beta,
                              "epsilon": 0.2, "epsilon_high": 0.28, "advantages": adv.tolist(),
                              "loss": loss.item(), "grad": x.grad.flatten().tolist()})
out = {"trl_version": trl.__version__, "B": B, "T": T, "G": G, "max_completion_length": MAXLEN,
       "rewards": rewards.tolist(), "mask": mask.flatten().tolist(), "lp": lp.flatten().tolist(),
       "old": old.flatten().tolist(), "ref": ref.flatten().tolist(), "cases": cases}
path = os.path.join(os.path.dirname(__file__), "..", "testdata", "align", "grpo_parity.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path, len(cases), "cases, trl", trl.__version__)

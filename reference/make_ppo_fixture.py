"""PPO parity fixture: GAE, whitening, the clipped PPO losses and the
adaptive KL controller in plain PyTorch, as TRL's PPOTrainer (<= 0.11, before
its removal) computed them: compute_rewards (per-token -kl_coef*(logp-ref),
score added at the last token), compute_advantages (GAE loop, returns =
advantages + values, masked_whiten), loss (clipped policy and value losses,
masked means) and AdaptiveKLController.update.

Writes testdata/align/ppo_parity.json (float64; gradients by autograd).
Run: /work/refvenv/.venv/bin/python reference/make_ppo_fixture.py
"""
import json
import os

import torch

torch.manual_seed(1)
B, L = 4, 6
lens = [6, 3, 1, 5]
gamma, lam, kl_coef = 0.9, 0.95, 0.2
cliprange, cliprange_value, vf_coef = 0.2, 0.2, 0.1


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_var(x, m):
    mean = masked_mean(x, m)
    c = x - mean
    var = masked_mean(c ** 2, m)
    n = m.sum()
    return var * n / (n - 1)


def masked_whiten(x, m, shift_mean=True):
    mean, var = masked_mean(x, m), masked_var(x, m)
    w = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        w += mean
    return w * m


mask = torch.zeros(B, L, dtype=torch.float64)
for b, n in enumerate(lens):
    mask[b, :n] = 1
logp_old = -torch.rand(B, L, dtype=torch.float64) * 2
ref = logp_old + 0.3 * torch.randn(B, L, dtype=torch.float64)
values = torch.randn(B, L, dtype=torch.float64) * mask
scores = torch.tensor([1.0, 0.0, 1.0, 0.5], dtype=torch.float64)

# compute_rewards
kl = (logp_old - ref) * mask
rewards = -kl_coef * kl
for b, n in enumerate(lens):
    rewards[b, n - 1] += scores[b]
rewards = rewards * mask

# compute_advantages
lastgaelam = 0
rev = []
for t in reversed(range(L)):
    nextvalues = values[:, t + 1] if t < L - 1 else 0.0
    delta = rewards[:, t] + gamma * nextvalues - values[:, t]
    lastgaelam = delta + gamma * lam * lastgaelam
    rev.append(lastgaelam)
adv_raw = torch.stack(rev[::-1]).transpose(0, 1) * mask
returns = (adv_raw + values) * mask
adv = masked_whiten(adv_raw, mask)

# loss at new log-probs / values
lp = (logp_old + 0.25 * torch.randn(B, L, dtype=torch.float64)).requires_grad_(True)
vpred = (values + 0.3 * torch.randn(B, L, dtype=torch.float64)).requires_grad_(True)
vpredclipped = torch.clamp(vpred, values - cliprange_value, values + cliprange_value)
vf_losses1 = (vpred - returns) ** 2
vf_losses2 = (vpredclipped - returns) ** 2
vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
ratio = torch.exp(lp - logp_old)
pg_losses = -adv * ratio
pg_losses2 = -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
loss = pg_loss + vf_coef * vf_loss
loss.backward()
pg_clipfrac = masked_mean(torch.gt(pg_losses2, pg_losses).double(), mask)
vf_clipfrac = masked_mean(torch.gt(vf_losses2, vf_losses1).double(), mask)

# adaptive KL controller (init 0.2, target 6, horizon 10000)
ctl = 0.2
for current, n in [(8.0, 256), (3.0, 256), (100.0, 64)]:
    err = min(max(current / 6 - 1, -0.2), 0.2)
    ctl *= 1 + err * n / 10000
f = lambda t: t.detach().flatten().tolist()
out = {"B": B, "T": L, "gamma": gamma, "lambda": lam, "kl_coef": kl_coef, "cliprange": cliprange,
       "cliprange_value": cliprange_value, "vf_coef": vf_coef, "mask": f(mask), "logp_old": f(logp_old),
       "ref": f(ref), "values": f(values), "scores": scores.tolist(), "rewards": f(rewards),
       "advantages_raw": f(adv_raw), "returns": f(returns), "advantages": f(adv), "lp": f(lp), "vpred": f(vpred),
       "loss": loss.item(), "pg_loss": pg_loss.item(), "vf_loss": vf_loss.item(), "pg_clipfrac": pg_clipfrac.item(),
       "vf_clipfrac": vf_clipfrac.item(), "grad_lp": f(lp.grad), "grad_v": f(vpred.grad),
       "kl_ctl_updates": [[8.0, 256], [3.0, 256], [100.0, 64]], "kl_ctl_value": ctl}
path = os.path.join(os.path.dirname(__file__), "..", "testdata", "align", "ppo_parity.json")
with open(path, "w") as fh:
    json.dump(out, fh, indent=1)
print("wrote", path)

#!/usr/bin/env python3
"""How close can shoggo's mixed precision get to torch's autocast? A diagnostic, not a fixture.

    /work/refvenv/bin/python reference/emulate_autocast_contract.py   (after make_autocast_fixture.py)

shoggo's mixed precision (the team contract for issue 13, /work/notes/CONTRACT.md) rounds at
different places than PyTorch's CPU autocast of the transformers models does. Examples:
torch's GPT-2 eager attention runs its softmax in bf16 and gelu_new as a chain of bf16
elementwise ops, Llama's RoPE promotes q/k back to fp32 (cos/sin are fp32), and autocast's
backward rounds every linear's dx and dW to the half dtype; shoggo keeps softmax, GELU math
and all gradient results in fp32 and rounds only stored activations and GEMM operands.

This script re-implements the three tiny fixture models (testdata/models/{gpt2,llama,qwen2})
from scratch in torch fp32 with explicit rounding exactly where the contract puts it:

  forward:  every stored activation rounded to P (ln1, q, k, v, RoPE output, attention output,
            ln2, h1, h2, act, lnf); every linear computes round(round(x) @ round(W)^T + round(b))
            with fp32 accumulation (also when the destination is fp32: the o/proj/down output
            added to the fp32 residual); logits = round(lnf @ round(W_lm)^T); norms, softmax,
            attention math, GELU/SwiGLU math, cross-entropy in fp32 from the rounded values.
  backward: linears use round(dy) and round(W) (and the stored 16-bit x), accumulate in fp32
            and do not round dx, dW, db; attention's backward is flash-style from the stored
            16-bit q, k, v, out (the softmax term uses the rounded out); every other gradient
            is fp32.

Without rounding the same code must reproduce transformers' fp32 fixtures (checked: a test of
the re-implementation). With rounding it predicts where a faithful implementation of the
contract lands relative to torch_P; make_autocast_fixture.py's D is torch_P vs torch_fp32.
The numbers calibrate the tolerances of model/autocast_parity_test.go (see reference/README.md).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "testdata" / "models"
AUTOCAST = ROOT / "testdata" / "autocast"
IGNORE = -100


class Round(torch.autograd.Function):
    """Store in 16 bits: the values are rounded, the gradient passes as it is (fp32 scratch)."""

    @staticmethod
    def forward(ctx, x, dt):
        return x.to(dt).float() if dt is not None else x

    @staticmethod
    def backward(ctx, g):
        return g, None


class Linear(torch.autograd.Function):
    """y = round(round(x) @ round(W)^T + round(b)); dx = round(dy) @ round(W), dW = round(dy)^T @ round(x)."""

    @staticmethod
    def forward(ctx, x, w, b, dt):
        r = (lambda t: t.to(dt).float()) if dt is not None else (lambda t: t)
        xr, wr = r(x), r(w)
        ctx.save_for_backward(xr, wr)
        ctx.dt, ctx.has_b = dt, b is not None
        y = xr @ wr.t()
        if b is not None:
            y = y + r(b)
        return r(y)

    @staticmethod
    def backward(ctx, dy):
        xr, wr = ctx.saved_tensors
        dyr = dy.to(ctx.dt).float() if ctx.dt is not None else dy
        dx = dyr @ wr
        dw = dyr.reshape(-1, dyr.shape[-1]).t() @ xr.reshape(-1, xr.shape[-1])
        db = dyr.reshape(-1, dyr.shape[-1]).sum(0) if ctx.has_b else None
        return dx, dw, db, None


def lin(x, w, b, dt):
    return Linear.apply(x, w, b, dt)


def R(x, dt):
    return Round.apply(x, dt)


class Attention(torch.autograd.Function):
    """Causal attention on (B, H, T, hd) rounded q, k, v: fp32 math, the output rounded to P.

    The backward is the flash-attention one the contract prescribes (AttentionBackward gets the
    16-bit out and the fp32 lse): P recomputed in fp32, and the softmax term
    rowsum(dout * out) uses the ROUNDED out, as shoggo's kernel does. (Autograd through
    p @ v would use the unrounded product; that alone moves GPT-2 bf16 from 0.87 to 0.93 D.)
    """

    @staticmethod
    def forward(ctx, q, k, v, dt):
        T, hd = q.shape[-2], q.shape[-1]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        p = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
        o = p @ v
        if dt is not None:
            o = o.to(dt).float()
        ctx.save_for_backward(q, k, v, p, o)
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, p, o = ctx.saved_tensors
        hd = q.shape[-1]
        dv = p.transpose(-1, -2) @ do
        dp = do @ v.transpose(-1, -2)
        ds = p * (dp - (do * o).sum(-1, keepdim=True)) / math.sqrt(hd)
        return ds @ k, ds.transpose(-1, -2) @ q, dv, None


def attention(q, k, v, dt):
    """q (B, H, T, hd), k/v (B, KVH, T, hd) already rounded (GQA: KV heads repeated)."""
    rep = q.shape[1] // k.shape[1]
    return Attention.apply(q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), dt)


def rope(x, pos, theta, dt):
    """HF rotate_half RoPE on (B, H, T, hd), fp32 from the rounded x, the result rounded."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    f = pos[:, None].float() * inv[None, :]
    emb = torch.cat([f, f], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    rot = torch.cat([-x2, x1], dim=-1)
    return R(x * cos + rot * sin, dt)


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def heads(x, n):
    B, T, C = x.shape
    return x.view(B, T, n, C // n).transpose(1, 2)


def merge(x):
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)


def gpt2(p, cfg, ids, dt):
    B, T = ids.shape
    H, L, eps = cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    pre = "transformer."
    x = p[pre + "wte.weight"][ids] + p[pre + "wpe.weight"][torch.arange(T)][None]
    for i in range(L):
        b = f"{pre}h.{i}."
        ln1 = R(F.layer_norm(x, (x.shape[-1],), p[b + "ln_1.weight"], p[b + "ln_1.bias"], eps), dt)
        wqkv, bqkv = p[b + "attn.c_attn.weight"], p[b + "attn.c_attn.bias"]  # Conv1D (in, out)
        C = x.shape[-1]
        q = lin(ln1, wqkv[:, :C].t(), bqkv[:C], dt)
        k = lin(ln1, wqkv[:, C : 2 * C].t(), bqkv[C : 2 * C], dt)
        v = lin(ln1, wqkv[:, 2 * C :].t(), bqkv[2 * C :], dt)
        att = merge(attention(heads(q, H), heads(k, H), heads(v, H), dt))
        x = x + lin(att, p[b + "attn.c_proj.weight"].t(), p[b + "attn.c_proj.bias"], dt)
        ln2 = R(F.layer_norm(x, (C,), p[b + "ln_2.weight"], p[b + "ln_2.bias"], eps), dt)
        h1 = lin(ln2, p[b + "mlp.c_fc.weight"].t(), p[b + "mlp.c_fc.bias"], dt)
        act = R(gelu_new(h1), dt)
        x = x + lin(act, p[b + "mlp.c_proj.weight"].t(), p[b + "mlp.c_proj.bias"], dt)
    lnf = R(F.layer_norm(x, (x.shape[-1],), p[pre + "ln_f.weight"], p[pre + "ln_f.bias"], eps), dt)
    return lin(lnf, p[pre + "wte.weight"], None, dt)


def llama_like(p, cfg, ids, dt):
    B, T = ids.shape
    H, KVH, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    pos = torch.arange(T)
    x = p["model.embed_tokens.weight"][ids]
    g = p.get
    for i in range(L):
        b = f"model.layers.{i}."
        ln1 = R(rms(x, p[b + "input_layernorm.weight"], eps), dt)
        q = lin(ln1, p[b + "self_attn.q_proj.weight"], g(b + "self_attn.q_proj.bias"), dt)
        k = lin(ln1, p[b + "self_attn.k_proj.weight"], g(b + "self_attn.k_proj.bias"), dt)
        v = lin(ln1, p[b + "self_attn.v_proj.weight"], g(b + "self_attn.v_proj.bias"), dt)
        q, k = rope(heads(q, H), pos, theta, dt), rope(heads(k, KVH), pos, theta, dt)
        att = merge(attention(q, k, heads(v, KVH), dt))
        x = x + lin(att, p[b + "self_attn.o_proj.weight"], g(b + "self_attn.o_proj.bias"), dt)
        ln2 = R(rms(x, p[b + "post_attention_layernorm.weight"], eps), dt)
        h1 = lin(ln2, p[b + "mlp.gate_proj.weight"], None, dt)
        h2 = lin(ln2, p[b + "mlp.up_proj.weight"], None, dt)
        act = R(F.silu(h1) * h2, dt)
        x = x + lin(act, p[b + "mlp.down_proj.weight"], None, dt)
    lnf = R(rms(x, p["model.norm.weight"], eps), dt)
    w = p.get("lm_head.weight", p["model.embed_tokens.weight"])
    return lin(lnf, w, None, dt)


def run(name, dt, scale):
    import json

    cfg = json.loads((MODELS / name / "config.json").read_text())
    sd = load_file(str(MODELS / name / "model.safetensors"))
    params = {k: v.float().clone().requires_grad_(True) for k, v in sd.items()}
    fx = load_file(str(MODELS / name / "fixtures.safetensors"))
    ids, labels = fx["input_ids"], fx["labels"]
    fwd = gpt2 if cfg["model_type"] == "gpt2" else llama_like
    logits = fwd(params, cfg, ids, dt)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
    (loss * scale).backward()
    grads = {k: v.grad / scale for k, v in params.items() if v.grad is not None}
    return loss.detach(), logits.detach(), grads


def flat(g, names):
    return torch.cat([g[k].double().reshape(-1) for k in names])


UNIT_ROUNDOFF = {"bf16": 2.0**-9, "fp16": 2.0**-11}


def grads_of(f):
    return {k[5:]: v for k, v in f.items() if k.startswith("grad.")}


def metrics(prec, s, tp, t32):
    """The quantities model/autocast_parity_test.go checks, for an implementation s (dict with
    loss, logits, grads) against torch_P tp and torch_fp32 t32 (fixtures)."""
    names = sorted(t32["grads"])
    gs, gp, g32 = flat(s["grads"], names), flat(tp["grads"], names), flat(t32["grads"], names)
    D = (gp - g32).norm().item() / g32.norm().item()
    e = (gs - gp).norm().item() / g32.norm().item()
    a, b = gs - g32, gp - g32
    cos = (a @ b).item() / (a.norm() * b.norm()).item()
    u = UNIT_ROUNDOFF[prec]
    t_ratio = 0.0
    for k in names:
        ref, tor = t32["grads"][k].double(), tp["grads"][k].double()
        d = (s["grads"][k].double() - tor).abs().max().item()
        Dt = (tor - ref).abs().max().item()
        t_ratio = max(t_ratio, d / (Dt + u * ref.abs().max().item()))
    Dl = abs(tp["loss"] - t32["loss"])
    lg_s, lg_p, lg_32 = s["logits"].double(), tp["logits"].double(), t32["logits"].double()
    Dlg = (lg_p - lg_32).abs().max().item()
    return {
        "D": D,
        "e/D": e / D,
        "|a|/D": a.norm().item() / b.norm().item(),
        "cos": cos,
        "loss/(D+u)": abs(s["loss"] - tp["loss"]) / (Dl + u),
        "loss/D": abs(s["loss"] - tp["loss"]) / Dl,
        "logits/D": (lg_s - lg_p).abs().max().item() / Dlg,
        "logits-rel-L2/D": (lg_s - lg_p).norm().item() / (lg_p - lg_32).norm().item(),
        "tensor": t_ratio,
    }


def fixture(f):
    return {"loss": f["loss"].item(), "logits": f["logits"], "grads": grads_of(f)}


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cols = ["D", "e/D", "|a|/D", "cos", "loss/D", "loss/(D+u)", "logits/D", "logits-rel-L2/D", "tensor"]
    print(f"{'model':6s} {'P':4s} " + " ".join(f"{c:>15s}" for c in cols))
    for name in ["gpt2", "llama", "qwen2"]:
        t32 = fixture(load_file(str(MODELS / name / "fixtures.safetensors")))
        loss, logits, g = run(name, None, 1.0)
        sanity = max(
            max((g[k] - t32["grads"][k]).abs().max().item() / t32["grads"][k].abs().max().item() for k in t32["grads"]),
            abs(loss.item() - t32["loss"]),
            (logits - t32["logits"]).abs().max().item(),
        )
        assert sanity < 1e-5, f"{name}: the re-implementation does not match transformers in fp32 ({sanity:.3g})"
        for prec, dt, scale in (("bf16", torch.bfloat16, 1.0), ("fp16", torch.float16, 1024.0)):
            tp = fixture(load_file(str(AUTOCAST / f"{name}_{prec}.safetensors")))
            loss, logits, g = run(name, dt, scale)
            m = metrics(prec, {"loss": loss.item(), "logits": logits, "grads": g}, tp, t32)
            print(f"{name:6s} {prec:4s} " + " ".join(f"{m[c]:15.3g}" for c in cols))
    print("(the fp32 re-implementation agrees with transformers' fp32 fixtures within 1e-5 for every model)")


if __name__ == "__main__":
    sys.exit(main())

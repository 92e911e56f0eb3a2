#!/usr/bin/env python3
"""Per-sequence log-probability fixtures for shoggo's SeqLogProbs (model/logprob_test.go).

    /work/refvenv/.venv/bin/python reference/make_logprob_fixture.py
    (or reference/setup.sh && reference/.venv/bin/python reference/make_logprob_fixture.py)

For the tiny random models testdata/models/{llama,gpt2} (made by make_fixtures.py; llama is
untied with GQA, gpt2 is tied with learned positions and Conv1D weights) it runs a ragged batch
of B=3 rows of T=9 tokens through transformers (fp32, eager attention) and records, in
testdata/logprob/<model>.safetensors:

  input_ids (B, T) int64       random ids; padding positions hold junk ids
  attention_mask (B, T) int64  right padding: rows have LENGTHS real tokens
  labels (B, T) int64          = input_ids, with -100 on each row's prompt (PROMPTS tokens)
                               and on padding (the DPO/TRL convention)
  coef (B) float32             random coefficients c_b
  token_logps (B, T) float32   token_logps[b, t] = log softmax(logits[b, t])[labels[b, t+1]],
                               0 where labels[b, t+1] == -100 and at t = T-1 (shifted like
                               shoggo's targets)
  seq_logps (B) float32        sum_t token_logps[b, t] (summed in float64)
  grad.<param> float32         gradient of sum_b c_b * seq_logps[b] w.r.t. every parameter
                               (transformers layout: GPT-2 Conv1D weights are (in, out))

The log-softmax is taken in float64 from transformers' fp32 logits; the gradient flows through
the fp32 model. Deterministic: one thread, fixed seeds.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import logging  # noqa: E402

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "testdata" / "models"
OUT = ROOT / "testdata" / "logprob"
IGNORE = -100
B, T = 3, 9
LENGTHS = [9, 6, 4]  # real tokens per row (right padding after them)
PROMPTS = [3, 2, 1]  # masked prompt tokens at the start of each row
SEED = 20261202


def make_inputs(vocab: int):
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (B, T), generator=g, dtype=torch.int64)
    am = torch.zeros(B, T, dtype=torch.int64)
    labels = ids.clone()
    for b, (n, p) in enumerate(zip(LENGTHS, PROMPTS)):
        am[b, :n] = 1
        labels[b, :p] = IGNORE
        labels[b, n:] = IGNORE
    coef = torch.randn(B, generator=g, dtype=torch.float64)
    return ids, am, labels, coef


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, T) float64: position t scores labels[:, t+1]; 0 where ignored and at t = T-1."""
    lp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    tgt = labels[:, 1:]
    mask = tgt != IGNORE
    tok = lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return torch.cat([tok, torch.zeros(B, 1, dtype=tok.dtype)], dim=1)


def fixture(name: str) -> dict[str, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    ids, am, labels, coef = make_inputs(model.config.vocab_size)
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, attention_mask=am).logits
    tok = token_logps(logits, labels)
    seq = tok.sum(dim=1)
    (coef * seq).sum().backward()

    # Self-checks: each ragged row equals the same tokens run alone (padding has no effect),
    # and the summed log-probs equal minus transformers' own summed cross-entropy.
    with torch.no_grad():
        for b, n in enumerate(LENGTHS):
            alone = model(input_ids=ids[b : b + 1, :n]).logits
            d = (alone[0] - logits[b, :n]).abs().max().item()
            assert d < 1e-5, f"{name}: row {b} padded vs alone differs by {d}"
        ce = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
            labels[:, 1:].reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        assert abs(ce.item() + seq.sum().item()) < 1e-9 * (1 + abs(ce.item())), f"{name}: logps vs cross-entropy"

    fx = {
        "input_ids": ids,
        "attention_mask": am,
        "labels": labels,
        "coef": coef.float(),
        "token_logps": tok.detach().float().contiguous(),
        "seq_logps": seq.detach().float().contiguous(),
    }
    n = 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        fx["grad." + pname] = p.grad.detach().float().contiguous()
        n += 1
    print(f"{name}: seq_logps {[round(v, 4) for v in seq.tolist()]}, coef {[round(v, 4) for v in coef.tolist()]}, {n} gradients")
    return fx


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("llama", "gpt2"):
        fx = fixture(name)
        save_file(fx, str(OUT / f"{name}.safetensors"), metadata={"fixture": f"seq log-probs of testdata/models/{name}"})


if __name__ == "__main__":
    sys.exit(main())

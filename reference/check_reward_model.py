#!/usr/bin/env python3
"""Loads a reward model saved by shoggo (align.SaveRewardModel) with transformers'
AutoModelForSequenceClassification and checks that it scores the rows in
<dir>/shoggo_scores.safetensors (input_ids as float, padded with the config's pad_token_id,
scores computed by shoggo) identically: max |diff| <= 1e-4.

    /work/refvenv/.venv/bin/python reference/check_reward_model.py DIR [DIR...]
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoConfig, AutoModelForSequenceClassification  # noqa: E402


def check(d: str) -> bool:
    cfg = AutoConfig.from_pretrained(d)
    m = AutoModelForSequenceClassification.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    m.eval()
    ok = cfg.num_labels == 1 and cfg.pad_token_id is not None and type(m).__name__ == cfg.architectures[0]
    f = load_file(os.path.join(d, "shoggo_scores.safetensors"))
    ids = f["input_ids"].long()
    mask = (ids != cfg.pad_token_id).long()
    with torch.no_grad():
        got = m(input_ids=ids, attention_mask=mask).logits[:, 0]
    diff = (got - f["scores"]).abs().max().item()
    ok = ok and diff <= 1e-4
    print(f"{'ok ' if ok else 'BAD'} {d}: {type(m).__name__}, num_labels {cfg.num_labels}, pad {cfg.pad_token_id}, max |score diff| {diff:.3g}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if all([check(d) for d in sys.argv[1:]]) else 1)

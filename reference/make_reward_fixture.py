#!/usr/bin/env python3
"""Reward-model fixtures made by transformers, for align.LoadRewardModel (align/reward_test.go).

    /work/refvenv/.venv/bin/python reference/make_reward_fixture.py

For the tiny random models testdata/models/{llama,gpt2,qwen2} (llama untied with GQA, gpt2 tied
with learned positions, qwen2 with q/k/v biases) it builds <Arch>ForSequenceClassification with
num_labels = 1 and pad_token_id = PAD (the backbone's weights, score.weight drawn by transformers'
init with a fixed seed), saves it with save_pretrained to testdata/align/reward_<model>/, and
scores a batch of ragged rows, right- and left-padded with PAD, plus a row with PAD inside it
(transformers takes the rightmost non-pad token). Written to testdata/align/reward_<model>.safetensors:

  input_ids (B, T) int64   rows padded with PAD
  scores (B) float32       the model's pooled logits (num_labels = 1), fp32, eager attention
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAD = 0


def main() -> int:
    torch.set_num_threads(1)
    for name in ["llama", "gpt2", "qwen2"]:
        torch.manual_seed(1)
        src = ROOT / "testdata" / "models" / name
        m = AutoModelForSequenceClassification.from_pretrained(
            src, num_labels=1, pad_token_id=PAD, attn_implementation="eager", dtype=torch.float32)
        with torch.no_grad():
            m.score.weight.normal_(0, 0.5)  # larger than the init, so scores differ visibly
        m.eval()
        out = ROOT / "testdata" / "align" / f"reward_{name}"
        m.save_pretrained(out)
        g = torch.Generator().manual_seed(2)
        T = 9
        rows = []
        for n, left in [(9, False), (5, False), (3, False), (6, True), (4, True)]:
            ids = torch.randint(1, m.config.vocab_size, (n,), generator=g)
            pad = torch.full((T - n,), PAD)
            rows.append(torch.cat([pad, ids]) if left else torch.cat([ids, pad]))
        inner = torch.randint(1, m.config.vocab_size, (7,), generator=g)
        inner[3] = PAD
        rows.append(torch.cat([inner, torch.full((2,), PAD)]))
        ids = torch.stack(rows)
        mask = (ids != PAD).long()
        mask[-1, :7] = 1
        with torch.no_grad():
            scores = m(input_ids=ids, attention_mask=mask).logits[:, 0]
        save_file({"input_ids": ids.long().contiguous(), "attention_mask": mask.contiguous(), "scores": scores.float().contiguous()},
                  str(ROOT / "testdata" / "align" / f"reward_{name}.safetensors"))
        print(name, [round(float(s), 5) for s in scores])
    return 0


if __name__ == "__main__":
    sys.exit(main())

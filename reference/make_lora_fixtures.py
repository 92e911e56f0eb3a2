#!/usr/bin/env python3
"""Make PEFT LoRA adapters and their golden outputs for shoggo's lora package.

    reference/.venv/bin/python reference/make_lora_fixtures.py

For each case below, the tiny base model testdata/models/<base>/ (made by
make_fixtures.py) is loaded in fp32 with eager attention, a PEFT LoRA is added
(seeded; lora_dropout 0; B drawn from N(0, 0.2^2) instead of PEFT's zeros so
that the adapter changes the output), and written with save_pretrained to
testdata/lora/<base>_peft/.  Next to the adapter, fixtures.safetensors holds:

  input_ids      (B, T) int64   the base fixture's input_ids
  labels         (B, T) int64   the base fixture's labels (-100 = ignored)
  logits         (B, T, V) f32  PeftModel logits on input_ids (eval mode)
  loss           () f32         mean cross-entropy of labels (HF shift inside)
  grad.<key>     f32            d loss / d adapter weight, for every tensor of
                                adapter_model.safetensors (same key names)

and the metadata entry "report" holds print_trainable_parameters()'s line for
the freshly built PeftModel.  Output is deterministic for fixed versions.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
from contextlib import redirect_stdout
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import logging  # noqa: E402

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_hf_load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "testdata" / "models"
OUT = ROOT / "testdata" / "lora"
B_STD = 0.2

# base model -> (LoraConfig kwargs, seed)
CASES = {
    "llama": (dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), 2001),
    "gpt2": (dict(r=4, lora_alpha=8, target_modules=["c_attn"]), 2002),
    # more of the surface: every linear, rsLoRA, q/k/v biases in the base
    "qwen2": (dict(r=4, lora_alpha=16, target_modules="all-linear", use_rslora=True), 2003),
}


def build(base: str, kw: dict, seed: int):
    model = check_hf_load.load_model(MODELS / base)
    torch.manual_seed(seed)
    cfg = LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **kw)
    pm = get_peft_model(model, cfg)
    buf = io.StringIO()
    with redirect_stdout(buf):
        pm.print_trainable_parameters()
    report = buf.getvalue().strip()
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, B_STD)
    return pm, report


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for base, (kw, seed) in CASES.items():
        pm, report = build(base, kw, seed)
        d = OUT / f"{base}_peft"
        if d.exists():
            shutil.rmtree(d)
        pm.save_pretrained(str(d))
        (d / "README.md").unlink(missing_ok=True)  # PEFT's model card template, not needed
        # Make the config relocatable (it records the base path we passed) and deterministic.
        cfg_path = d / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = f"testdata/models/{base}"
        if isinstance(cfg["target_modules"], list):  # a set for "all-linear": fix its order
            cfg["target_modules"] = sorted(cfg["target_modules"])
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

        fx_in = load_file(str(MODELS / base / "fixtures.safetensors"))
        ids, labels = fx_in["input_ids"].long(), fx_in["labels"].long()
        pm.eval()
        pm.zero_grad()
        out = pm(input_ids=ids, labels=labels)
        out.loss.backward()
        fx = {
            "input_ids": ids,
            "labels": labels,
            "logits": out.logits.detach().float().contiguous(),
            "loss": out.loss.detach().float().reshape(()),
        }
        saved = load_file(str(d / "adapter_model.safetensors"))
        grads = {}
        for name, p in pm.named_parameters():
            if p.requires_grad:
                key = name.replace(".default", "")
                grads[key] = p.grad.detach().float().contiguous()
        assert set(grads) == set(saved), (sorted(grads), sorted(saved))
        for k, g in grads.items():
            fx["grad." + k] = g
        save_file(fx, str(d / "fixtures.safetensors"), metadata={"report": report})
        print(f"{d.relative_to(ROOT)}: {len(saved)} adapter tensors; {report}")


if __name__ == "__main__":
    main()

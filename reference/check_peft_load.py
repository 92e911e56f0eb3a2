#!/usr/bin/env python3
"""Prove that PEFT loads shoggo-written LoRA adapters and reproduces shoggo's logits.

    reference/.venv/bin/python reference/check_peft_load.py [ADAPTER_DIR ...] [--base DIR] [--tol 1e-4]

Each ADAPTER_DIR (default: every testdata/lora/*_shoggo/, written by
`SHOGGO_WRITE_FIXTURES=1 go test ./lora/ -run TestShoggoFixtures`) holds
adapter_config.json, adapter_model.safetensors and fixtures.safetensors
(input_ids (B, T) and shoggo's logits (B, T, V)).  The base model is --base,
or testdata/models/<name> for a directory named <name>_shoggo.  The base is
loaded in fp32 with eager attention, the adapter with
PeftModel.from_pretrained (which errors on missing or unexpected adapter
tensors are turned into failures here), and PEFT's logits are compared with
shoggo's.

Exit status: 0 when every max |diff| <= tol, 1 on a mismatch, 2 when an
adapter does not load cleanly.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import logging  # noqa: E402

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_hf_load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def check(adapter: Path, base: Path, tol: float) -> tuple[int, str]:
    model = check_hf_load.load_model(base)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    # PEFT reports adapter tensors it could not place (or did not find) as warnings.
    bad = [str(w.message) for w in caught if "missing" in str(w.message).lower() or "unexpected" in str(w.message).lower()]
    if bad:
        return 2, f"{adapter}: loading problems: {bad}"
    n_lora = sum(1 for n, _ in pm.named_parameters() if "lora_" in n)
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    if n_lora != len(saved):
        return 2, f"{adapter}: PEFT created {n_lora} LoRA tensors, the file has {len(saved)}"
    # every saved tensor must have been loaded into the model, bit for bit
    state = {k.replace(".default", ""): v for k, v in pm.state_dict().items() if "lora_" in k}
    for k, v in saved.items():
        if k not in state:
            return 2, f"{adapter}: tensor {k} has no place in the PEFT model"
        if not torch.equal(state[k].float(), v.float()):
            return 2, f"{adapter}: tensor {k} was not loaded as saved"
    pm.eval()
    fx = load_file(str(adapter / "fixtures.safetensors"))
    with torch.no_grad():
        logits = pm(input_ids=fx["input_ids"].long()).logits.float()
    d = (logits.double() - fx["logits"].double()).abs().max().item()
    status = 0 if d <= tol else 1
    return status, f"{adapter.relative_to(ROOT) if adapter.is_relative_to(ROOT) else adapter}: {len(saved)} tensors; logits max |diff| {d:.3g} (tol {tol:g}) {'ok' if status == 0 else 'MISMATCH'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapters", nargs="*", type=Path)
    ap.add_argument("--base", type=Path, help="base model directory (default: from the adapter directory's name)")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    dirs = args.adapters or sorted((ROOT / "testdata" / "lora").glob("*_shoggo"))
    if not dirs:
        print("no adapters to check", file=sys.stderr)
        return 2
    worst = 0
    for d in dirs:
        d = d.resolve()
        base = args.base or ROOT / "testdata" / "models" / d.name.removesuffix("_shoggo")
        try:
            status, msg = check(d, base, args.tol)
        except Exception as e:  # a load failure is a result, not a crash
            status, msg = 2, f"{d}: {type(e).__name__}: {e}"
        print(msg)
        worst = max(worst, status)
    return worst


if __name__ == "__main__":
    sys.exit(main())

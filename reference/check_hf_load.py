#!/usr/bin/env python3
"""Prove that a model directory loads in transformers and gives the expected logits.

    reference/.venv/bin/python reference/check_hf_load.py MODEL_DIR [FIXTURE] [--tol 1e-4]

MODEL_DIR is a Hugging Face model directory (config.json + model.safetensors or
a sharded model-*.safetensors + model.safetensors.index.json), e.g. one written
by shoggo.  It is loaded with transformers.AutoModelForCausalLM.from_pretrained
in fp32 (bf16/fp16 weights are upcast) with eager attention, on the CPU.

Reference logits come from, in this order:
  1. FIXTURE, if given: a fixtures.safetensors written by make_fixtures.py
     (tensors input_ids, logits, and optionally labels/loss and the mask_,
     lpad_ and pack_ cases, all of which are then checked too);
  2. MODEL_DIR/shoggo_logits.safetensors, if present: what shoggo computed
     itself. Tensors: input_ids (I32 or I64, (B, T)), logits (F32, (B, T, V)),
     optional attention_mask ((B, T), 1 = real token; only positions with mask 1
     are compared) and optional position_ids ((B, T));
  3. MODEL_DIR/fixtures.safetensors, if present.

Exit status: 0 when every compared max |diff| <= tol (default 1e-4), 1 on a
mismatch, 2 when the directory does not load cleanly (missing, unexpected or
wrong-shaped tensors) or no reference was found.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import logging  # noqa: E402

# bitsandbytes (imported by transformers/peft) warns that it cannot fetch optional CPU kernels
# from the hub; that is expected offline and irrelevant here.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()

# GPT-2 checkpoints in the original OpenAI/hub layout carry the causal-mask
# buffers h.N.attn.bias / h.N.attn.masked_bias; transformers ignores them.
IGNORABLE_UNEXPECTED = (".attn.bias", ".attn.masked_bias")


class LoadError(Exception):
    pass


def load_model(model_dir: str | Path, allow_unexpected: bool = False):
    """Load MODEL_DIR in fp32/eager; raise LoadError on any missing, unexpected or mismatched tensor."""
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(model_dir),
            dtype=torch.float32,
            attn_implementation="eager",
            output_loading_info=True,
            local_files_only=True,
            ignore_mismatched_sizes=True,  # so that they are reported below, with both shapes
        )
    except Exception as e:  # unreadable config, bad safetensors header, unknown architecture, ...
        raise LoadError(f"{model_dir}: transformers cannot load it: {type(e).__name__}: {e}") from e
    model.eval()
    problems = []
    missing = list(info.get("missing_keys", []))
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.endswith(IGNORABLE_UNEXPECTED)]
    mismatched = list(info.get("mismatched_keys", []))
    if missing:
        problems.append(f"missing tensors (would be randomly initialised): {sorted(missing)}")
    if unexpected and not allow_unexpected:
        problems.append(f"unexpected tensors: {sorted(unexpected)}")
    if mismatched:
        problems.append(
            "wrong-shaped tensors: "
            + ", ".join(f"{m[0]} (file {tuple(m[1])}, model {tuple(m[2])})" if len(m) == 3 else str(m) for m in mismatched)
        )
    for k in ("error_msgs",):
        if info.get(k):
            problems.append(f"{k}: {info[k]}")
    if problems:
        raise LoadError(f"{model_dir}: " + "; ".join(problems))
    return model


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


@torch.no_grad()
def _logits(model, input_ids, attention_mask=None, position_ids=None):
    kw = {}
    if attention_mask is not None:
        kw["attention_mask"] = attention_mask.long()
    if position_ids is not None:
        kw["position_ids"] = position_ids.long()
    return model(input_ids=input_ids.long(), **kw).logits.float()


def pack_logits(model, input_ids, seq_ids):
    """Logits of a packed batch: each segment (run of equal seq_ids) runs alone from position 0."""
    out = torch.empty(input_ids.shape + (model.config.vocab_size,))
    for b in range(input_ids.shape[0]):
        t = 0
        while t < input_ids.shape[1]:
            u = t
            while u < input_ids.shape[1] and seq_ids[b, u] == seq_ids[b, t]:
                u += 1
            out[b, t:u] = _logits(model, input_ids[b : b + 1, t:u])[0]
            t = u
    return out


def compare_fixture(model, fx: dict[str, torch.Tensor]) -> dict[str, float]:
    """Max |diff| of every case present in a fixtures dict (only unpadded positions for masked cases)."""
    res = {}
    res["logits"] = _maxdiff(_logits(model, fx["input_ids"]), fx["logits"])
    if "labels" in fx and "loss" in fx:
        with torch.no_grad():
            loss = model(input_ids=fx["input_ids"].long(), labels=fx["labels"].long()).loss
        res["loss"] = abs(loss.item() - fx["loss"].item())
    for p in ("mask_", "lpad_"):
        if p + "input_ids" in fx:
            m = fx[p + "attention_mask"].bool()
            got = _logits(model, fx[p + "input_ids"], fx[p + "attention_mask"], fx.get(p + "position_ids"))
            res[p + "logits"] = _maxdiff(got[m], fx[p + "logits"][m])
            if p + "labels" in fx and p + "loss" in fx:
                kw = {}
                if p + "position_ids" in fx:
                    kw["position_ids"] = fx[p + "position_ids"].long()
                with torch.no_grad():
                    loss = model(
                        input_ids=fx[p + "input_ids"].long(),
                        attention_mask=fx[p + "attention_mask"].long(),
                        labels=fx[p + "labels"].long(),
                        **kw,
                    ).loss
                res[p + "loss"] = abs(loss.item() - fx[p + "loss"].item())
    if "pack_input_ids" in fx:
        res["pack_logits"] = _maxdiff(pack_logits(model, fx["pack_input_ids"], fx["pack_seq_ids"]), fx["pack_logits"])
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("fixture", nargs="?")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    ap.add_argument(
        "--allow-unexpected", action="store_true", help="do not fail on extra tensors transformers ignores"
    )
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    mdir = Path(a.model_dir)
    if a.fixture:
        ref = Path(a.fixture)
    elif (mdir / "shoggo_logits.safetensors").exists():
        ref = mdir / "shoggo_logits.safetensors"
    elif (mdir / "fixtures.safetensors").exists():
        ref = mdir / "fixtures.safetensors"
    else:
        print(f"{mdir}: no FIXTURE given and no shoggo_logits.safetensors or fixtures.safetensors", file=sys.stderr)
        return 2

    try:
        model = load_model(mdir, a.allow_unexpected)
    except LoadError as e:
        print(f"LOAD ERROR {e}", file=sys.stderr)
        return 2
    fx = load_file(str(ref))
    if "input_ids" not in fx or "logits" not in fx:
        print(f"{ref}: needs tensors input_ids and logits, has {sorted(fx)}", file=sys.stderr)
        return 2

    if ref.name == "shoggo_logits.safetensors":
        # shoggo's own output: optional attention_mask / position_ids, compare unmasked positions.
        am = fx.get("attention_mask")
        got = _logits(model, fx["input_ids"], am, fx.get("position_ids"))
        if got.shape != fx["logits"].shape:
            print(f"logits shape: transformers {tuple(got.shape)} vs {ref.name} {tuple(fx['logits'].shape)}")
            return 1
        sel = am.bool() if am is not None else torch.ones(got.shape[:2], dtype=torch.bool)
        res = {"logits": _maxdiff(got[sel], fx["logits"].float()[sel])}
    else:
        res = compare_fixture(model, fx)

    arch = ",".join(model.config.architectures or [type(model).__name__])
    ok = all(v <= a.tol for v in res.values())
    detail = "  ".join(f"{k}={v:.3g}" for k, v in res.items())
    print(f"{'OK  ' if ok else 'FAIL'} {mdir} [{arch}] vs {ref.name}: max|diff| {detail} (tol {a.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

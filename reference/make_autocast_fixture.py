#!/usr/bin/env python3
"""Mixed-precision (autocast) parity fixtures: testdata/autocast/.

    SHOGGO_REF_VENV=/work/refvenv reference/setup.sh   # or plain reference/setup.sh
    /work/refvenv/bin/python reference/make_autocast_fixture.py
    (or reference/.venv/bin/python reference/make_autocast_fixture.py)

1. One training step under PyTorch CPU autocast. For the tiny random models
   testdata/models/{gpt2,llama,qwen2} (made by make_fixtures.py: 2 layers, hidden 32,
   vocabulary 101; GPT-2 tied with LayerNorm/GELU/learned positions, Llama untied GQA with
   RMSNorm/SwiGLU/RoPE, Qwen2 tied GQA with q/k/v biases) it runs forward + loss + backward on
   the fixed batch of those models' fixtures (input_ids (2, 9), labels with -100 at
   [0, 0:3], [1, 4], [1, 6]) three ways:

     fp32   no autocast; must reproduce testdata/models/<model>/fixtures.safetensors within
            1e-5 (that committed file is the fp32 reference; it is not copied. A rerun matches
            it to about 2e-6, not bit for bit: the CPU's SIMD kernels differ between machines)
     bf16   with torch.autocast("cpu", dtype=torch.bfloat16)
     fp16   with torch.autocast("cpu", dtype=torch.float16), the loss multiplied by
            LOSS_SCALE["fp16"] = 1024 before backward and the gradients multiplied by 1/1024
            afterwards (what GradScaler.unscale_ does; exact, a power of two)

   Parameters stay fp32 (autocast's masters), so every gradient is fp32. HF's loss upcasts the
   half logits to fp32 before the cross-entropy. For each model and half precision P,
   testdata/autocast/<model>_<P>.safetensors holds input_ids, labels (I64), logits (F32: the
   half logits, exactly representable), loss (F32, []) and grad.<param> (F32, transformers'
   names and layouts: GPT-2's Conv1D weights are (in, out); tied models have no lm_head grad).

   testdata/autocast/manifest.json records the batch, the loss scales, and for each model and
   precision the "half-precision noise floor" D: how far torch's autocast result is from
   torch's fp32 result (loss, logits, and per gradient tensor the max-abs difference, the max
   |g| and the relative L2 difference ||g_P - g_32|| / ||g_32||, plus the same over all
   gradients concatenated). A half-precision implementation can be expected to land within a
   few D of torch_P; an implementation that silently computes in fp32 lands at distance ~D.

2. GradScaler decisions: testdata/autocast/gradscaler.json. torch.amp.GradScaler("cpu") is
   driven through scripted sequences of steps on a 4-element parameter whose gradient each
   step is a given vector g (loss = sum(w * g)), some holding inf, -inf, NaN or values that
   overflow float32 once multiplied by the scale. Per step it records the scale before the
   step, whether the scaler found an inf/NaN and whether the optimizer step was skipped (SGD's
   step() is wrapped to count its calls), the scale and growth tracker after
   update(). Gradient values are JSON strings ("inf", "nan", ...) because JSON has no inf/NaN.

Deterministic: one thread, deterministic algorithms, fixed inputs; the same versions
(requirements.txt) give byte-identical files.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
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
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "testdata" / "models"
OUT = ROOT / "testdata" / "autocast"
FAMILIES = ["gpt2", "llama", "qwen2"]
PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}
# fp16 is trained with loss scaling (GradScaler); a fixed power of two keeps the fixture exact
# and far from overflow in torch's fp16 backward (max |scaled grad| stays < 65504).
LOSS_SCALE = {"bf16": 1.0, "fp16": 1024.0}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(name: str):
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, attn_implementation="eager", dtype=torch.float32)
    model.eval()  # dropout is 0 anyway
    return model


def step(model, ids, labels, dtype, scale: float):
    """One forward + loss + backward; returns (loss, logits, {param: fp32 grad})."""
    model.zero_grad(set_to_none=True)
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with ctx:
        out = model(input_ids=ids, labels=labels)
    want = dtype if dtype is not None else torch.float32
    assert out.logits.dtype == want, f"logits are {out.logits.dtype}, want {want}: autocast not applied"
    assert out.loss.dtype == torch.float32, out.loss.dtype
    (out.loss * scale).backward()  # backward outside the autocast region, as torch recommends
    grads = {}
    for n, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, n
        g = p.grad.detach() * (1.0 / scale)  # GradScaler.unscale_: grad * inv_scale (exact here)
        assert torch.isfinite(g).all(), f"non-finite gradient in {n}"
        grads[n] = g.contiguous()
    return out.loss.detach().float().reshape(()), out.logits.detach().float().contiguous(), grads


def distances(grads, ref):
    """Per tensor and global distance of grads from ref (both dicts of fp32 tensors)."""
    per, num, den, worst_rel, worst_abs = {}, 0.0, 0.0, 0.0, 0.0
    for n, r in ref.items():
        d = (grads[n].double() - r.double())
        mx = r.abs().max().item()
        l2d, l2r = d.norm().item(), r.double().norm().item()
        per[n] = {
            "maxabs": d.abs().max().item(),
            "max_abs_ref": mx,
            "rel_l2": l2d / l2r if l2r > 0 else 0.0,
        }
        num += l2d * l2d
        den += l2r * l2r
        worst_abs = max(worst_abs, per[n]["maxabs"])
        worst_rel = max(worst_rel, per[n]["maxabs"] / mx if mx > 0 else 0.0)
    return per, {"rel_l2": math.sqrt(num / den), "maxabs": worst_abs, "max_rel_to_max": worst_rel}


def autocast_fixtures(manifest):
    for name in FAMILIES:
        ref_path = MODELS / name / "fixtures.safetensors"
        ref = load_file(str(ref_path))
        ids, labels = ref["input_ids"], ref["labels"]
        model = load(name)

        # fp32: the committed fixture is the reference. A rerun here agrees to fp32 noise (not
        # always bit for bit: the fixtures may have been made on a CPU with other SIMD kernels).
        loss32, logits32, g32 = step(model, ids, labels, None, 1.0)
        assert set(k for k in ref if k.startswith("grad.")) == set("grad." + n for n in g32), name
        rerun = max(
            [abs(loss32.item() - ref["loss"].item()), (logits32 - ref["logits"]).abs().max().item()]
            + [((g - ref["grad." + n]).abs().max() / ref["grad." + n].abs().max()).item() for n, g in g32.items()]
        )
        assert rerun < 1e-5, f"{name}: the fp32 step differs from {ref_path.relative_to(ROOT)} by {rerun:.3g}"
        loss32, logits32 = ref["loss"], ref["logits"]
        g32 = {n: ref["grad." + n] for n in g32}

        entry = {
            "model_dir": f"testdata/models/{name}",
            "fp32_reference": f"testdata/models/{name}/fixtures.safetensors",
            "fp32_reference_sha256": sha256(ref_path),
            "fp32": {"loss": loss32.item(), "rerun_max_diff": rerun},
        }
        for prec, dtype in PRECISIONS.items():
            loss, logits, grads = step(model, ids, labels, dtype, LOSS_SCALE[prec])
            per, glob = distances(grads, g32)
            entry[prec] = {
                "file": f"testdata/autocast/{name}_{prec}.safetensors",
                "loss": loss.item(),
                "loss_scale": LOSS_SCALE[prec],
                "D": {
                    "loss_abs": abs(loss.item() - loss32.item()),
                    "logits_maxabs": (logits.double() - logits32.double()).abs().max().item(),
                    "grad_rel_l2": glob["rel_l2"],
                    "grad_maxabs": glob["maxabs"],
                    "grad_max_rel_to_max": glob["max_rel_to_max"],
                },
                "D_per_tensor": per,
            }
            if prec == "fp16":  # for the notes: what loss scaling buys in fp16
                _, _, gu = step(model, ids, labels, dtype, 1.0)
                entry[prec]["D_without_loss_scale"] = {
                    k: v for k, v in distances(gu, g32)[1].items() if k in ("rel_l2", "max_rel_to_max")
                }
            fx = {"input_ids": ids, "labels": labels, "logits": logits, "loss": loss}
            for n, g in grads.items():
                fx["grad." + n] = g
            out = OUT / f"{name}_{prec}.safetensors"
            save_file(
                fx,
                str(out),
                metadata={"fixture": f"{name}: one step under torch.autocast('cpu', {dtype}), loss scale {LOSS_SCALE[prec]:g}"},
            )
            os.chmod(out, 0o644)
            D = entry[prec]["D"]
            print(
                f"{name:6s} {prec}: loss {loss.item():.6f} (fp32 {loss32.item():.6f})  D: loss {D['loss_abs']:.2e} "
                f"logits {D['logits_maxabs']:.2e} grad rel-L2 {D['grad_rel_l2']:.2e} "
                f"max-abs {D['grad_maxabs']:.2e} max rel-to-max {D['grad_max_rel_to_max']:.2e}"
            )
        manifest["models"][name] = entry


# ----------------------------------------------------------------------------- GradScaler


def fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


CLEAN = [0.5, -1.0, 2.0, 0.25]
INF = [0.5, float("inf"), 2.0, 0.25]
NINF = [float("-inf"), -1.0, 2.0, 0.25]
NAN = [0.5, -1.0, float("nan"), 0.25]
OVERFLOW = [0.5, -1.0, 1e35, 0.25]  # finite, but * scale overflows float32
TINY = [1e-30, -1e-30, 2e-30, 0.0]  # finite, clean

SEQUENCES = [
    {
        "name": "default",
        "about": "torch's defaults except growth_interval 3: growth after 3 clean steps, backoff on "
        "inf, -inf, NaN and scaled-overflow steps, consecutive bad steps, a bad step just before a growth, "
        "unscale_ + clip_grad_norm_ on some steps",
        "init_scale": 2.0**16,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 3,
        "steps": [CLEAN, CLEAN, CLEAN, INF, CLEAN, CLEAN, NAN, CLEAN, CLEAN, CLEAN, OVERFLOW, NINF, NAN]
        + [CLEAN, CLEAN, CLEAN, CLEAN, CLEAN, INF, CLEAN, TINY, CLEAN, CLEAN, CLEAN, CLEAN],
        "clip": [1, 5, 10, 11, 20],  # steps that unscale_ and clip before step()
    },
    {
        "name": "saturation",
        "about": "growth stops at the largest power of two a float32 holds: torch keeps the scale "
        "when scale * growth_factor is not finite in float32 (2^128 is inf)",
        "init_scale": 2.0**125,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 1,
        "steps": [[0.25, -0.125, 0.5, 0.0]] * 5 + [INF] + [[0.25, -0.125, 0.5, 0.0]] * 3,
        "clip": [],
    },
    {
        "name": "custom_factors",
        "about": "growth_factor 3, backoff_factor 0.3 (not powers of two): torch keeps the scale in "
        "float32, so each update rounds to float32",
        "init_scale": 1000.0,
        "growth_factor": 3.0,
        "backoff_factor": 0.3,
        "growth_interval": 2,
        "steps": [CLEAN, INF, NAN, INF, CLEAN, CLEAN, CLEAN, CLEAN, INF, CLEAN, CLEAN, NINF, INF, INF, CLEAN, CLEAN],
        "clip": [],
    },
]


def run_sequence(spec):
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.float32))
    opt = torch.optim.SGD([w], lr=0.01)
    scaler = torch.amp.GradScaler(
        "cpu",
        init_scale=spec["init_scale"],
        growth_factor=spec["growth_factor"],
        backoff_factor=spec["backoff_factor"],
        growth_interval=spec["growth_interval"],
    )
    calls = [0]
    sgd_step = opt.step

    def counted_step(*a, **k):  # scaler.step() calls opt.step() only when no inf/NaN was found
        calls[0] += 1
        return sgd_step(*a, **k)

    opt.step = counted_step
    rows = []
    for i, g in enumerate(spec["steps"]):
        opt.zero_grad(set_to_none=True)
        coef = torch.tensor(g, dtype=torch.float32)
        before = scaler.get_scale()
        loss = (w * coef).sum()
        scaler.scale(loss).backward()  # w.grad = coef * scale in float32
        clipped = i in spec["clip"]
        if clipped:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_([w], 1.0)
        w0, n0 = w.detach().clone(), calls[0]
        scaler.step(opt)
        found = sum(v.item() for v in scaler._found_inf_per_device(opt).values()) > 0
        skipped = calls[0] == n0
        assert skipped == found, (spec["name"], i, skipped, found)
        if skipped:
            assert torch.equal(w0, w.detach()), (spec["name"], i, "a skipped step changed the parameter")
        elif max(abs(x) for x in g) > 1e-3:
            assert not torch.equal(w0, w.detach()), (spec["name"], i, "a clean step left the parameter as it was")
        scaler.update()
        rows.append(
            {
                "step": i,
                "grad": [fmt(x) for x in g],
                "unscale_and_clip": clipped,
                "scale_before": before,
                "found_inf": found,
                "skipped": skipped,
                "scale_after": scaler.get_scale(),
                "growth_tracker_after": int(scaler._get_growth_tracker()),
            }
        )
    out = {k: spec[k] for k in ("name", "about", "init_scale", "growth_factor", "backoff_factor", "growth_interval")}
    out["steps"] = rows
    return out


def gradscaler():
    seqs = [run_sequence(s) for s in SEQUENCES]
    doc = {
        "generator": "reference/make_autocast_fixture.py",
        "torch": torch.__version__.split("+")[0],
        "semantics": "per step: scale_before = scaler.get_scale(); loss = sum(w * grad); "
        "scaler.scale(loss).backward() (w.grad = grad * scale in float32); optionally unscale_ + "
        "clip_grad_norm_; scaler.step(SGD) (skipped iff found_inf); scaler.update()",
        "sequences": seqs,
    }
    path = OUT / "gradscaler.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    os.chmod(path, 0o644)
    for s in seqs:
        print(
            f"gradscaler {s['name']:15s} {len(s['steps'])} steps, {sum(r['skipped'] for r in s['steps'])} skipped, "
            f"final scale {s['steps'][-1]['scale_after']:g}"
        )


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "reference/make_autocast_fixture.py",
        "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__},
        "autocast": "torch.autocast('cpu', dtype=P) around the forward and HF's loss; backward outside",
        "loss_scale": LOSS_SCALE,
        "batch": None,
        "models": {},
    }
    ref = load_file(str(MODELS / FAMILIES[0] / "fixtures.safetensors"))
    manifest["batch"] = {
        "input_ids": ref["input_ids"].tolist(),
        "labels": ref["labels"].tolist(),
        "ignore_index": -100,
        "loss": "HF causal-LM loss: logits[:, t] predicts labels[:, t+1], mean over non-ignored targets",
    }
    autocast_fixtures(manifest)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    os.chmod(OUT / "manifest.json", 0o644)
    gradscaler()
    total = sum(f.stat().st_size for f in OUT.iterdir() if f.is_file())
    print(f"wrote {OUT.relative_to(ROOT)}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    sys.exit(main())

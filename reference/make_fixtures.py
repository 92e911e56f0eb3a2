#!/usr/bin/env python3
"""Regenerate the tiny random Hugging Face models and golden fixtures in testdata/models/.

    reference/setup.sh && reference/.venv/bin/python reference/make_fixtures.py

Every model is built with transformers from a fixed seed (fp32, eager attention,
dropout 0), all of its parameters are randomised at a visible scale (weights and
biases ~ N(0, 0.2^2), norm weights ~ 1 + N(0, 0.2^2)), and it is saved with
save_pretrained as testdata/models/<name>/ (config.json, generation_config.json,
model.safetensors or shards + index).  Next to it, fixtures.safetensors holds the
reference computations; see reference/README.md for the exact contents.

Output is deterministic: same versions (requirements.txt) -> byte-identical files.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import logging  # noqa: E402

# bitsandbytes (imported by transformers/peft) warns that it cannot fetch optional CPU kernels
# from the hub; that is expected offline and irrelevant here.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_hf_load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata" / "models"
B, T, V = 2, 9, 101
IGNORE = -100
WEIGHT_STD = 0.2
INPUT_SEED = 20240611

# Cases' padding / packing layout (documented in reference/README.md).
RPAD = 3  # mask_: the second row's last RPAD positions are padding (attention_mask 0)
LPAD = 3  # lpad_: the second row's first LPAD positions are padding
PACK_LENGTHS = [[4, 5], [3, 2, 4]]  # pack_: segment lengths per row (each row sums to T)


# ----------------------------------------------------------------------------- models


def gpt2_config():
    return GPT2Config(
        vocab_size=V,
        n_layer=2,
        n_embd=32,
        n_head=4,
        n_positions=64,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        bos_token_id=V - 1,
        eos_token_id=V - 1,
        tie_word_embeddings=True,
    )


def llama_config(tied: bool):
    return LlamaConfig(
        vocab_size=V,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=50000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        hidden_act="silu",
        bos_token_id=1,
        eos_token_id=2,
    )


def qwen2_config(tied: bool, kv_heads: int):
    return Qwen2Config(
        vocab_size=V,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
        use_sliding_window=False,
        attention_dropout=0.0,
        hidden_act="silu",
        bos_token_id=None,
        eos_token_id=V - 1,
    )


# name -> (class, config factory, seed, description)
BASE = {
    "gpt2": (GPT2LMHeadModel, gpt2_config, 1001, "GPT-2, tied wte/lm_head, Conv1D (in,out) weights, gelu_new"),
    "llama": (LlamaForCausalLM, lambda: llama_config(False), 1002, "Llama, GQA 4q/2kv, untied, rope_theta 5e4"),
    "llama_tied": (LlamaForCausalLM, lambda: llama_config(True), 1003, "Llama, GQA 4q/2kv, tied, rope_theta 5e4"),
    "qwen2": (Qwen2ForCausalLM, lambda: qwen2_config(True, 2), 1004, "Qwen2, GQA 4q/2kv, q/k/v bias, tied, rope_theta 1e6"),
    "qwen2_untied": (
        Qwen2ForCausalLM,
        lambda: qwen2_config(False, 1),
        1005,
        "Qwen2, MQA 4q/1kv, q/k/v bias, untied, rope_theta 1e6",
    ),
}

# Variants: name -> (base, kind, description)
VARIANTS = {
    "gpt2_hub_layout": (
        "gpt2",
        "hub_layout",
        "gpt2's weights in the original OpenAI/hub layout: no 'transformer.' prefix, plus the "
        "h.N.attn.bias causal-mask buffers (extra tensors a loader must ignore)",
    ),
    "llama_bf16": ("llama", torch.bfloat16, "llama's weights stored as BF16; fixtures from the upcast fp32 weights"),
    "qwen2_fp16": ("qwen2", torch.float16, "qwen2's weights stored as F16; fixtures from the upcast fp32 weights"),
    "llama_sharded": ("llama", "sharded", "llama split into 3 shards with model.safetensors.index.json"),
}

# Models whose config.json is rewritten to the transformers-4.x layout that most hub checkpoints
# still use (top-level rope_theta, torch_dtype, integer sliding_window, no layer_types).
LEGACY_CONFIG = {"qwen2", "qwen2_untied", "qwen2_fp16"}


def build(cls, cfg, seed: int):
    torch.manual_seed(seed)
    model = cls._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32) * WEIGHT_STD
            if p.dim() == 1 and name.endswith(".weight"):  # LayerNorm / RMSNorm gain
                p.copy_(1.0 + noise)
            else:  # matrices, embeddings, every bias (incl. LayerNorm beta)
                p.copy_(noise)
    model.eval()
    return model


# ----------------------------------------------------------------------------- inputs


def make_inputs():
    g = torch.Generator().manual_seed(INPUT_SEED)

    def ids():
        return torch.randint(0, V, (B, T), generator=g, dtype=torch.int64)

    x = {}
    x["input_ids"] = ids()
    lab = x["input_ids"].clone()
    lab[0, 0:3] = IGNORE  # a masked prompt
    lab[1, 4] = IGNORE  # holes in the middle
    lab[1, 6] = IGNORE
    x["labels"] = lab

    # Right padding: row 1's last RPAD tokens are padding (their ids are junk, the mask is 0).
    x["mask_input_ids"] = ids()
    am = torch.ones(B, T, dtype=torch.int64)
    am[1, T - RPAD :] = 0
    x["mask_attention_mask"] = am
    lab = x["mask_input_ids"].clone()
    lab[am == 0] = IGNORE
    lab[0, 5] = IGNORE
    x["mask_labels"] = lab

    # Left padding with generate()-style positions: position = cumsum(mask) - 1 (0 on padding).
    x["lpad_input_ids"] = ids()
    am = torch.ones(B, T, dtype=torch.int64)
    am[1, :LPAD] = 0
    x["lpad_attention_mask"] = am
    x["lpad_position_ids"] = (am.cumsum(-1) - 1).clamp(min=0)
    lab = x["lpad_input_ids"].clone()
    lab[am == 0] = IGNORE
    lab[1, LPAD] = IGNORE  # its prediction would come from a padding position's logits
    x["lpad_labels"] = lab

    # Packing: several sequences per row, positions restart at 0, no attention across segments.
    x["pack_input_ids"] = ids()
    seq = torch.zeros(B, T, dtype=torch.int64)
    pos = torch.zeros(B, T, dtype=torch.int64)
    for b, lens in enumerate(PACK_LENGTHS):
        assert sum(lens) == T
        t = 0
        for s, n in enumerate(lens):
            seq[b, t : t + n] = s
            pos[b, t : t + n] = torch.arange(n)
            t += n
    x["pack_seq_ids"] = seq
    x["pack_position_ids"] = pos
    return x


# ----------------------------------------------------------------------------- fixtures


def manual_loss(logits, labels):
    """HF causal-LM loss written out: logits[:, t] predicts labels[:, t+1]; mean over non-ignored."""
    lg = logits[:, :-1].reshape(-1, logits.shape[-1]).double()
    lb = labels[:, 1:].reshape(-1)
    return F.cross_entropy(lg, lb, ignore_index=IGNORE, reduction="mean")


def close(a, b, tol, what):
    d = (a.double() - b.double()).abs().max().item()
    if d > tol:
        raise AssertionError(f"{what}: max|diff| {d:.3g} > {tol:g}")
    return d


def junk_invariant(fx, p):
    """The padded case's loss must not depend on logits at padding positions."""
    pad = fx[p + "attention_mask"] == 0
    lg = fx[p + "logits"].clone()
    lg[pad] = 1e3 * torch.randn(int(pad.sum()), lg.shape[-1], generator=torch.Generator().manual_seed(0))
    close(manual_loss(lg, fx[p + "labels"]), fx[p + "loss"], 1e-6, p + "loss independent of padding logits")
    assert torch.isfinite(fx[p + "logits"]).all(), p + "logits has non-finite values"


def packed_4d_mask(seq, dtype):
    """Additive (B, 1, T, T) mask: causal and block-diagonal over pack_seq_ids."""
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    same = seq[:, :, None] == seq[:, None, :]
    allowed = (same & causal)[:, None]
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def compute_fixtures(model, x):
    """Reference tensors for one fp32 model.  Returns (tensors, notes)."""
    fx, notes = {}, {}
    fx["input_ids"] = x["input_ids"]
    fx["labels"] = x["labels"]
    model.zero_grad(set_to_none=True)
    out = model(input_ids=x["input_ids"], labels=x["labels"])
    out.loss.backward()
    fx["logits"] = out.logits.detach().float().contiguous()
    fx["loss"] = out.loss.detach().float().reshape(())
    close(manual_loss(fx["logits"], x["labels"]), fx["loss"], 1e-6, "HF loss vs written-out loss")
    for name, p in model.named_parameters():
        fx["grad." + name] = p.grad.detach().float().contiguous()
    model.zero_grad(set_to_none=True)

    with torch.no_grad():
        # Right padding.
        for k in ("input_ids", "attention_mask", "labels"):
            fx["mask_" + k] = x["mask_" + k]
        out = model(
            input_ids=x["mask_input_ids"], attention_mask=x["mask_attention_mask"], labels=x["mask_labels"]
        )
        fx["mask_logits"] = out.logits.float().contiguous()
        fx["mask_loss"] = out.loss.float().reshape(())
        junk_invariant(fx, "mask_")
        n = T - RPAD
        alone = model(input_ids=x["mask_input_ids"][1:, :n]).logits
        close(fx["mask_logits"][1, :n], alone[0], 1e-5, "right padding vs unpadded row")

        # Left padding, explicit positions.
        for k in ("input_ids", "attention_mask", "position_ids", "labels"):
            fx["lpad_" + k] = x["lpad_" + k]
        out = model(
            input_ids=x["lpad_input_ids"],
            attention_mask=x["lpad_attention_mask"],
            position_ids=x["lpad_position_ids"],
            labels=x["lpad_labels"],
        )
        fx["lpad_logits"] = out.logits.float().contiguous()
        fx["lpad_loss"] = out.loss.float().reshape(())
        junk_invariant(fx, "lpad_")
        alone = model(input_ids=x["lpad_input_ids"][1:, LPAD:]).logits
        close(fx["lpad_logits"][1, LPAD:], alone[0], 1e-5, "left padding vs unpadded row")

        # Packing: defined as each segment run on its own; cross-checked with a 4D mask.
        for k in ("input_ids", "seq_ids", "position_ids"):
            fx["pack_" + k] = x["pack_" + k]
        fx["pack_logits"] = check_hf_load.pack_logits(model, x["pack_input_ids"], x["pack_seq_ids"]).contiguous()
        try:
            got = model(
                input_ids=x["pack_input_ids"],
                attention_mask=packed_4d_mask(x["pack_seq_ids"], torch.float32),
                position_ids=x["pack_position_ids"],
            ).logits
            notes["pack_4d_mask_maxdiff"] = close(got, fx["pack_logits"], 1e-5, "packed 4D mask vs segments")
        except Exception as e:  # informational only: the fixture does not depend on it
            notes["pack_4d_mask_maxdiff"] = f"not checked: {type(e).__name__}: {e}"[:200]
    return fx, notes


def fp64_noise_floor(model, x, fx):
    """How far fp32 HF is from the same model in fp64: a floor for Go-side tolerances."""
    m64 = type(model)._from_config(model.config, attn_implementation="eager", dtype=torch.float64)
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.eval()
    out = m64(input_ids=x["input_ids"], labels=x["labels"])
    out.loss.backward()
    d_logits = (out.logits - fx["logits"].double()).abs().max().item()
    d_loss = abs(manual_loss(out.logits, x["labels"]).item() - fx["loss"].item())  # HF's own loss runs in fp32
    rel = 0.0
    for name, p in m64.named_parameters():
        g32 = fx["grad." + name].double()
        rel = max(rel, ((p.grad - g32).abs().max() / p.grad.abs().max().clamp(min=1e-30)).item())
    return {"logits_maxabs": d_logits, "loss_abs": d_loss, "grad_max_rel": rel}


# ----------------------------------------------------------------------------- writing


def legacy_config(path: Path):
    """Rewrite a transformers-5 config.json into the 4.x layout most hub checkpoints use."""
    c = json.loads(path.read_text())
    rp = c.pop("rope_parameters")
    assert rp.get("rope_type", "default") == "default", rp
    c["rope_theta"] = rp["rope_theta"]
    c["torch_dtype"] = c.pop("dtype")
    c.pop("layer_types", None)
    if c.get("model_type") == "qwen2" and c.get("sliding_window") is None:
        c["sliding_window"] = c["max_position_embeddings"]  # hub files carry an int even when unused
    path.write_text(json.dumps(dict(sorted(c.items())), indent=2) + "\n")


def hub_layout(src_dir: Path, dst_dir: Path, n_layer: int, n_pos: int):
    """GPT-2 as OpenAI's checkpoint on the hub has it: bare names + attn.bias mask buffers."""
    shutil.copy(src_dir / "config.json", dst_dir / "config.json")
    shutil.copy(src_dir / "generation_config.json", dst_dir / "generation_config.json")
    sd = load_file(str(src_dir / "model.safetensors"))
    out = {k.removeprefix("transformer."): v for k, v in sd.items()}
    mask = torch.ones(n_pos, n_pos, dtype=torch.bool).tril().view(1, 1, n_pos, n_pos).float()
    for i in range(n_layer):
        out[f"h.{i}.attn.bias"] = mask.clone()
    save_file(out, str(dst_dir / "model.safetensors"), metadata={"format": "pt"})


def save_fixture(fx, path: Path, description: str):
    fx = {k: v.contiguous() for k, v in fx.items()}
    for k, v in fx.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
    # One metadata key only: safetensors writes a metadata map in hash order, and byte-identical
    # regeneration (no spurious diffs in git) matters more than more keys.
    save_file(fx, str(path), metadata={"fixture": description})
    os.chmod(path, 0o644)


def verify(name: str, d: Path, fx_path: Path):
    """Reload both the model directory (via transformers) and the fixture file and compare."""
    fx = load_file(str(fx_path))
    model = check_hf_load.load_model(d)
    params = dict(model.named_parameters())
    missing = [n for n in params if "grad." + n not in fx]
    extra = [k[5:] for k in fx if k.startswith("grad.") and k[5:] not in params]
    if missing or extra:
        raise AssertionError(f"{name}: grads missing for {missing}, grads for unknown params {extra}")
    for n, p in params.items():
        if fx["grad." + n].shape != p.shape:
            raise AssertionError(f"{name}: grad.{n} shape {tuple(fx['grad.' + n].shape)} != {tuple(p.shape)}")
    res = check_hf_load.compare_fixture(model, fx)
    bad = {k: v for k, v in res.items() if v > 1e-5}
    if bad:
        raise AssertionError(f"{name}: reloaded model differs from its fixtures: {bad}")
    return res


def dir_size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    x = make_inputs()
    manifest = {
        "generator": "reference/make_fixtures.py",
        "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__},
        "inputs": {"B": B, "T": T, "vocab_size": V, "ignore_index": IGNORE},
        "models": {},
    }
    models = {}

    def emit(name, model_fp32, save, desc, extra):
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        save(d)
        for f in d.iterdir():
            os.chmod(f, 0o644)  # save_pretrained leaves 0600 files
        if name in LEGACY_CONFIG:
            legacy_config(d / "config.json")
        fx, notes = compute_fixtures(model_fp32, x)
        floor = fp64_noise_floor(model_fp32, x, fx)
        save_fixture(fx, d / "fixtures.safetensors", f"{name}: {desc}; labels use ignore_index {IGNORE}")
        res = verify(name, d, d / "fixtures.safetensors")
        files = sorted(f.name for f in d.iterdir())
        weight_files = [f for f in files if f.startswith("model") and f.endswith(".safetensors")]
        keys, dtypes = [], set()
        for f in weight_files:
            with safe_open(str(d / f), "pt") as h:
                for k in h.keys():
                    keys.append(k)
                    dtypes.add(str(h.get_slice(k).get_dtype()))
        cfg = json.loads((d / "config.json").read_text())
        manifest["models"][name] = {
            "description": desc,
            "architecture": cfg["architectures"][0],
            "tie_word_embeddings": cfg.get("tie_word_embeddings"),
            "config_layout": "transformers-4 (rope_theta, torch_dtype)"
            if name in LEGACY_CONFIG
            else "transformers-5 (rope_parameters, dtype)",
            "weight_files": weight_files,
            "weight_dtypes": sorted(dtypes),
            "n_tensors_in_files": len(keys),
            "n_parameters": sum(p.numel() for p in model_fp32.parameters()),
            "fp64_noise_floor": floor,
            "reload_maxdiff": res,
            **notes,
            **extra,
        }
        print(
            f"{name:16s} {cfg['architectures'][0]:18s} {'/'.join(sorted(dtypes)):8s} "
            f"{len(weight_files)} file(s) {len(keys):3d} tensors  loss={fx['loss'].item():.5f}  "
            f"fp64 floor: logits {floor['logits_maxabs']:.1e} grad-rel {floor['grad_max_rel']:.1e}  "
            f"{dir_size(d) / 1024:6.1f} KiB"
        )

    for name, (cls, cfg_fn, seed, desc) in BASE.items():
        model = build(cls, cfg_fn(), seed)
        models[name] = model
        emit(name, model, lambda d, m=model: m.save_pretrained(d), desc, {"seed": seed})

    for name, (base, kind, desc) in VARIANTS.items():
        src = models[base]
        if kind == "hub_layout":
            emit(
                name,
                src,
                lambda d: hub_layout(OUT / base, d, src.config.n_layer, src.config.n_positions),
                desc,
                {"base": base},
            )
        elif kind == "sharded":
            emit(name, src, lambda d: src.save_pretrained(d, max_shard_size="40KB"), desc, {"base": base})
        else:  # a storage dtype: save the rounded weights, compute fixtures from their fp32 upcast
            low = build(type(src), src.config, 0)
            low.load_state_dict(src.state_dict())
            low = low.to(kind)
            up = build(type(src), src.config, 0)
            up.load_state_dict({k: v.float() for k, v in low.state_dict().items()})
            emit(name, up, lambda d: low.save_pretrained(d), desc, {"base": base, "storage_dtype": str(kind)})

    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file() and "tokenizer" not in f.parts)
    print(f"wrote {len(manifest['models'])} model directories to {OUT.relative_to(ROOT)}: {total / 1024:.0f} KiB total")


if __name__ == "__main__":
    main()

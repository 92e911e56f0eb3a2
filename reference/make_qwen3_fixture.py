#!/usr/bin/env python3
"""Make the tiny random Qwen3 model and its golden fixtures in testdata/models/qwen3/.

    reference/setup.sh && reference/.venv/bin/python reference/make_qwen3_fixture.py

Qwen3 (Qwen3ForCausalLM) differs from Qwen2 by a per-head RMSNorm on q and k (q_norm/k_norm,
weights of size head_dim, applied after the projections and before RoPE, eps = rms_norm_eps),
no q/k/v bias (attention_bias false), and an explicit head_dim that may differ from
hidden_size / num_attention_heads.  The fixture model exercises all three: 2 layers, hidden 64,
4 query heads of head_dim 32 (so q_proj is (128, 64) and o_proj (64, 128)), 2 KV heads (GQA),
SwiGLU with intermediate 128, untied lm_head, rope_theta 1e6, rms_norm_eps 1e-6.

Everything else is make_fixtures.py's: the same seeded inputs (B=2, T=9, vocabulary 101, the
labels with -100s, the right-padding, left-padding and packing cases), the same weight
randomisation (q_norm/k_norm gains ~ 1 + N(0, 0.2^2) like every norm), the same reference
computations (logits, loss, every parameter's gradient) and the same self-checks (reload through
AutoModelForCausalLM reproduces every case; one grad. tensor per named parameter).

It adds or replaces the "qwen3" entry of testdata/models/manifest.json and leaves the other
models alone.  (make_fixtures.py rewrites the manifest from scratch: run this script after it.)

Then it makes testdata/lora/qwen3_peft/ exactly as make_lora_fixtures.py makes its cases (a
seeded PEFT LoRA on q_proj, k_proj, v_proj and o_proj, r 4, alpha 8, B ~ N(0, 0.2^2); the
adapter, PeftModel's logits, loss and every adapter gradient), so the k_proj adapter's gradient
passes through the per-head k norm.
Output is deterministic: same versions (requirements.txt) -> byte-identical files.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets the offline environment before importing torch)

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import Qwen3Config, Qwen3ForCausalLM  # noqa: E402

NAME = "qwen3"
SEED = 1006
DESC = "Qwen3, GQA 4q/2kv, head_dim 32 != hidden/heads 16, q/k RMSNorm, no biases, untied, rope_theta 1e6"


def qwen3_config():
    return Qwen3Config(
        vocab_size=mf.V,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attention_bias=False,
        use_sliding_window=False,
        attention_dropout=0.0,
        hidden_act="silu",
        bos_token_id=None,
        eos_token_id=mf.V - 1,
    )


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x = mf.make_inputs()
    model = mf.build(Qwen3ForCausalLM, qwen3_config(), SEED)
    # The point of the fixture: head_dim differs from hidden/heads and the q/k norms exist.
    assert model.config.head_dim * model.config.num_attention_heads != model.config.hidden_size
    names = dict(model.named_parameters())
    assert "model.layers.0.self_attn.q_norm.weight" in names and names["model.layers.0.self_attn.q_norm.weight"].shape == (32,)
    assert not any(n.endswith(".bias") for n in names), "Qwen3 with attention_bias=False has no biases"

    d = mf.OUT / NAME
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model.save_pretrained(d)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    fx, notes = mf.compute_fixtures(model, x)
    floor = mf.fp64_noise_floor(model, x, fx)
    mf.save_fixture(fx, d / "fixtures.safetensors", f"{NAME}: {DESC}; labels use ignore_index {mf.IGNORE}")
    res = mf.verify(NAME, d, d / "fixtures.safetensors")

    files = sorted(f.name for f in d.iterdir())
    weight_files = [f for f in files if f.startswith("model") and f.endswith(".safetensors")]
    keys, dtypes = [], set()
    for f in weight_files:
        with safe_open(str(d / f), "pt") as h:
            for k in h.keys():
                keys.append(k)
                dtypes.add(str(h.get_slice(k).get_dtype()))
    cfg = json.loads((d / "config.json").read_text())
    man_path = mf.OUT / "manifest.json"
    manifest = json.loads(man_path.read_text())
    v = manifest.setdefault("versions", {})
    want = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}
    if v and v != want:
        print(f"warning: manifest versions {v} differ from this run's {want}", file=sys.stderr)
    manifest["models"][NAME] = {
        "description": DESC,
        "architecture": cfg["architectures"][0],
        "tie_word_embeddings": cfg.get("tie_word_embeddings"),
        "config_layout": "transformers-5 (rope_parameters, dtype)",
        "weight_files": weight_files,
        "weight_dtypes": sorted(dtypes),
        "n_tensors_in_files": len(keys),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "fp64_noise_floor": floor,
        "reload_maxdiff": res,
        **notes,
        "seed": SEED,
        "generator": "reference/make_qwen3_fixture.py",
    }
    man_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    print(
        f"{NAME:16s} {cfg['architectures'][0]:18s} {'/'.join(sorted(dtypes)):8s} "
        f"{len(weight_files)} file(s) {len(keys):3d} tensors  loss={fx['loss'].item():.5f}  "
        f"fp64 floor: logits {floor['logits_maxabs']:.1e} grad-rel {floor['grad_max_rel']:.1e}  "
        f"{mf.dir_size(d) / 1024:6.1f} KiB"
    )

    # The PEFT adapter fixture, with make_lora_fixtures.py's code on this one case.
    import make_lora_fixtures as mlf

    mlf.CASES = {NAME: (dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), 2004)}
    mlf.main()


if __name__ == "__main__":
    main()

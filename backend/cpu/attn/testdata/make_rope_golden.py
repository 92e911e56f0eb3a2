"""Writes rope_golden.json: transformers' own float32 RoPE (LlamaRotaryEmbedding
+ apply_rotary_pos_emb, default rope type) on fixed inputs, for
TestRoPEMatchesTransformers. Run with the reference virtualenv:

    reference/.venv/bin/python backend/cpu/attn/testdata/make_rope_golden.py
"""
import json
import os

import torch
import transformers
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb



def short(t):
    # shortest decimal that reads back as the same float32
    return [float(str(v)) for v in t.flatten().numpy()]


torch.manual_seed(0)
cases = []
for theta, head_dim in [(10000.0, 64), (1000000.0, 128), (50000.0, 16)]:
    nh = 1
    cfg = LlamaConfig(hidden_size=head_dim * nh, num_attention_heads=nh, num_key_value_heads=nh,
                      max_position_embeddings=1 << 16, rope_theta=theta)
    rope = LlamaRotaryEmbedding(cfg)
    pos = torch.tensor([[0, 1, 2, 7, 100, 1023, 4097, 32767]], dtype=torch.int64)  # (B=1, T)
    T = pos.shape[1]
    x = torch.randn(1, T, nh, head_dim, dtype=torch.float32)  # shoggo layout (B, T, H, HS)
    cos, sin = rope(x, pos)  # (B, T, HS)
    xh = x.transpose(1, 2)  # HF layout (B, H, T, HS)
    y, _ = apply_rotary_pos_emb(xh, xh, cos, sin)
    y = y.transpose(1, 2).contiguous()
    cases.append({
        "theta": theta, "B": 1, "T": T, "H": nh, "HS": head_dim,
        "pos": pos.flatten().tolist(),
        "x": short(x), "y": short(y),
    })
out = {"torch": torch.__version__, "transformers": transformers.__version__, "cases": cases}
with open(os.path.join(os.path.dirname(__file__), "rope_golden.json"), "w") as f:
    json.dump(out, f)

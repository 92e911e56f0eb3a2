#!/usr/bin/env python3
"""PyTorch + PEFT peer of `shoggo sft --bench-steps`: LoRA training steps of a
Qwen1.5-1.8B-shaped Qwen2ForCausalLM with random weights on CPU.

Same work as shoggo's benchmark: random token batches of --batch x --seq
(labels = input ids, so every position but each row's last is trained), LoRA
r=8 alpha=32 on q_proj,v_proj with dropout 0.05, AdamW over the trainable
parameters (weight decay 0, as shoggo's default), gradient clipping at 1.0,
1 warmup step and --steps timed steps. Prints progress to stderr and a
one-line JSON summary (tokens/s, s/step split into forward+backward and
optimizer, RSS after build, peak RSS from getrusage) last on stdout.

Run from the repository root with the reference virtualenv:
    reference/.venv/bin/python bench/lora_step.py --threads 2 --steps 2
    reference/.venv/bin/python bench/lora_step.py --gradient-checkpointing
"""
import argparse
import json
import os
import resource
import sys
import time
import warnings


def rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2, help="timed steps (after 1 warmup step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="dtype of the whole model")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=32)
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--lora-targets", default="q_proj,v_proj")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--attn", default=None, help="attn_implementation (default: transformers' choice, sdpa)")
    ap.add_argument("--init", default="fast", choices=["fast", "hf"],
                    help="fast: allocate without transformers' init, then fill N(0, 0.02) in place; hf: transformers' own init")
    ap.add_argument("--seed", type=int, default=1)
    # Qwen1.5-1.8B shape (Qwen/Qwen1.5-1.8B config.json); override for quick checks.
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=5504)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=151936)
    a = ap.parse_args()

    warnings.filterwarnings("ignore")
    import torch
    torch.set_num_threads(a.threads)
    import transformers
    from transformers import Qwen2Config, Qwen2ForCausalLM
    import peft
    from peft import LoraConfig, get_peft_model

    transformers.logging.set_verbosity_error()
    torch.manual_seed(a.seed)
    dtype = getattr(torch, a.dtype)
    cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                      max_position_embeddings=32768, rms_norm_eps=1e-6,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      tie_word_embeddings=False, hidden_act="silu", use_cache=False,
                      bos_token_id=151643, eos_token_id=151643)
    kw = {"dtype": dtype}
    if a.attn:
        kw["attn_implementation"] = a.attn

    t0 = time.perf_counter()
    if a.init == "fast":
        from transformers.initialization import no_init_weights
        with no_init_weights():
            model = Qwen2ForCausalLM._from_config(cfg, **kw)
        g = torch.Generator().manual_seed(a.seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif p.ndim == 1:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02, generator=g)
    else:
        model = Qwen2ForCausalLM._from_config(cfg, **kw)
    n_params = sum(p.numel() for p in model.parameters())
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lcfg = LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout,
                      target_modules=a.lora_targets.split(","), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    build_s = time.perf_counter() - t0
    rss_build = rss_mib("VmRSS")
    peak_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    attn_impl = getattr(model.config, "_attn_implementation", None)
    print(f"pytorch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
          f"{torch.get_num_threads()} threads, {a.dtype}, attn {attn_impl}, gradient checkpointing {a.gradient_checkpointing}",
          file=sys.stderr)
    print(f"trainable params: {n_trainable:,} || all params: {n_params + n_trainable:,}", file=sys.stderr)
    print(f"built in {build_s:.1f} s: RSS {rss_build:.0f} MiB (peak so far {peak_build:.0f} MiB)", file=sys.stderr)

    opt = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)

    cpu = []

    def step():
        c = time.process_time()
        t = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        cpu.append(time.process_time() - c)
        return t1 - t, t2 - t1, out.loss.item()

    fb, o, loss = step()
    warm = fb + o
    print(f"warmup step: {warm:.2f} s, loss {loss:.4f}", file=sys.stderr)
    times = []
    for i in range(a.steps):
        fb, o, loss = step()
        times.append((fb, o))
        print(f"step {i + 1}: {fb + o:.2f} s ({fb:.2f} fwd+bwd, {o:.4f} opt), loss {loss:.4f}, "
              f"{a.batch * a.seq / (fb + o):.1f} tokens/s", file=sys.stderr)

    def median(v):
        v = sorted(v)
        n = len(v)
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

    step_s = median([f + o for f, o in times])
    res = {
        "impl": "pytorch+peft",
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "dtype": a.dtype, "attn_implementation": attn_impl, "init": a.init,
        "params": n_params, "trainable_params": n_trainable,
        "lora_r": a.lora_r, "lora_alpha": a.lora_alpha, "lora_dropout": a.lora_dropout, "lora_targets": a.lora_targets,
        "gradient_checkpointing": a.gradient_checkpointing,
        "batch": a.batch, "seq_len": a.seq, "threads": torch.get_num_threads(),
        "warmup_steps": 1, "steps": a.steps, "tokens_per_step": a.batch * a.seq,
        "tokens_per_s": a.batch * a.seq / step_s, "step_s": step_s,
        "step_min_s": min(f + o for f, o in times),
        "fwd_bwd_s": median([f for f, _ in times]), "optimizer_s": median([o for _, o in times]),
        "step_cpu_s": median(cpu[1:]), "tokens_per_cpu_s": a.batch * a.seq / median(cpu[1:]),
        "warmup_s": warm, "step_times_s": [f + o for f, o in times],
        "build_s": build_s, "rss_after_build_mib": rss_build, "peak_rss_build_mib": peak_build,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": loss, "loadavg_1m": os.getloadavg()[0],
    }
    print(f"\n{step_s:.2f} s/step, {res['tokens_per_s']:.1f} tokens/s, peak RSS {res['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    print(json.dumps(res))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# LoRA training steps of the Qwen1.5-1.8B shape (random weights), shoggo vs
# PyTorch + PEFT on CPU, same shapes and thread count, one run at a time (a
# 1.8B model in fp32 is 7.4 GB; two at once would not fit a 24 GB machine).
#
#   bench/lora_step.sh                       # all six configurations below
#   CONFIGS="shoggo-bf16 pt-fp32" bench/lora_step.sh
#   STEPS=3 THREADS=2 BATCH=2 SEQ=512 PRESET=qwen1.5-1.8b bench/lora_step.sh
#   PT_ARGS="--hidden 1024 ..." changes the PyTorch model's shape (to match another PRESET)
#
# Configurations (LoRA r=8, alpha=32, q_proj,v_proj, dropout 0.05, AdamW,
# clip 1.0, 1 warmup + $STEPS timed steps; "-gc": gradient checkpointing):
#   pt-fp32, pt-fp32-gc              PyTorch + PEFT, fp32 model (bench/lora_step.py)
#   shoggo-fp32, shoggo-fp32-gc      shoggo, fp32 frozen base
#   shoggo-bf16, shoggo-bf16-gc      shoggo, bf16 frozen base: block linears, token embedding
#                                    and LM head in bf16; fp32 compute, fp32 adapters
# Extra: shoggo-nf4, shoggo-nf4-gc (QLoRA: NF4 block linears, bf16 tables), pt-bf16 and
# pt-bf16-gc (PyTorch with the whole model in bf16).
#
# Each run prints one JSON line; they are collected in $OUT (default
# runs/bench/lora_step.jsonl, appended) and a table of tokens/s and peak RSS
# with the ratios shoggo / PyTorch (against PyTorch with the same
# checkpointing setting, and against plain PyTorch fp32) is printed at the
# end. The PyTorch side needs reference/.venv (reference/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-2}
THREADS=${THREADS:-2}
BATCH=${BATCH:-2}
SEQ=${SEQ:-512}
PRESET=${PRESET:-qwen1.5-1.8b}
PY=${PY:-reference/.venv/bin/python}
read -r -a PT_EXTRA <<<"${PT_ARGS:-}"
OUT=${OUT:-runs/bench/lora_step.jsonl}
CONFIGS=${CONFIGS:-"pt-fp32 shoggo-fp32 shoggo-bf16 pt-fp32-gc shoggo-fp32-gc shoggo-bf16-gc"}
mkdir -p "$(dirname "$OUT")"
BIN=$(mktemp -d)/shoggo
go build -o "$BIN" ./cmd/shoggo

LORA_GO=(--lora-r 8 --lora-alpha 32 --lora-dropout 0.05 --lora-targets q_proj,v_proj)
TAG=$(date -u +%Y-%m-%dT%H:%M:%SZ)
RUNLOG=$(mktemp)
RUNOUT=$(mktemp)

run() { # name, command...
	local name=$1
	shift
	echo "== $name: $* (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	local line
	if ! "$@" | tee "$RUNOUT" >&2; then
		echo "== $name failed" >&2
		return 0
	fi
	line=$(tail -n 1 "$RUNOUT")
	case $line in
	"{"*) printf '{"config":"%s","run":"%s",%s\n' "$name" "$TAG" "${line#\{}" | tee -a "$OUT" >>"$RUNLOG" ;;
	*) echo "$name: no JSON summary" >&2 ;;
	esac
}

for c in $CONFIGS; do
	gc_go=() gc_py=()
	case $c in *-gc) gc_go=(--gradient-checkpointing) gc_py=(--gradient-checkpointing) ;; esac
	case $c in
	pt-fp32 | pt-fp32-gc) run "$c" "$PY" bench/lora_step.py --threads "$THREADS" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" "${gc_py[@]}" "${PT_EXTRA[@]}" ;;
	pt-bf16 | pt-bf16-gc) run "$c" "$PY" bench/lora_step.py --dtype bfloat16 --threads "$THREADS" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" "${gc_py[@]}" "${PT_EXTRA[@]}" ;;
	shoggo-fp32 | shoggo-fp32-gc | shoggo-bf16 | shoggo-bf16-gc | shoggo-nf4 | shoggo-nf4-gc)
		dt=${c#shoggo-}
		dt=${dt%-gc}
		base=(--base-dtype "$dt")
		[ "$dt" = nf4 ] && base=(--qlora)
		run "$c" "$BIN" sft --preset "$PRESET" --bench-steps "$STEPS" --threads "$THREADS" --batch "$BATCH" --max-len "$SEQ" \
			--grad-accum 1 --lr 2e-4 "${base[@]}" "${LORA_GO[@]}" "${gc_go[@]}"
		;;
	*) echo "unknown configuration $c" >&2 && exit 2 ;;
	esac
done

# The table: this invocation's runs, each compared with the PyTorch runs of
# the same invocation (or, for a configuration run alone, the latest PyTorch
# runs in $OUT with the same batch, sequence and threads).
python3 - "$RUNLOG" "$OUT" <<'EOF'
import json, sys
now = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hist = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
def pt(gc, like):
    for src in (now, hist[::-1]):
        for r in src:
            if r["impl"] != "shoggo" and r.get("dtype") == "float32" and r["gradient_checkpointing"] == gc \
                    and (r["batch"], r["seq_len"], r["threads"]) == (like["batch"], like["seq_len"], like["threads"]):
                return r
    return None
hdr = f'{"config":16} {"tokens/s":>9} {"s/step":>8} {"fwd+bwd":>8} {"opt":>7} {"tok/CPU-s":>9} {"RSS build":>10} {"peak RSS":>9} {"load":>5}  {"tok/s vs PT":>11} {"mem vs PT":>9}  {"tok/s vs PT fp32":>16} {"mem vs PT fp32":>14}'
print("\n" + hdr)
for r in now:
    row = f'{r["config"]:16} {r["tokens_per_s"]:9.2f} {r["step_s"]:8.1f} {r["fwd_bwd_s"]:8.1f} {r["optimizer_s"]:7.3f} {r.get("tokens_per_cpu_s", 0):9.2f} {r["rss_after_build_mib"]:10.0f} {r["peak_rss_mib"]:9.0f} {r["loadavg_1m"]:5.1f}'
    if r["impl"] == "shoggo":
        for ref in (pt(r["gradient_checkpointing"], r), pt(False, r)):
            if ref:
                row += f'  {r["tokens_per_s"] / ref["tokens_per_s"]:11.2f}x {r["peak_rss_mib"] / ref["peak_rss_mib"]:8.2f}x'
            else:
                row += f'  {"-":>11} {"-":>9}'
    print(row)
print("\nvs PT: PyTorch + PEFT fp32 with the same gradient-checkpointing setting; vs PT fp32: without checkpointing."
      "\ngoals: tokens/s ratio >= 2.0x, peak-memory ratio <= 0.70x")
EOF

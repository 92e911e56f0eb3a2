#!/bin/sh
# GPT-2 124M training step, fp32, B=4, T=64, 2 threads: shoggo vs PyTorch
# CPU (transformers GPT2LMHeadModel) side by side on this machine.
#
#   bench/train_step.sh [rounds [steps]]      (defaults: 3 rounds, 5 steps)
#
# Each round runs `shoggo bench --preset gpt2 --batch 4 --seq 64 --threads 2`
# and bench/torch_train_step.py with the same settings back to back
# (alternating which goes first), so both see the same machine load. Each
# run reports the median of its timed steps (after 2 warmup steps); the table
# gives every round and the median over rounds, and the ratios:
#   speed   = shoggo tokens/s / PyTorch tokens/s (wall clock)
#   cpu     = PyTorch CPU time per step / shoggo CPU time per step
#             (all threads; less sensitive to other load on the machine)
#   memory  = shoggo peak RSS / PyTorch peak RSS (VmHWM of each process)
# Environment: PYTHON (default reference/.venv/bin/python), BATCH, SEQ,
# THREADS, PRESET (shoggo only; the Python side is always GPT-2 124M),
# TORCH_ADAMW (default | foreach | fused: torch.optim.AdamW's implementation;
# torch's default on CPU is the per-tensor loop).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${1:-3}
steps=${2:-5}
B=${BATCH:-4}
T=${SEQ:-64}
th=${THREADS:-2}
PY=${PYTHON:-$root/reference/.venv/bin/python}
[ -x "$PY" ] || { echo "train_step.sh: no Python at $PY (run reference/setup.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/shoggo" ./cmd/shoggo)
echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# B=$B T=$T threads=$th, $steps timed steps per run, $rounds rounds, torch AdamW: ${TORCH_ADAMW:-default}"

run_shoggo() {
	"$tmp/shoggo" bench --preset "${PRESET:-gpt2}" --batch "$B" --seq "$T" --threads "$th" \
		--steps "$steps" --warmup 2 --no-gemm >"$tmp/s.$1.log"
	grep '^RESULT' "$tmp/s.$1.log" >>"$tmp/results"
}
run_torch() {
	"$PY" "$root/bench/torch_train_step.py" --batch "$B" --seq "$T" --threads "$th" \
		--steps "$steps" --warmup 2 --adamw "${TORCH_ADAMW:-default}" >"$tmp/t.$1.log"
	grep '^RESULT' "$tmp/t.$1.log" >>"$tmp/results"
}

: >"$tmp/results"
r=1
while [ "$r" -le "$rounds" ]; do
	if [ $((r % 2)) = 1 ]; then run_shoggo "$r"; run_torch "$r"; else run_torch "$r"; run_shoggo "$r"; fi
	r=$((r + 1))
done
sed -n '/^## training step/,/^peak RSS/p' "$tmp/s.1.log" | sed 's/^/# shoggo: /'
sed -n '1,6p' "$tmp/t.1.log" | sed 's/^/# torch:  /'

awk '
function val(line, key,   i, n, f, kv) {
	n = split(line, f, " ")
	for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == key) return kv[2] + 0 }
	return 0
}
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/impl=shoggo/ { ns++; s_ms[ns] = val($0, "step_ms"); s_cpu[ns] = val($0, "cpu_ms"); s_tok[ns] = val($0, "tokens_per_s"); s_rss[ns] = val($0, "rss_mib") }
/impl=torch/  { nt++; t_ms[nt] = val($0, "step_ms"); t_cpu[nt] = val($0, "cpu_ms"); t_tok[nt] = val($0, "tokens_per_s"); t_rss[nt] = val($0, "rss_mib") }
END {
	printf "%-7s %12s %12s %12s %12s %12s %12s %10s %10s\n", "round", "shoggo ms", "torch ms", "shoggo tok/s", "torch tok/s", "shoggo cpu", "torch cpu", "speed", "cpu"
	for (i = 1; i <= ns && i <= nt; i++) {
		printf "%-7d %12.0f %12.0f %12.1f %12.1f %12.0f %12.0f %9.2fx %9.2fx\n", i, s_ms[i], t_ms[i], s_tok[i], t_tok[i], s_cpu[i], t_cpu[i], s_tok[i]/t_tok[i], t_cpu[i]/s_cpu[i]
		sp[i] = s_tok[i]/t_tok[i]; cp[i] = t_cpu[i]/s_cpu[i]
	}
	n = (ns < nt) ? ns : nt
	ms = median(s_ms, n); mt = median(t_ms, n); st = median(s_tok, n); tt = median(t_tok, n)
	sc = median(s_cpu, n); tc = median(t_cpu, n); sr = median(s_rss, n); tr = median(t_rss, n)
	printf "%-7s %12.0f %12.0f %12.1f %12.1f %12.0f %12.0f %9.2fx %9.2fx\n", "median", ms, mt, st, tt, sc, tc, median(sp, n), median(cp, n)
	printf "peak RSS (median): shoggo %.0f MiB, torch %.0f MiB, ratio %.2f\n", sr, tr, sr/tr
	printf "shoggo tokens/s (median) %.1f; if the %d threads had been busy all the time: %.1f (B*T*1000 / (cpu ms / threads))\n", st, '"$th"', '"$B"'*'"$T"'*1000/(sc/'"$th"')
}' "$tmp/results"

#!/bin/sh
# GPT-2 124M training step in fp32, bf16 and fp16 side by side on this
# machine: tokens/s, CPU time, peak RSS and the activations saved for
# backward, for each precision, in one sitting.
#
#   bench/precision.sh [rounds [steps]]      (defaults: 3 rounds, 4 steps)
#
# Each round runs `shoggo bench --preset gpt2 --batch B --seq T --precision P`
# for P in fp32, bf16, fp16 (rotating which goes first), each in its own
# process so its peak RSS (VmHWM) is its own. The table gives the medians over
# rounds and the ratios to fp32:
#   speed   = tokens/s(P) / tokens/s(fp32)
#   act     = saved activation bytes(P) / saved activation bytes(fp32)
#   rss     = peak RSS(P) / peak RSS(fp32)
# Environment: BATCH (4), SEQ (64), THREADS (2), PRESET (gpt2).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${1:-3}
steps=${2:-4}
B=${BATCH:-4}
T=${SEQ:-64}
th=${THREADS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/shoggo" ./cmd/shoggo)
echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, flags: $(grep -o -w -E 'avx512_bf16|avx512f|avx2|fma|f16c' /proc/cpuinfo | sort -u | tr '\n' ' ')load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# preset ${PRESET:-gpt2} B=$B T=$T threads=$th, $steps timed steps per run (2 warmup), $rounds rounds"
: >"$tmp/results"
r=1
while [ "$r" -le "$rounds" ]; do
	case $((r % 3)) in
	1) order="fp32 bf16 fp16" ;;
	2) order="bf16 fp16 fp32" ;;
	0) order="fp16 fp32 bf16" ;;
	esac
	for p in $order; do
		"$tmp/shoggo" bench --preset "${PRESET:-gpt2}" --batch "$B" --seq "$T" --threads "$th" \
			--steps "$steps" --warmup 2 --no-gemm --precision "$p" >"$tmp/$p.$r.log"
		grep '^RESULT' "$tmp/$p.$r.log" >>"$tmp/results"
	done
	r=$((r + 1))
done
grep '^RESULT' "$tmp/results"
awk '
function val(line, key,   i, n, f, kv) {
	n = split(line, f, " ")
	for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == key) return kv[2] }
	return ""
}
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	p = val($0, "precision"); k = ++n[p]
	ms[p, k] = val($0, "step_ms") + 0; tok[p, k] = val($0, "tokens_per_s") + 0
	rss[p, k] = val($0, "rss_mib") + 0; act[p, k] = val($0, "act_saved_mib") + 0
	tot[p, k] = val($0, "act_total_mib") + 0
}
END {
	printf "%-6s %10s %12s %10s %14s %14s %8s %8s %8s\n", "prec", "step ms", "tokens/s", "rss MiB", "act saved MiB", "act total MiB", "speed", "act", "rss"
	split("fp32 bf16 fp16", ps, " ")
	for (i = 1; i <= 3; i++) {
		p = ps[i]
		for (k = 1; k <= n[p]; k++) { a1[k] = ms[p, k]; a2[k] = tok[p, k]; a3[k] = rss[p, k]; a4[k] = act[p, k]; a5[k] = tot[p, k] }
		m1[p] = median(a1, n[p]); m2[p] = median(a2, n[p]); m3[p] = median(a3, n[p]); m4[p] = median(a4, n[p]); m5[p] = median(a5, n[p])
	}
	for (i = 1; i <= 3; i++) {
		p = ps[i]
		printf "%-6s %10.0f %12.1f %10.0f %14.1f %14.1f %7.2fx %7.2fx %7.2fx\n", p, m1[p], m2[p], m3[p], m4[p], m5[p], m2[p]/m2["fp32"], m4[p]/m4["fp32"], m3[p]/m3["fp32"]
	}
}' "$tmp/results"

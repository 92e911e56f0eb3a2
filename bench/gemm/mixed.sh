#!/bin/sh
# Times fp32 gemm.Sgemm against gemm.GemmMixed with both operands at bf16 (the
# AMX kernel where the CPU has AMX-BF16, else VDPBF16PS where it has
# AVX512_BF16), at bf16 on VDPBF16PS (SHOGGO_NOAMX=1), at bf16 on the AVX2
# fallback (SHOGGO_NOBF16=1) and at fp16, on GPT-2 124M's linear-layer GEMMs
# (shapes_mixed.txt: N = 256 and 2048 rows, NT/NN/TN as forward/dX/dW use them),
# at 1 and 2 threads, and prints RESULT lines and a table of GFLOP/s.
#
#   bench/gemm/mixed.sh [rounds [seconds-per-shape [threads...]]]   (3 0.5 "1 2")
#
# Each round runs every (threads, shape) with the five variants back to back in
# a rotating order, so they see the same machine load; the numbers are medians
# over rounds of each run's median call. CLOCK=thread times 1-thread runs by the
# thread's CPU time (time slices lost to other processes left out). SHAPES=regex
# keeps the shapes whose names match.
#   bf16/fp32  = GFLOP/s(bf16) / GFLOP/s(fp32)             (goal >= 1.6)
#   dpb/fp32   = GFLOP/s(bf16 on VDPBF16PS) / GFLOP/s(fp32)
#   avx2 time  = time(bf16 on AVX2) / time(fp32)            (goal <= 1.1)
#   fp16 time  = time(fp16) / time(fp32)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-3}
mintime=${2:-0.5}
shift $(( $# < 2 ? $# : 2 ))
threads=${*:-1 2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/gemm" ./bench/gemm)
grep -v '^#' "$here/shapes_mixed.txt" | awk 'NF >= 7' | grep -E "^(${SHAPES:-.})" >"$tmp/shapes"
echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, flags: $(grep -o -w -E 'avx512_bf16|avx512f|avx2|fma|f16c|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg); clock for 1 thread: ${CLOCK:-wall}; $rounds rounds, ${mintime}s per run"

run() { # variant threads shape
	clock=wall
	[ "$2" = 1 ] && clock=${CLOCK:-wall}
	case $1 in
	fp32) prec=fp32 env= ;;
	bf16) prec=bf16 env= ;;
	bf16_dpb) prec=bf16 env=SHOGGO_NOAMX=1 ;;
	bf16_avx2) prec=bf16 env=SHOGGO_NOBF16=1 ;;
	fp16) prec=fp16 env= ;;
	esac
	env $env "$tmp/gemm" -threads "$2" -mintime "$mintime" -clock "$clock" -prec "$prec" -only "$3" <"$tmp/shapes" |
		sed "s/^/$1 /" >>"$tmp/results"
}

names=$(awk '{print $1}' "$tmp/shapes")
r=1
while [ "$r" -le "$rounds" ]; do
	for t in $threads; do
		i=$r
		for name in $names; do
			case $((i % 5)) in
			0) order="fp32 bf16 bf16_dpb bf16_avx2 fp16" ;;
			1) order="bf16 bf16_dpb bf16_avx2 fp16 fp32" ;;
			2) order="bf16_dpb bf16_avx2 fp16 fp32 bf16" ;;
			3) order="bf16_avx2 fp16 fp32 bf16 bf16_dpb" ;;
			4) order="fp16 fp32 bf16 bf16_dpb bf16_avx2" ;;
			esac
			for v in $order; do
				run "$v" "$t" "$name"
			done
			i=$((i + 1))
		done
	done
	r=$((r + 1))
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

awk -v order="$names" '
	FNR == NR { flops[$1] = 2 * $4 * $5 * $6; next }
	{ key = $1 SUBSEP $2 SUBSEP $3; n[key]++; v[key, n[key]] = $4; th[$3] = 1 }
	function median(key,    i, j, t, c, a) {
		c = n[key]
		if (c == 0) return 0
		for (i = 1; i <= c; i++) a[i] = v[key, i]
		for (i = 2; i <= c; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return c % 2 ? a[(c+1)/2] : (a[c/2] + a[c/2+1]) / 2
	}
	END {
		ns = split(order, names, " ")
		nv = split("fp32 bf16 bf16_dpb bf16_avx2 fp16", vs, " ")
		printf "%-18s %3s %7s %7s %8s %9s %7s %9s %8s %9s %9s\n", "shape", "thr", "fp32", "bf16", "bf16_dpb", "bf16_avx2", "fp16", "bf16/fp32", "dpb/fp32", "avx2 time", "fp16 time"
		for (t = 1; t <= 64; t++) {
			if (!(t in th)) continue
			for (x = 1; x <= nv; x++) tot[vs[x]] = 0
			fl = 0
			for (i = 1; i <= ns; i++) {
				s = names[i]
				for (x = 1; x <= nv; x++) g[vs[x]] = median(vs[x] SUBSEP s SUBSEP t)
				if (g["fp32"] == 0) continue
				printf "%-18s %3d %7.1f %7.1f %8.1f %9.1f %7.1f %9.2f %8.2f %9.2f %9.2f\n", s, t, g["fp32"], g["bf16"], g["bf16_dpb"], g["bf16_avx2"], g["fp16"], g["bf16"] / g["fp32"], g["bf16_dpb"] / g["fp32"], g["fp32"] / g["bf16_avx2"], g["fp32"] / g["fp16"]
				printf "RESULT gemm_mixed shape=%s threads=%d fp32_gflops=%.1f bf16_gflops=%.1f bf16_dpb_gflops=%.1f bf16_avx2_gflops=%.1f fp16_gflops=%.1f bf16_speedup=%.2f dpb_speedup=%.2f avx2_time_ratio=%.2f fp16_time_ratio=%.2f\n", s, t, g["fp32"], g["bf16"], g["bf16_dpb"], g["bf16_avx2"], g["fp16"], g["bf16"] / g["fp32"], g["bf16_dpb"] / g["fp32"], g["fp32"] / g["bf16_avx2"], g["fp32"] / g["fp16"] >"'"$tmp/result_lines"'"
				fl += flops[s]
				for (x = 1; x <= nv; x++) tot[vs[x]] += flops[s] / g[vs[x]]
			}
			printf "%-18s %3d %7.1f %7.1f %8.1f %9.1f %7.1f %9.2f %8.2f %9.2f %9.2f\n", "all shapes", t, fl / tot["fp32"], fl / tot["bf16"], fl / tot["bf16_dpb"], fl / tot["bf16_avx2"], fl / tot["fp16"], tot["fp32"] / tot["bf16"], tot["fp32"] / tot["bf16_dpb"], tot["bf16_avx2"] / tot["fp32"], tot["fp16"] / tot["fp32"]
			printf "RESULT gemm_mixed shape=all threads=%d fp32_gflops=%.1f bf16_gflops=%.1f bf16_dpb_gflops=%.1f bf16_avx2_gflops=%.1f fp16_gflops=%.1f bf16_speedup=%.2f dpb_speedup=%.2f avx2_time_ratio=%.2f fp16_time_ratio=%.2f\n", t, fl / tot["fp32"], fl / tot["bf16"], fl / tot["bf16_dpb"], fl / tot["bf16_avx2"], fl / tot["fp16"], tot["fp32"] / tot["bf16"], tot["fp32"] / tot["bf16_dpb"], tot["bf16_avx2"] / tot["fp32"], tot["fp16"] / tot["fp32"] >"'"$tmp/result_lines"'"
		}
	}' "$tmp/shapes" "$tmp/results"
cat "$tmp/result_lines"

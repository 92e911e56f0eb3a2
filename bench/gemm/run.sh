#!/bin/sh
# Times shoggo's gemm.Sgemm and OpenBLAS cblas_sgemm side by side on GPT-2
# 124M's GEMM shapes (shapes.txt) at 1 and 2 threads, and prints GFLOP/s and
# the ratio shoggo/OpenBLAS.
#
#   bench/gemm/run.sh [rounds [seconds-per-shape [threads...]]]
#
# Each round times every shape with shoggo and with OpenBLAS back to back
# (alternating which goes first), so both see the same machine load; the
# table shows the median over rounds of each program's median call time.
# With CLOCK=thread in the environment, single-threaded runs are timed by
# the thread's CPU time (time slices lost to other processes left out);
# multi-threaded runs always use wall time.
# Needs gcc and OpenBLAS's headers (Debian: apt-get install libopenblas-dev).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-3}
mintime=${2:-0.5}
shift $(( $# < 2 ? $# : 2 ))
threads=${*:-1 2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! gcc -O2 -o "$tmp/openblas" "$here/openblas/sgemm_openblas.c" -lopenblas 2>"$tmp/gcc.log"; then
	cat "$tmp/gcc.log" >&2
	echo "run.sh: cannot build the OpenBLAS benchmark (apt-get install -y libopenblas-dev)" >&2
	exit 1
fi
(cd "$root" && go build -o "$tmp/shoggo" ./bench/gemm)
"$tmp/openblas" -threads 1 -only none </dev/null 2>&1 | sed 's/^/# /'
echo "# clock for 1 thread: ${CLOCK:-wall}"
echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"

names=$(grep -v '^#' "$here/shapes.txt" | awk 'NF >= 7 {print $1}')
r=1
while [ "$r" -le "$rounds" ]; do
	for t in $threads; do
		clock=wall
		[ "$t" = 1 ] && clock=${CLOCK:-wall}
		for name in $names; do
			if [ $(( r % 2 )) -eq 1 ]; then
				"$tmp/shoggo" -threads "$t" -mintime "$mintime" -clock "$clock" -only "$name" <"$here/shapes.txt" | sed 's/^/shoggo /' >>"$tmp/results"
				"$tmp/openblas" -threads "$t" -mintime "$mintime" -clock "$clock" -only "$name" <"$here/shapes.txt" 2>/dev/null | sed 's/^/openblas /' >>"$tmp/results"
			else
				"$tmp/openblas" -threads "$t" -mintime "$mintime" -clock "$clock" -only "$name" <"$here/shapes.txt" 2>/dev/null | sed 's/^/openblas /' >>"$tmp/results"
				"$tmp/shoggo" -threads "$t" -mintime "$mintime" -clock "$clock" -only "$name" <"$here/shapes.txt" | sed 's/^/shoggo /' >>"$tmp/results"
			fi
		done
	done
	r=$(( r + 1 ))
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Median GFLOP/s per (program, shape, threads); the "all shapes" line is
# total flops over total time (so the LM head weighs most), flops from shapes.txt.
awk -v order="$names" '
	FNR == NR { if ($0 !~ /^#/ && NF >= 7) flops[$1] = 2 * $4 * $5 * $6; next }
	{ key = $1 SUBSEP $2 SUBSEP $3; n[key]++; v[key, n[key]] = $4; th[$3] = 1 }
	function median(key,    i, j, t, c, a) {
		c = n[key]
		for (i = 1; i <= c; i++) a[i] = v[key, i]
		for (i = 2; i <= c; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return c % 2 ? a[(c+1)/2] : (a[c/2] + a[c/2+1]) / 2
	}
	END {
		ns = split(order, names, " ")
		printf "%-14s %7s %10s %10s %7s\n", "shape", "threads", "shoggo", "openblas", "ratio"
		for (t = 1; t <= 64; t++) {
			if (!(t in th)) continue
			logsum = 0; cnt = 0; ts = 0; to = 0; fl = 0
			for (i = 1; i <= ns; i++) {
				s = median("shoggo" SUBSEP names[i] SUBSEP t)
				o = median("openblas" SUBSEP names[i] SUBSEP t)
				printf "%-14s %7d %10.1f %10.1f %7.2f\n", names[i], t, s, o, s / o
				logsum += log(s / o); cnt++
				fl += flops[names[i]]; ts += flops[names[i]] / s; to += flops[names[i]] / o
			}
			printf "%-14s %7d %10s %10s %7.2f\n", "geomean", t, "", "", exp(logsum / cnt)
			printf "%-14s %7d %10.1f %10.1f %7.2f\n", "all shapes", t, fl / ts, fl / to, to / ts
		}
	}' "$here/shapes.txt" "$tmp/results"

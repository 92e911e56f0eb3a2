#!/usr/bin/env bash
# All-reduce bandwidth of shoggo's Open MPI binding against Open MPI's own
# loop in C (ref/ref.c, built with mpicc when it exists), 1 KiB..64 MiB, on
# NP ranks (default 2) of this machine, then the overlap measurement.
#
#   bench/allreduce/run.sh                 # NP=2 MAX=67108864
#   NP=4 MAX=$((16<<20)) bench/allreduce/run.sh
#   MPIRUN_ARGS="--bind-to none" bench/allreduce/run.sh
#
# Prints RESULT lines (impl=c-mpi, go-mpi, go-mpi-async-{thread,iallreduce};
# op=overlap with mpirun's default binding (one core per rank) and --bind-to none).
set -euo pipefail
cd "$(dirname "$0")/../.."
NP=${NP:-2}
MAX=${MAX:-$((64 << 20))}
OUT=${OUT:-runs/bench/allreduce}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
command -v mpirun >/dev/null || { echo "mpirun not found: scripts/install-mpi.sh" >&2; exit 1; }
CGO_ENABLED=0 go build -o "$OUT/go-allreduce" ./bench/allreduce
run() { mpirun --oversubscribe -np "$NP" ${MPIRUN_ARGS:-} "$@"; }
if command -v mpicc >/dev/null; then
  mpicc -O2 -o "$OUT/allreduce-ref" bench/allreduce/ref/ref.c
  run "$OUT/allreduce-ref" "$MAX"
else
  echo "# mpicc not found (apt-get install libopenmpi-dev): no C reference" >&2
fi
run "$OUT/go-allreduce" -max "$MAX"
for async in thread iallreduce; do
  SHOGGO_MPI_ASYNC=$async run "$OUT/go-allreduce" -max "$MAX" -mode nonblock
done
for async in thread iallreduce; do
  SHOGGO_MPI_ASYNC=$async run "$OUT/go-allreduce" -mode overlap
  SHOGGO_MPI_ASYNC=$async run --bind-to none "$OUT/go-allreduce" -mode overlap | sed 's/op=overlap/op=overlap bind=none/'
done

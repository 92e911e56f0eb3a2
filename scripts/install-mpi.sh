#!/usr/bin/env bash
# Installs Open MPI for shoggo's data-parallel training and its tests
# (idempotent: does nothing when mpirun, libmpi.so.40 and mpicc are there).
#
#   scripts/install-mpi.sh            # openmpi-bin + libopenmpi-dev (mpicc, for bench/allreduce's C reference)
#   MPI_DEV=0 scripts/install-mpi.sh  # runtime only: openmpi-bin (pulls in libopenmpi3 = libmpi.so.40)
#
# shoggo opens libmpi.so.40 at run time (purego, no cgo), so only the runtime
# packages are needed to train; the tests launch `mpirun --oversubscribe -np 2`
# (as root with OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1).
# Debian 12 (bookworm) gives Open MPI 4.1.4.
set -euo pipefail

want=(openmpi-bin)
[ "${MPI_DEV:-1}" = 1 ] && want+=(libopenmpi-dev)

have_lib() { ldconfig -p 2>/dev/null | grep -q 'libmpi\.so\.40 '; }
have_all() {
	command -v mpirun >/dev/null && have_lib || return 1
	[ "${MPI_DEV:-1}" = 1 ] && ! command -v mpicc >/dev/null && return 1
	return 0
}

if have_all; then
	echo "install-mpi: Open MPI already installed: $(mpirun --version 2>/dev/null | head -1)"
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "install-mpi: no apt-get here; install Open MPI (mpirun and libmpi.so.40) with the system's package manager" >&2
	exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "install-mpi: not root and no sudo" >&2; exit 1; }
	SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when the candidates are unknown.
if ! apt-cache policy "${want[@]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	"${SUDO[@]}" apt-get update -qq
fi
"${SUDO[@]}" apt-get install -y -qq "${want[@]}" >/dev/null
have_all || { echo "install-mpi: installed ${want[*]} but mpirun/libmpi.so.40 are still missing" >&2; exit 1; }
echo "install-mpi: $(mpirun --version | head -1); $(ldconfig -p | grep -m1 'libmpi\.so\.40 ' | sed 's/^[[:space:]]*//')"

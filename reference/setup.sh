#!/usr/bin/env bash
# Creates the pinned Python reference environment (torch CPU use, transformers,
# tokenizers, safetensors, peft, bitsandbytes, trl, numpy) from PyPI.
#
#   reference/setup.sh            # creates or verifies reference/.venv
#
# Idempotent: when the venv exists and its stamp matches the hash of
# requirements.txt (plus the interpreter version) it exits at once.  Any other
# state (no venv, a stale stamp, an interrupted install) rebuilds it from
# scratch, so the venv always holds exactly what requirements.txt pins.
#
# Environment:
#   PYTHON           interpreter to build the venv from (default: python3; the
#                    lock was made on CPython 3.11)
#   SHOGGO_REF_VENV  where the venv lives (default: reference/.venv), e.g. to
#                    share one venv between several checkouts or CI clones.
#
# Go never needs this: fixtures under testdata/ are committed.
set -euo pipefail

REF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${SHOGGO_REF_VENV:-$REF_DIR/.venv}"
PYTHON="${PYTHON:-python3}"
REQ="$REF_DIR/requirements.txt"
STAMP="$VENV/.shoggo-stamp"
PIP_VERSION="26.3"

py_ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
want="$( { cat "$REQ"; echo "python=$py_ver pip=$PIP_VERSION"; } | sha256sum | cut -d' ' -f1)"

up_to_date() {
  [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]
}

if up_to_date; then
  echo "reference venv up to date: $VENV"
  exit 0
fi

# One builder at a time (several shells or engineers may share a checkout).
lock="/tmp/shoggo-ref-venv-$(printf '%s' "$VENV" | sha256sum | cut -c1-16).lock"
exec 9>"$lock"
flock 9
if up_to_date; then # somebody else finished it while we waited
  echo "reference venv up to date: $VENV"
  exit 0
fi

if [[ "$py_ver" != "3.11" ]]; then
  echo "warning: requirements.txt was locked on CPython 3.11; $PYTHON is $py_ver" >&2
fi

start=$SECONDS
echo "building reference venv at $VENV (python $py_ver) ..."
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip==$PIP_VERSION"
# --only-binary: never build from source; every pin has a wheel for cp311 x86_64.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  --only-binary=:all: -r "$REQ"
"$VENV/bin/python" -m pip check
"$VENV/bin/python" - <<'EOF'
import logging; logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
import torch, transformers, tokenizers, safetensors, peft, trl, numpy
print("torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "trl", trl.__version__, "numpy", numpy.__version__)
x = torch.randn(4, 4, requires_grad=True)
(x @ x).sum().backward()
assert x.grad is not None
EOF
"$VENV/bin/python" -c 'import logging; logging.getLogger("bitsandbytes").setLevel(logging.ERROR); import bitsandbytes; print("bitsandbytes", bitsandbytes.__version__)'
echo "$want" >"$STAMP"
echo "reference venv ready in $((SECONDS - start))s: $VENV"

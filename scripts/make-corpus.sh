#!/usr/bin/env bash
# Regenerates internal/corpus/kjv.txt.gz, the embedded default pre-training
# corpus: the King James Bible (public domain) from Debian's bible-kjv
# package, one verse per line, verse references stripped.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v bible >/dev/null || { apt-get install -y bible-kjv >/dev/null || { apt-get update >/dev/null && apt-get install -y bible-kjv >/dev/null; }; }
bible -f "Genesis 1:1-Revelation 22:21" 2>/dev/null | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' | gzip -9n > internal/corpus/kjv.txt.gz
ls -l internal/corpus/kjv.txt.gz

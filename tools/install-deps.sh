#!/usr/bin/env bash
# Installs the Debian packages Kiln needs, only those missing.
set -euo pipefail
missing=()
for p in llvm-19-dev libopenblas-dev libhdf5-dev gcc; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
python3 -c 'import numpy' 2>/dev/null || missing+=(python3-numpy)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

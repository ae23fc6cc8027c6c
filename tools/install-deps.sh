#!/usr/bin/env bash
# Installs the Debian packages Kiln needs, only those missing.
set -euo pipefail
missing=()
# graphviz: `kiln graph` draws its SVG with dot; pkg-config: the C sample's build (NAME.pc);
# valgrind: `make sanitize` (memcheck of the C sample).
for p in llvm-19-dev libopenblas-dev libhdf5-dev gcc graphviz pkg-config valgrind; do
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

# LLVM's C headers are not on the compiler's default paths and Debian ships no
# pkg-config file for them: write one (llvm-c-19.pc), so that the CLLVM system
# library target finds them by name, as it finds hdf5-serial.pc, with no
# path flags in Package.swift (SwiftPM refuses such flags in a dependency).
pc_dir=/usr/local/lib/pkgconfig
if [ ! -f "$pc_dir/llvm-c-19.pc" ]; then
  prefix=$(llvm-config-19 --prefix)
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo mkdir -p "$pc_dir"
  printf 'Name: llvm-c-19\nDescription: the LLVM 19 C API (written by Kiln'"'"'s tools/install-deps.sh)\nVersion: %s\nCflags: -I%s\nLibs: -L%s -lLLVM-19\n' \
    "$(llvm-config-19 --version)" "$(llvm-config-19 --includedir)" "$(llvm-config-19 --libdir)" \
    | $sudo tee "$pc_dir/llvm-c-19.pc" >/dev/null
  echo "wrote $pc_dir/llvm-c-19.pc (prefix $prefix)"
fi

#!/usr/bin/env bash
# Regenerates the PyTorch reference fixtures under tests/fixtures/ with Debian's python3-torch and
# python3-torchvision (installed here if missing). Tests only read the committed files; they never need Python.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if ! /usr/bin/python3 -c "import torch, torchvision" 2>/dev/null; then
    echo "make-fixtures: installing Debian's python3-torch and python3-torchvision"
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq python3-torch python3-torchvision >/dev/null
    else sudo apt-get install -y -qq python3-torch python3-torchvision >/dev/null; fi
fi

cd "$ROOT/tools/fixtures"
for script in [a-z]*.py; do
    case "$script" in safetensors_io.py | philox.py) continue ;; esac  # modules the scripts import
    echo "make-fixtures: $script"
    /usr/bin/python3 "$script" "$ROOT/tests/fixtures"
done

#!/usr/bin/env bash
# Makes the importer's test graphs (eng/onnx-fixtures.py) in artifacts/onnx-fixtures, once: they are made again only when
# the script changes. Installs Debian's python3-torch 1.13 and python3-torchvision 0.14 when they are missing (with sudo
# when not root). Used by eng/test.sh; nothing is downloaded but Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/onnx-fixtures
stamp="$(sha256sum eng/onnx-fixtures.py | cut -d' ' -f1)"
if [ -f "$out/manifest.json" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "onnx-fixtures: up to date in $out"
  exit 0
fi
# Debian's packages go to Debian's interpreter, which need not be the python3 on PATH (pyenv, a virtual environment).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if ! "$py" -c "import torch, torchvision" >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "onnx-fixtures: python3-torch and python3-torchvision are missing and apt-get is not available." >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "onnx-fixtures: installing Debian packages python3-torch and python3-torchvision"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch python3-torchvision >/dev/null
fi
rm -rf "$out.tmp"
"$py" eng/onnx-fixtures.py --out "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$stamp" > "$out/.stamp"
echo "onnx-fixtures: written to $out"

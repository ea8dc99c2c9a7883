#!/usr/bin/env bash
# Installs what the samples and tests need beyond the .NET SDK: Debian's Fashion-MNIST package
# (the IDX files land in /usr/share/datasets/fashion-mnist). Safe to run again.
set -euo pipefail

data=/usr/share/datasets/fashion-mnist
if [ -f "$data/train-images-idx3-ubyte.gz" ] && [ -f "$data/t10k-labels-idx1-ubyte.gz" ]; then
  echo "setup: Fashion-MNIST is present in $data"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: Fashion-MNIST is missing from $data and apt-get is not available." >&2
  echo "setup: download the four IDX files and pass their folder (--data for the quick start)." >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing Debian package dataset-fashion-mnist"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
test -f "$data/train-images-idx3-ubyte.gz"
echo "setup: Fashion-MNIST installed in $data"

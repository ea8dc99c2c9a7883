#!/usr/bin/env bash
# The README's quick start: installs Fashion-MNIST, then trains, evaluates, saves and reloads a CNN.
# Extra arguments go to the sample, for example: eng/quickstart.sh --epochs 15 --architecture ResNet
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/setup.sh
dotnet run -c Release --project samples/QuickStart -- "$@"

#!/usr/bin/env bash
# The README's test command: installs the test data, builds, runs every test project, and ends with a
# plain "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test --project test/Microsoft.ML.DeepVariants.Tests/Microsoft.ML.DeepVariants.Tests.csproj -c Release 2>&1 | tee "$log" || status=$?

# Microsoft.Testing.Platform prints "total: N / failed: N / succeeded: N / skipped: N".
count() { grep -E "^\s+$1: [0-9]+" "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0; }
passed=$(count succeeded); failed=$(count failed); skipped=$(count skipped)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # the build or the test host failed before any test could report
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"

#!/usr/bin/env bash
# The README's test command: installs the test data, builds, runs every test project and the consumer test of the
# packages, and ends with a plain "N passed, N failed, N skipped" line summed over them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/setup.sh
# The importer's test graphs, written by PyTorch's own exporter (Debian's python3-torch); made once, kept in artifacts/.
bash eng/onnx-fixtures.sh

projects=(
  test/Microsoft.ML.DeepVariants.Tests/Microsoft.ML.DeepVariants.Tests.csproj
  test/Microsoft.ML.DeepVariants.AutoML.Tests/Microsoft.ML.DeepVariants.AutoML.Tests.csproj
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
passed=0; failed=0; skipped=0
# Microsoft.Testing.Platform prints "total: N / failed: N / succeeded: N / skipped: N" per project.
count() { grep -E "^\s+$1: [0-9]+" "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0; }
for project in "${projects[@]}"; do
  project_status=0
  dotnet test --project "$project" -c Release 2>&1 | tee "$log" || project_status=$?
  p=$(count succeeded); f=$(count failed); s=$(count skipped)
  if [ "$project_status" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1  # the build or the test host failed before any test could report
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  [ "$project_status" -eq 0 ] || status=$project_status
done
# The packages as an application outside this tree meets them (eng/consumer-test.sh): one more test.
if bash eng/consumer-test.sh; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); status=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"

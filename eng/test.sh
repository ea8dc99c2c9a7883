#!/usr/bin/env bash
# The README's test command: installs the test data, builds, runs every test project and the consumer test of the
# packages, and ends with a plain "N passed, N failed, N skipped" line summed over them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/setup.sh
# The importer's test graphs, written by PyTorch's own exporter (Debian's python3-torch; made once, kept in artifacts/),
# and the throw-away PostgreSQL 15 server and Optuna 3.1 that the distributed-sweep tests use: Debian packages, mostly
# downloading and unpacking, which the build needs neither of, so they install beside it.
prerequisites_log=$(mktemp)
( bash eng/onnx-fixtures.sh && bash eng/postgres.sh install ) > "$prerequisites_log" 2>&1 &
prerequisites_pid=$!

projects=(
  test/Microsoft.ML.DeepVariants.Tests/Microsoft.ML.DeepVariants.Tests.csproj
  test/Microsoft.ML.DeepVariants.AutoML.Tests/Microsoft.ML.DeepVariants.AutoML.Tests.csproj
)
# Built first, so the consumer test's packing (which builds src/ again with its version) never races a test build.
for project in "${projects[@]}"; do
  dotnet build "$project" -c Release --nologo -v quiet || true  # a failed build fails its tests below, and is counted there
done
prerequisites_status=0
wait "$prerequisites_pid" || prerequisites_status=$?
cat "$prerequisites_log"
rm -f "$prerequisites_log"
if [ "$prerequisites_status" -ne 0 ]; then
  echo "test: the ONNX fixtures or PostgreSQL could not be installed (above); no test ran." >&2
  exit "$prerequisites_status"
fi
log=$(mktemp)
status=0
passed=0; failed=0; skipped=0
# Microsoft.Testing.Platform prints "total: N / failed: N / succeeded: N / skipped: N" per project.
count() { grep -E "^\s+$1: [0-9]+" "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0; }
# The consumer test packs and installs (mostly compression and file copies), so it runs beside the sweeper's tests.
consumer_log=$(mktemp)
trap 'rm -f "$log" "$consumer_log"' EXIT
consumer_pid=""
for project in "${projects[@]}"; do
  if [[ "$project" == *AutoML.Tests* ]]; then
    bash eng/consumer-test.sh > "$consumer_log" 2>&1 &
    consumer_pid=$!
  fi
  project_status=0
  dotnet test --project "$project" -c Release --no-build 2>&1 | tee "$log" || project_status=$?
  p=$(count succeeded); f=$(count failed); s=$(count skipped)
  if [ "$project_status" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1  # the build or the test host failed before any test could report
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  [ "$project_status" -eq 0 ] || status=$project_status
done
# The packages as an application outside this tree meets them (eng/consumer-test.sh): one more test.
consumer_status=0
wait "$consumer_pid" || consumer_status=$?
cat "$consumer_log"
if [ "$consumer_status" -eq 0 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); status=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"

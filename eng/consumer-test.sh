#!/usr/bin/env bash
# The consumer test (part of eng/test.sh): pack the three packages into a local folder feed, then, outside the
# source tree, build an application that references them from that feed only (plus libtorch-cpu-linux-x64), train a
# small CNN on Fashion-MNIST and save it; load and predict with a second application that references plain ML.NET
# only; install the deepvariants tool from the feed and run it. Prints "consumer test: passed" or fails.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/deepvariants-consumer.XXXXXX)"
version="0.5.0-consumer.$(date +%s)"
packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
# The packages' uniquely versioned copies leave the global package folder with the work folder.
trap 'rm -rf "$work" "$packages"/microsoft.ml.deepvariants/"$version" "$packages"/microsoft.ml.deepvariants.automl/"$version" "$packages"/deepvariants/"$version"' EXIT
feed="$work/feed"
mkdir -p "$feed"

echo "Packing version $version into $feed ..."
for project in src/Microsoft.ML.DeepVariants src/Microsoft.ML.DeepVariants.AutoML src/DeepVariants.Cli; do
  dotnet pack "$repo/$project" -c Release -p:Version="$version" -o "$feed" --nologo -v quiet
done
ls "$feed"

# The applications restore from the feed and nuget.org only (their own nuget.config); the version is new, so no
# cached copy of an earlier pack can stand in for this one.
cat > "$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="local"><package pattern="Microsoft.ML.DeepVariants*" /><package pattern="deepvariants" /></packageSource>
    <packageSource key="nuget.org"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
XML

mkdir -p "$work/trainer" "$work/predictor"
cp "$repo/eng/consumer/Trainer.cs" "$work/trainer/Program.cs"
cp "$repo/eng/consumer/Predictor.cs" "$work/predictor/Program.cs"
# An application project outside the tree: its name, then its package references as id and version pairs.
write_app() {
  local name=$1
  shift
  {
    echo '<Project Sdk="Microsoft.NET.Sdk">'
    echo '  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings><Nullable>enable</Nullable></PropertyGroup>'
    echo '  <ItemGroup>'
    while [ $# -gt 0 ]; do
      echo "    <PackageReference Include=\"$1\" Version=\"$2\" />"
      shift 2
    done
    echo '  </ItemGroup>'
    echo '</Project>'
  } > "$work/$name/$name.csproj"
}
write_app trainer Microsoft.ML.DeepVariants.AutoML "$version" libtorch-cpu-linux-x64 2.10.0
write_app predictor Microsoft.ML 5.0.1 Microsoft.ML.OnnxTransformer 5.0.1 Microsoft.ML.OnnxRuntime 1.31.1

echo "Building and running the trainer (it references Microsoft.ML.DeepVariants only through the AutoML package) ..."
(cd "$work/trainer" && dotnet run -c Release -- "$work/model.zip")
echo "Building and running the plain ML.NET predictor ..."
(cd "$work/predictor" && dotnet run -c Release -- "$work/model.zip")
if grep -rq "DeepVariants\|TorchSharp" "$work/predictor/bin/Release/net10.0/"*.deps.json; then
  echo "The predictor depends on DeepVariants or TorchSharp; it must not." >&2
  exit 1
fi

echo "Installing the deepvariants tool from the feed ..."
dotnet tool install deepvariants --tool-path "$work/tools" --version "$version" --configfile "$work/nuget.config"
"$work/tools/deepvariants" --help | head -n 20
# The installed tool reads the model the trainer saved, and refuses a missing file with exit code 2.
"$work/tools/deepvariants" inspect "$work/model.zip" | tee "$work/inspect.txt"
grep -q "ONNX graph" "$work/inspect.txt"
"$work/tools/deepvariants" export --model "$work/model.zip" --output "$work/model.onnx"
test -s "$work/model.onnx"
set +e
"$work/tools/deepvariants" evaluate --model "$work/missing.zip" --data "$work" > "$work/refused.txt"
refused=$?
set -e
if [ "$refused" -ne 2 ] || ! grep -q "missing.zip' does not exist" "$work/refused.txt"; then
  echo "The tool did not refuse a missing model with exit code 2 (got $refused): $(cat "$work/refused.txt")" >&2
  exit 1
fi
echo "consumer test: passed"

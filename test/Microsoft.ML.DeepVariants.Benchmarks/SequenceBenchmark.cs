using System.CommandLine;
using System.Globalization;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Sequences;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// The LSTM/GRU sequence classifier on four UEA/UCR problems (their standard train/test splits) and on
/// Fashion-MNIST read row by row (28 steps of 28 values), written to docs/benchmarks/sequences.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- sequences
/// </summary>
internal static class SequenceBenchmark
{
    private sealed record Run(string Problem, int Channels, SequenceArchitecture Architecture, int Epochs, int BatchSize, float LearningRate, string Target);

    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/sequences.md" };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "test/Microsoft.ML.DeepVariants.Tests/Data/timeseries" };
        var only = new Option<string?>("--only") { Description = "Run only the problems whose name contains this text." };
        var command = new System.CommandLine.Command("sequences", "Sequence classifier on UEA/UCR problems and row-by-row Fashion-MNIST.") { report, data, only };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(data)!, r.GetValue(only)));
        return command;
    }

    private static int Execute(string reportPath, string dataFolder, string? only)
    {
        NativeAllocator.KeepFreedMemory();
        var runs = new List<Run>
        {
            new("JapaneseVowels", 12, new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 64, Bidirectional = true, Pooling = SequencePooling.Attention }, 60, 32, 3e-3f, "at least 98 %"),
            new("BasicMotions", 6, new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 64, Pooling = SequencePooling.Mean }, 100, 8, 3e-3f, "at least 95 %"),
            new("GunPoint", 1, new SequenceArchitecture { Cell = RecurrentCell.Gru, HiddenSize = 64, Bidirectional = true, Pooling = SequencePooling.Attention }, 150, 10, 3e-3f, "none"),
            new("ItalyPowerDemand", 1, new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 32, Pooling = SequencePooling.Last }, 100, 16, 3e-3f, "none"),
            new("Fashion-MNIST, 28 rows of 28 pixels", 28, new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 128, Pooling = SequencePooling.Last }, 8, 128, 2e-3f, "at least 88 %"),
        };
        var previous = File.Exists(reportPath)
            ? File.ReadLines(reportPath).Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| problem", StringComparison.Ordinal))
                .ToDictionary(l => l.Split('|')[1].Trim(), l => l)
            : new Dictionary<string, string>();
        var lines = new List<string>
        {
            "# Sequence classifier (LSTM / GRU)",
            "",
            $"Standard train/test splits of the UEA/UCR archive and of Fashion-MNIST, {Environment.ProcessorCount} CPU cores, Adam with a cosine schedule,",
            "channels standardized on the training series, seed 1. Test accuracy of the saved-model path (the fitted ML.NET model through ONNX Runtime).",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- sequences`",
            "",
            "| problem | train / test | steps | configuration | parameters | epochs | seconds per epoch | test accuracy | target |",
            "|---|---|---|---|---|---|---|---|---|",
        };
        foreach (var run in runs)
        {
            if (only is not null && !run.Problem.Contains(only, StringComparison.OrdinalIgnoreCase))
            {
                if (previous.TryGetValue(run.Problem, out var kept))
                    lines.Add(kept);
                continue;
            }
            var ml = new MLContext(seed: 1);
            IDataView train, test;
            string column = "Series", steps;
            if (run.Problem.StartsWith("Fashion", StringComparison.Ordinal))
            {
                var classes = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
                var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classes);
                var trainRaw = FashionMnist.Load(ml, FashionMnistSplit.Train);
                var testRaw = FashionMnist.Load(ml, FashionMnistSplit.Test);
                train = toKey.Fit(trainRaw).Transform(trainRaw);
                test = toKey.Fit(testRaw).Transform(testRaw);
                column = "Features";
                steps = "28";
            }
            else
            {
                var trainProblem = TimeSeriesFile.Read(Path.Combine(dataFolder, run.Problem, $"{run.Problem}_TRAIN.ts"));
                var testProblem = TimeSeriesFile.Read(Path.Combine(dataFolder, run.Problem, $"{run.Problem}_TEST.ts"));
                train = TimeSeriesFile.ToDataView(ml, trainProblem);
                test = TimeSeriesFile.ToDataView(ml, testProblem);
                int min = Math.Min(trainProblem.MinLength, testProblem.MinLength), max = Math.Max(trainProblem.MaxLength, testProblem.MaxLength);
                steps = min == max ? $"{max}" : $"{min}..{max}";
            }
            var result = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
            {
                FeatureColumnName = column, Channels = run.Channels, Architecture = run.Architecture, Epochs = run.Epochs, BatchSize = run.BatchSize,
                LearningRate = run.LearningRate, Schedule = LearningRateSchedule.Cosine, MinimumSteps = 0, Device = TorchDeviceKind.Cpu,
            }).Train(train);
            var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(test));
            string sizes = $"{CountRows(train):N0} / {CountRows(test):N0}";
            var a = run.Architecture;
            string configuration = $"{a.Cell.ToString().ToUpperInvariant()} {a.HiddenSize}{(a.Bidirectional ? " bidirectional" : "")}, {a.Layers} layer(s), {a.Pooling.ToString().ToLowerInvariant()} pooling, batch {run.BatchSize}, lr {run.LearningRate.ToString(CultureInfo.InvariantCulture)}";
            double secondsPerEpoch = result.History.Epochs[^1].Elapsed.TotalSeconds / result.History.Epochs.Count;
            string line = $"| {run.Problem} | {sizes} | {steps} | {configuration} | {result.ParameterCount:N0} | {run.Epochs} | {secondsPerEpoch:F2} | {metrics.MicroAccuracy * 100:F2} % | {run.Target} |";
            lines.Add(line);
            AnsiConsole.WriteLine(line);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        return 0;
    }

    private static long CountRows(IDataView data)
    {
        long rows = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext())
            rows++;
        return rows;
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

using System.CommandLine;
using System.Globalization;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Sequences;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// The sequence classifier's families (LSTM/GRU, FCN, ResNet, InceptionTime, Transformer) on four UEA/UCR problems
/// (their standard train/test splits) and on Fashion-MNIST read row by row (28 steps of 28 values), written to
/// docs/benchmarks/sequences.md. Accuracy is the saved model's: fitted, saved with mlContext.Model.Save, loaded, evaluated.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- sequences [--only GunPoint]
/// </summary>
internal static class SequenceBenchmark
{
    private sealed record Run(string Problem, int Channels, SequenceArchitecture Architecture, int Epochs, int BatchSize, float LearningRate,
        double? Target = null, string Reference = "", string Tried = "")
    {
        public string Key => $"{Problem} | {Family(Architecture)}";
    }

    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/sequences.md" };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "test/Microsoft.ML.DeepVariants.Tests/Data/timeseries" };
        var only = new Option<string?>("--only") { Description = "Run only the rows whose problem or family contains this text; the others are kept from the report." };
        var command = new System.CommandLine.Command("sequences", "Sequence classifier families on UEA/UCR problems and row-by-row Fashion-MNIST.") { report, data, only };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(data)!, r.GetValue(only)));
        return command;
    }

    private static SequenceArchitecture Lstm(RecurrentCell cell, int hidden, bool bidirectional, SequencePooling pooling) =>
        new() { Cell = cell, HiddenSize = hidden, Bidirectional = bidirectional, Pooling = pooling };

    private static SequenceArchitecture Convolution(TemporalConvolutionPreset preset, int? kernel = null, int ensemble = 1) =>
        new() { Family = SequenceFamily.TemporalConvolution, Preset = preset, KernelSize = kernel, EnsembleSize = ensemble };

    private static SequenceArchitecture Transformer(int layers, int width, float dropout, SequencePooling pooling = SequencePooling.ClassToken) =>
        new() { Family = SequenceFamily.Transformer, Layers = layers, ModelWidth = width, Heads = 4, Dropout = dropout, Pooling = pooling };

    private static List<Run> Runs()
    {
        const string gunPoint = "FCN 100.0, ResNet 99.1 (Fawaz et al. 2019, mean of 10 runs); InceptionTime 100.0 (Ismail Fawaz et al. 2020, ensemble of 5)";
        const string italy = "FCN 96.1, ResNet 96.3 (Fawaz et al. 2019); InceptionTime 96.8 as an ensemble of 5, 95.5 as one network (Ismail Fawaz et al. 2020)";
        const string vowels = "FCN 99.3, ResNet 99.2 (Fawaz et al. 2019, MTS archive)";
        const string motions = "not in Fawaz et al. 2019 or Ismail Fawaz et al. 2020";
        var runs = new List<Run>();
        // The recurrent rows keep the epochs and batch sizes of the LSTM/GRU benchmark before the other families came.
        void Problem(string name, int channels, int epochs, int batch, double target, string reference, (SequenceArchitecture Architecture, float LearningRate)[] families,
            (int Epochs, int Batch) recurrent)
        {
            foreach (var (architecture, learningRate) in families)
            {
                bool old = architecture.Family == SequenceFamily.Recurrent;
                runs.Add(new Run(name, channels, architecture, old ? recurrent.Epochs : epochs, old ? recurrent.Batch : batch, learningRate, target, reference));
            }
        }
        Problem("GunPoint", 1, 300, 16, 99.3, gunPoint,
        [
            (Lstm(RecurrentCell.Gru, 64, true, SequencePooling.Attention), 3e-3f),
            (Convolution(TemporalConvolutionPreset.Fcn), 1e-3f),
            (Convolution(TemporalConvolutionPreset.ResNet), 1e-3f),
            (Convolution(TemporalConvolutionPreset.InceptionTime), 1e-3f),
            (Transformer(2, 64, 0.1f), 3e-3f),
        ], (150, 10));
        Problem("ItalyPowerDemand", 1, 300, 16, 96.8, italy,
        [
            (Lstm(RecurrentCell.Lstm, 32, false, SequencePooling.Last), 3e-3f),
            (Convolution(TemporalConvolutionPreset.Fcn), 1e-3f),
            (Convolution(TemporalConvolutionPreset.ResNet), 1e-3f),
            (Convolution(TemporalConvolutionPreset.InceptionTime, kernel: 24, ensemble: 5), 1e-3f),
            (Transformer(2, 64, 0.1f), 3e-3f),
        ], (100, 16));
        // InceptionTime's ensemble as it was published (Ismail Fawaz et al. 2020): batches of 64 for 1,500 epochs.
        int ensemble = runs.FindIndex(r => r.Problem == "ItalyPowerDemand" && r.Architecture.EnsembleSize > 1);
        runs[ensemble] = runs[ensemble] with { Epochs = 1500, BatchSize = 64 };
        Problem("JapaneseVowels", 12, 150, 32, 99.2, vowels,
        [
            (Lstm(RecurrentCell.Lstm, 64, true, SequencePooling.Attention), 3e-3f),
            (Convolution(TemporalConvolutionPreset.Fcn), 1e-3f),
            (Convolution(TemporalConvolutionPreset.ResNet), 1e-3f),
            (Convolution(TemporalConvolutionPreset.InceptionTime, kernel: 8), 1e-3f),
            (Transformer(2, 64, 0.1f), 3e-3f),
        ], (60, 32));
        Problem("BasicMotions", 6, 300, 8, 100, motions,
        [
            (Lstm(RecurrentCell.Lstm, 64, false, SequencePooling.Mean), 3e-3f),
            (Convolution(TemporalConvolutionPreset.Fcn), 1e-3f),
            (Convolution(TemporalConvolutionPreset.ResNet), 1e-3f),
            (Convolution(TemporalConvolutionPreset.InceptionTime), 1e-3f),
            (Transformer(2, 64, 0.1f), 3e-3f),
        ], (100, 8));
        runs.Add(new Run(FashionRows, 28, Lstm(RecurrentCell.Lstm, 128, false, SequencePooling.Last), 8, 128, 2e-3f, 88, "none"));
        runs.Add(new Run(FashionRows, 28, Transformer(3, 64, 0.1f), 20, 128, 2e-3f, 90.5, "none"));
        return runs;
    }

    private const string FashionRows = "Fashion-MNIST, 28 rows of 28 pixels";

    private static string Family(SequenceArchitecture a) => a.Family switch
    {
        SequenceFamily.TemporalConvolution => $"{a.Preset}{(a.EnsembleSize > 1 ? $" x{a.EnsembleSize}" : "")}",
        SequenceFamily.Transformer => "Transformer",
        _ => a.Cell.ToString().ToUpperInvariant(),
    };

    private static string Configuration(SequenceArchitecture a) => a.Family switch
    {
        SequenceFamily.TemporalConvolution => $"{a.EffectiveFilters} filters, kernels {string.Join("-", a.Kernels)}" +
            (a.Preset == TemporalConvolutionPreset.InceptionTime ? $", depth {a.Depth}, bottleneck {a.Bottleneck}" : ""),
        SequenceFamily.Transformer => $"{a.Layers} blocks, width {a.ModelWidth}, {a.Heads} heads, feed-forward {a.EffectiveFeedForwardSize}, dropout {a.Dropout.ToString(CultureInfo.InvariantCulture)}, {a.Positions.ToString().ToLowerInvariant()} positions, {a.EffectivePooling} pooling",
        _ => $"{a.HiddenSize}{(a.Bidirectional ? " bidirectional" : "")}, {a.Layers} layer(s), {a.EffectivePooling.ToString().ToLowerInvariant()} pooling",
    };

    private static int Execute(string reportPath, string dataFolder, string? only)
    {
        NativeAllocator.KeepFreedMemory();
        var previous = BenchmarkReport.Rows(reportPath, "| problem");
        var lines = new List<string>
        {
            "# Sequence classifier families",
            "",
            $"Standard train/test splits of the UEA/UCR archive and of Fashion-MNIST, {Environment.ProcessorCount} CPU cores, Adam with a cosine schedule,",
            "channels standardized on the training series, seed 1, a fixed number of epochs (no model selection on the test split).",
            "Test accuracy of the saved model: fitted, saved with `mlContext.Model.Save`, loaded, and evaluated through ONNX Runtime inside ML.NET.",
            "Published references are means over several runs of the same splits.",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- sequences`",
            "",
            "| problem | family | train / test | steps | configuration | parameters | epochs, batch, lr | seconds per epoch | test accuracy | target | published |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        };
        foreach (var run in Runs())
        {
            if (only is not null && !run.Key.Contains(only, StringComparison.OrdinalIgnoreCase))
            {
                if (previous.TryGetValue(run.Key, out var kept))
                    lines.Add(kept);
                continue;
            }
            var ml = new MLContext(seed: 1);
            IDataView train, test;
            string column = "Series", steps;
            if (run.Problem == FashionRows)
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
            string saved = Path.Combine(Path.GetTempPath(), $"sequences-{Guid.NewGuid():N}.zip");
            ml.Model.Save(result.Model, train.Schema, saved);
            var loaded = new MLContext(seed: 1).Model.Load(saved, out _);
            File.Delete(saved);
            double accuracy = ml.MulticlassClassification.Evaluate(loaded.Transform(test)).MicroAccuracy * 100;
            string sizes = $"{CountRows(train):N0} / {CountRows(test):N0}";
            double secondsPerEpoch = result.History.Epochs[^1].Elapsed.TotalSeconds / result.History.Epochs.Count;
            string target = run.Target is not { } goal ? "none"
                : accuracy >= goal - 1e-9 ? $"{goal:F1} %: met"
                : $"{goal:F1} %: missed by {goal - accuracy:F2} points";
            string line = $"| {run.Problem} | {Family(run.Architecture)} | {sizes} | {steps} | {Configuration(run.Architecture)} | {result.ParameterCount:N0} | " +
                $"{run.Epochs}, {run.BatchSize}, {run.LearningRate.ToString(CultureInfo.InvariantCulture)} | {secondsPerEpoch:F2} | {accuracy:F2} % | {target} | {run.Reference} |";
            lines.Add(line);
            AnsiConsole.WriteLine(line);
            BenchmarkReport.Write(reportPath, [.. lines, .. BenchmarkReport.Remaining(previous, lines)]);
        }
        BenchmarkReport.Write(reportPath, [.. lines, "", .. Notes]);
        return 0;
    }

    // What every row was trained with, so a missed target can be read against what was tried.
    private static readonly string[] Notes =
    [
        "Notes.",
        "- Targets are per problem; the published figures beside them are each method's mean over runs. Each row is one run of one seed.",
        "- Every row trains a fixed number of epochs (300 for GunPoint, ItalyPowerDemand and BasicMotions, 150 for JapaneseVowels; the published",
        "  temporal CNNs trained 1,500 to 2,000 epochs), Adam with a cosine schedule, no validation split and no model selection on the test split.",
        "- InceptionTime's longest kernel is 40 where the series allow it; ItalyPowerDemand (24 steps) takes 24-12-6 and JapaneseVowels",
        "  (7 to 29 steps) 8-4-2, since a kernel longer than the longest training series is refused (the published runs padded 40 over 24 steps).",
        "- ItalyPowerDemand's InceptionTime row is an ensemble of five networks trained as InceptionTime was published (batches of 64, 1,500 epochs);",
        "  the others are single networks.",
        "- The recurrent rows keep the epochs and batch sizes of the earlier LSTM/GRU benchmark. The LSTM row of Fashion-MNIST and the GRU row",
        "  of GunPoint were not rerun in this round (89.55 % and 96.00 % in the previous report, commit 0e682b7, with the same settings).",
        "- ItalyPowerDemand misses its target by 0.01 points, one test series of 1,029 (InceptionTime x5, 996 right). Tried: FCN, ResNet, one InceptionTime (96.11 % in the",
        "  tests' shorter run), five with kernels 20-10-5 (96.40 %), five with 24-12-6 for 300 epochs in batches of 16 (96.79 %) and for 1,500",
        "  epochs in batches of 64, as published (96.79 % again).",
        "- Seconds per epoch were measured while other work shared the two cores at times; compare them within a problem, roughly.",
    ];

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

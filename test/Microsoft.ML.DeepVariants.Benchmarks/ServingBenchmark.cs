using System.CommandLine;
using System.Globalization;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Factorization;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.DeepVariants.Pruning;
using Microsoft.ML.DeepVariants.Quantization;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Every compression method measured by what it does at serving time (ServingReport): a LeNet and a VGG trained on a
/// Fashion-MNIST slice, then int8 quantization, channel pruning, low-rank factorization and magnitude pruning of each, with
/// parameters, ONNX size, rows per second through ML.NET (one row at a time) and through ONNX Runtime in batches of 64,
/// and test accuracy, side by side in one run. Written to docs/benchmarks/serving.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- serving
/// </summary>
internal static class ServingBenchmark
{
    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/serving.md" };
        var trainRows = new Option<int>("--train-rows") { DefaultValueFactory = _ => 20_000 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 5 };
        var command = new System.CommandLine.Command("serving", "Compression methods measured at serving time: size, rows per second, accuracy.") { report, trainRows, epochs };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(trainRows), r.GetValue(epochs)));
        return command;
    }

    private static int Execute(string reportPath, int trainRows, int epochs)
    {
        var ml = new MLContext(seed: 1);
        var classOrder = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classOrder);
        IDataView Keyed(IDataView data) => toKey.Fit(data).Transform(data);
        var train = ml.Data.Cache(Keyed(ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Train, maxRows: trainRows))));
        var test = ml.Data.Cache(Keyed(ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 2000))));

        var lines = new List<string>
        {
            "# Compression at serving time",
            "",
            $"Fashion-MNIST: {trainRows:N0} training images, the first 2,000 test images measured; {Environment.ProcessorCount} CPU cores, no GPU.",
            $"Each network trains {epochs} epochs (Adam, cosine schedule, learning rate 2e-3, batch 128, seed 1); each method starts from that fit.",
            "Rows per second: the ML.NET model's `Transform`, one row at a time, every prediction read; and ONNX Runtime alone on the same graph",
            "with a free batch dimension, batches of 64; each the fastest of three passes after a warm-up of 64 rows. Parameters: the graph's stored weights (batch-norm statistics and",
            "quantization scales included). All figures come from one run of the command, side by side.",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- serving`",
            "",
            "| network | method | parameters | ONNX KB | size | ML.NET rows/s | speed-up | ONNX Runtime rows/s, batch 64 | speed-up | test accuracy |",
            "|---|---|---|---|---|---|---|---|---|---|",
        };
        foreach (var (name, architecture) in new[]
        {
            ("LeNet", new CnnArchitecture { Family = CnnFamily.LeNet }),
            ("VGG", new CnnArchitecture { Family = CnnFamily.Vgg }),
        })
        {
            AnsiConsole.MarkupLine($"Training the [bold]{name}[/] ...");
            var fitted = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
            {
                ImageHeight = 28, ImageWidth = 28, Architecture = architecture, Epochs = epochs, BatchSize = 128, LearningRate = 2e-3f,
                Schedule = LearningRateSchedule.Cosine, Seed = 1, Device = TorchDeviceKind.Cpu,
            }).Train(train);
            var baseline = ServingReport.Measure(ml, fitted.Model, fitted.OnnxModel, test);
            void Row(string method, ServingFigures f)
            {
                string line = $"| {name} | {method} | {f.Parameters:N0} | {f.OnnxBytes / 1024.0:N0} | {f.OnnxBytes / (double)baseline.OnnxBytes:P0} | " +
                    $"{f.RowsPerSecond:N0} | {f.RowsPerSecond / baseline.RowsPerSecond:F2}x | {f.BatchedRowsPerSecond:N0} | {f.BatchedRowsPerSecond / baseline.BatchedRowsPerSecond:F2}x | " +
                    $"{f.Accuracy * 100:F2} % |";
                lines.Add(line);
                AnsiConsole.WriteLine(line);
            }
            Row("float, as fitted", baseline);
            var tuning = (Epochs: 1, LearningRate: 5e-4f);
            var int8 = ml.Transforms.DeepVariants.QuantizeInt8(fitted, train, new QuantizationOptions { CalibrationRows = 256 });
            Row("int8 (post-training, 256 calibration rows)", ServingReport.Measure(ml, int8.Model, int8.OnnxModel, test));
            var channels = ml.Transforms.DeepVariants.PruneChannels(fitted, new ChannelPruningOptions
            {
                Ratio = 0.5, Epochs = tuning.Epochs, LearningRate = tuning.LearningRate, BatchSize = 128, Seed = 1, Device = TorchDeviceKind.Cpu,
            }).Train(train);
            Row($"channel pruning, half the filters (L1), {tuning.Epochs} epoch", ServingReport.Measure(ml, channels.Model, channels.OnnxModel, test));
            var lowRank = ml.Transforms.DeepVariants.Factorize(fitted, new LowRankOptions
            {
                EnergyFraction = 0.9, Epochs = tuning.Epochs, LearningRate = tuning.LearningRate, BatchSize = 128, Seed = 1, Device = TorchDeviceKind.Cpu,
            }).Train(train);
            string ranks = string.Join(", ", lowRank.Report.Layers.Select(l => l.Rank is { } r ? $"{r}" : "kept"));
            Row($"low rank, 90% energy (ranks {ranks}), {tuning.Epochs} epoch", ServingReport.Measure(ml, lowRank.Model, lowRank.OnnxModel, test));
            var magnitude = ml.Transforms.DeepVariants.Prune(fitted, new PruningOptions
            {
                Sparsity = 0.8, Epochs = tuning.Epochs, LearningRate = tuning.LearningRate, BatchSize = 128, Seed = 1, Device = TorchDeviceKind.Cpu,
            }).Train(train);
            Row($"magnitude pruning, 80% zeros, {tuning.Epochs} epoch", ServingReport.Measure(ml, magnitude.Model, magnitude.OnnxModel, test));
        }
        lines.Add("");
        lines.Add("Magnitude pruning leaves its zeros in tensors of the same size, so its graph is as large and as fast as the float one;");
        lines.Add("channel pruning and low-rank factorization change the layers' shapes, and int8 changes the kernels. Its speed-ups are");
        lines.Add("therefore this table's noise: the same graph's shapes measured again, on a machine that other work shares.");

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        AnsiConsole.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Written to {reportPath}"));
        return 0;
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

using System.CommandLine;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// The CNN families on the full Fashion-MNIST (60,000 training, 10,000 test images): parameters, epochs, seconds
/// per epoch and test accuracy, written to docs/benchmarks/cnn.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- cnn
/// </summary>
internal static class CnnFamilyBenchmark
{
    private sealed record Run(string Name, CnnArchitecture Architecture, int Epochs, CnnAugmentation? Augmentation, float LearningRate);

    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/cnn.md" };
        var only = new Option<string?>("--only") { Description = "Run only the configurations whose name contains this text." };
        var command = new System.CommandLine.Command("cnn", "CNN families on the full Fashion-MNIST.") { report, only };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(only)));
        return command;
    }

    private static int Execute(string reportPath, string? only)
    {
        NativeAllocator.KeepFreedMemory();
        var augmentation = new CnnAugmentation { CropPadding = 2, HorizontalFlipProbability = 0.5f, ErasingProbability = 0.25f };
        var cropAndFlip = new CnnAugmentation { CropPadding = 2, HorizontalFlipProbability = 0.5f };
        var runs = new List<Run>
        {
            new("LeNet", new CnnArchitecture { Family = CnnFamily.LeNet }, 5, null, 2e-3f),
            new("VGG", new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 32 }, 5, null, 2e-3f),
            new("ResNet", new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 3, Width = 32 }, 5, null, 2e-3f),
            new("Inception", new CnnArchitecture { Family = CnnFamily.Inception, Depth = 2, Width = 32 }, 5, null, 2e-3f),
            new("DenseNet", new CnnArchitecture { Family = CnnFamily.DenseNet, Depth = 3, LayersPerBlock = 2, GrowthRate = 12 }, 5, null, 2e-3f),
            new("VGG + crop, flip, erasing", new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 32 }, 12, augmentation, 2e-3f),
            new("VGG + crop and flip", new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 32 }, 15, cropAndFlip, 2e-3f),
        };
        // With --only, the report keeps the other configurations' rows from its last run.
        var previous = File.Exists(reportPath)
            ? File.ReadLines(reportPath).Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| family", StringComparison.Ordinal))
                .ToDictionary(l => l.Split('|')[1].Trim(), l => l)
            : new Dictionary<string, string>();

        var ml = new MLContext(seed: 1);
        var classOrder = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classOrder);
        var train = toKey.Fit(FashionMnist.Load(ml, FashionMnistSplit.Train)).Transform(FashionMnist.Load(ml, FashionMnistSplit.Train));
        var test = toKey.Fit(FashionMnist.Load(ml, FashionMnistSplit.Test)).Transform(FashionMnist.Load(ml, FashionMnistSplit.Test));

        var lines = new List<string>
        {
            "# CNN families on Fashion-MNIST",
            "",
            $"Full Fashion-MNIST (60,000 training, 10,000 test images), {Environment.ProcessorCount} CPU cores, Adam with a cosine schedule, batch 128, seed 1.",
            "Augmentation, as named: random crop after 2-pixel padding, horizontal flip (p 0.5), random erasing (p 0.25).",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- cnn`",
            "",
            "| family | architecture | parameters | epochs | augmentation | seconds per epoch | test accuracy |",
            "|---|---|---|---|---|---|---|",
        };
        foreach (var run in runs)
        {
            if (only is not null && !run.Name.Contains(only, StringComparison.OrdinalIgnoreCase))
            {
                if (previous.TryGetValue(run.Name, out var kept))
                    lines.Add(kept);
                continue;
            }
            var options = new CnnClassifierOptions
            {
                ImageHeight = 28, ImageWidth = 28, Architecture = run.Architecture, Epochs = run.Epochs, BatchSize = 128,
                LearningRate = run.LearningRate, Schedule = LearningRateSchedule.Cosine, Augmentation = run.Augmentation, Device = TorchDeviceKind.Cpu,
            };
            var result = ml.Transforms.DeepVariants.CnnClassifier(options).Train(train);
            double accuracy = ml.MulticlassClassification.Evaluate(result.Model.Transform(test)).MicroAccuracy;
            double secondsPerEpoch = result.History.Epochs[^1].Elapsed.TotalSeconds / result.History.Epochs.Count;
            string knobs = $"depth {run.Architecture.Depth}, " + (run.Architecture.Family == CnnFamily.DenseNet
                    ? $"{run.Architecture.LayersPerBlock} layers/block, growth {run.Architecture.GrowthRate}"
                    : $"width {run.Architecture.Width}") +
                (run.Architecture.Bottleneck ? ", bottleneck" : "");
            string line = $"| {run.Name} | {knobs} | {result.ParameterCount:N0} | {run.Epochs} | {(run.Augmentation is null ? "no" : "yes")} | {secondsPerEpoch:F1} | {accuracy * 100:F2} % |";
            lines.Add(line);
            AnsiConsole.WriteLine(line);
            File.WriteAllLines(reportPath + ".tmp", lines);
        }
        lines.Add("");
        lines.Add("Targets (issue 3): a small CNN at least 92.0 % within 5 epochs; the best family at least 93.5 % within 15 epochs with augmentation.");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        return 0;
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

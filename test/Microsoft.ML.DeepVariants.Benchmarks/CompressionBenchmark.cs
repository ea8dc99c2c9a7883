using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Distillation;
using Microsoft.ML.DeepVariants.Pruning;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Model compression on the full Fashion-MNIST: a VGG teacher, a small LeNet student trained alone and distilled
/// (mean of 3 seeds), with parameters, inference images per second (the ML.NET model, one row at a time) and test
/// accuracy; then the teacher magnitude-pruned to 50, 80 and 90 % sparsity. Written to docs/benchmarks/compression.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- compression
/// </summary>
internal static class CompressionBenchmark
{
    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/compression.md" };
        var studentEpochs = new Option<int>("--student-epochs") { DefaultValueFactory = _ => 10 };
        var temperature = new Option<double>("--temperature") { DefaultValueFactory = _ => 2 };
        var alpha = new Option<double>("--alpha") { DefaultValueFactory = _ => 0.5 };
        var seeds = new Option<int>("--seeds") { Description = "Student seeds 1..N.", DefaultValueFactory = _ => 3 };
        var skipPruning = new Option<bool>("--skip-pruning") { Description = "Distillation only (for trying its settings)." };
        var teacherCache = new Option<string?>("--teacher-cache") { Description = "Load the teacher from this zip when it exists, else save it there (distillation only)." };
        var augment = new Option<bool>("--augment") { Description = "Train both students with random crops and flips (the teacher then scores every augmented batch)." };
        var command = new System.CommandLine.Command("compression", "Distillation and pruning on the full Fashion-MNIST.")
            { report, studentEpochs, temperature, alpha, seeds, skipPruning, teacherCache, augment };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(studentEpochs), r.GetValue(temperature), r.GetValue(alpha), r.GetValue(seeds),
            r.GetValue(skipPruning), r.GetValue(teacherCache), r.GetValue(augment)));
        return command;
    }

    private static int Execute(string reportPath, int studentEpochs, double temperature, double alpha, int seedCount, bool skipPruning, string? teacherCache,
        bool augment)
    {
        NativeAllocator.KeepFreedMemory();
        var ml = new MLContext(seed: 1);
        var classOrder = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classOrder);
        var train = ml.Data.Cache(toKey.Fit(FashionMnist.Load(ml, FashionMnistSplit.Train)).Transform(FashionMnist.Load(ml, FashionMnistSplit.Train)));
        var test = ml.Data.Cache(toKey.Fit(FashionMnist.Load(ml, FashionMnistSplit.Test)).Transform(FashionMnist.Load(ml, FashionMnistSplit.Test)));

        var teacherArchitecture = new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 32 };
        var studentArchitecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 8, HiddenSize = 24 };
        CnnClassifierOptions Options(CnnArchitecture architecture, int epochs, int seed) => new()
        {
            ImageHeight = 28, ImageWidth = 28, Architecture = architecture, Epochs = epochs, BatchSize = 128, LearningRate = 2e-3f,
            Schedule = LearningRateSchedule.Cosine, Seed = seed, Device = TorchDeviceKind.Cpu,
        };
        CnnClassifierOptions StudentOptions(int seed) => Options(studentArchitecture, studentEpochs, seed).Also(o =>
            o.Augmentation = augment ? new CnnAugmentation { CropPadding = 2, HorizontalFlipProbability = 0.5f } : null);
        (double Accuracy, double ImagesPerSecond) Measure(ITransformer model)
        {
            var clock = Stopwatch.StartNew();
            var scored = ml.Data.Cache(model.Transform(test));
            long rows = scored.GetColumn<uint>("PredictedLabel").LongCount();
            double perSecond = rows / clock.Elapsed.TotalSeconds;
            return (ml.MulticlassClassification.Evaluate(scored).MicroAccuracy, perSecond);
        }

        AnsiConsole.MarkupLine("Training the teacher ...");
        FitResult? teacher = null;
        ITransformer teacherModel;
        if (skipPruning && teacherCache is not null && File.Exists(teacherCache))
        {
            teacherModel = ml.Model.Load(teacherCache, out _);
        }
        else
        {
            teacher = ml.Transforms.DeepVariants.CnnClassifier(Options(teacherArchitecture, 5, 1)).Train(train);
            teacherModel = teacher.Model;
            if (teacherCache is not null)
                ml.Model.Save(teacherModel, train.Schema, teacherCache);
        }
        long teacherParameters = teacherArchitecture.ParameterCount(1, 28, 28, 10);
        var (teacherAccuracy, teacherSpeed) = Measure(teacherModel);
        AnsiConsole.WriteLine($"teacher: {teacherParameters:N0} parameters, {teacherAccuracy:P2}, {teacherSpeed:F0} img/s");

        var alone = new List<(double Accuracy, double Speed)>();
        var distilled = new List<(double Accuracy, double Speed)>();
        long studentParameters = 0;
        var distillation = new DistillationOptions { Temperature = temperature, Alpha = alpha };
        foreach (int seed in Enumerable.Range(1, seedCount))
        {
            var plain = ml.Transforms.DeepVariants.CnnClassifier(StudentOptions(seed)).Train(train);
            studentParameters = plain.ParameterCount;
            alone.Add(Measure(plain.Model));
            distillation.Student = StudentOptions(seed);
            distilled.Add(Measure(ml.Transforms.DeepVariants.Distill(teacherModel, distillation).Train(train).Model));
            AnsiConsole.WriteLine($"seed {seed}: alone {alone[^1].Accuracy:P2}, distilled {distilled[^1].Accuracy:P2}");
        }

        var pruning = new List<string>();
        foreach (double sparsity in skipPruning ? [] : new[] { 0.5, 0.8, 0.9 })
        {
            var result = ml.Transforms.DeepVariants.Prune(teacher!, new PruningOptions
            {
                Sparsity = sparsity, Epochs = 1, LearningRate = 2e-4f, BatchSize = 128, Seed = 1, Device = TorchDeviceKind.Cpu,
            }).Train(train, test);
            var r = result.Report;
            string line = $"| {sparsity:P0} | {r.Sparsity:P2} | {r.AccuracyBefore * 100:F2} % | {r.AccuracyPruned * 100:F2} % | {r.AccuracyAfter * 100:F2} % | " +
                string.Join(", ", r.Layers.Select(l => $"{l.Name.Replace(".weight", "")} {l.Sparsity:P0}")) + " |";
            pruning.Add(line);
            AnsiConsole.WriteLine(line);
        }

        string Mean(IEnumerable<double> values, string format) => values.Average().ToString(format, System.Globalization.CultureInfo.InvariantCulture);
        string Seeds(IEnumerable<(double Accuracy, double Speed)> runs) => string.Join(", ", runs.Select(r => (r.Accuracy * 100).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)));
        double gain = (distilled.Average(d => d.Accuracy) - alone.Average(a => a.Accuracy)) * 100;
        var lines = new List<string>
        {
            "# Model compression on Fashion-MNIST",
            "",
            $"Full Fashion-MNIST (60,000 training, 10,000 test images), {Environment.ProcessorCount} CPU cores. Adam, cosine schedule, learning rate 2e-3, batch 128.",
            "Inference speed is the saved-model path: the ML.NET transform (ONNX Runtime, one row at a time) over the 10,000 test images.",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- compression" + Environment.GetCommandLineArgs().Skip(2).Aggregate("", (a, b) => a + " " + b) + "`",
            "",
            "## Distillation",
            "",
            $"Teacher: VGG, depth 3, width 32, 5 epochs, seed 1. Student: LeNet, width 8, hidden 24, {studentEpochs} epochs, seeds 1 to {seedCount}.",
            augment
                ? $"Both students train with random crops (2-pixel padding) and horizontal flips; distillation: temperature {distillation.Temperature}, alpha {distillation.Alpha}, the teacher scoring every augmented batch."
                : $"Distillation: temperature {distillation.Temperature}, alpha {distillation.Alpha}; the teacher scores the 60,000 training images once.",
            "",
            "| model | parameters | share of teacher | images/s | test accuracy (mean) | per seed |",
            "|---|---|---|---|---|---|",
            $"| teacher | {teacherParameters:N0} | 1 | {teacherSpeed:F0} | {teacherAccuracy * 100:F2} % | seed 1 |",
            $"| student alone | {studentParameters:N0} | 1/{(double)teacherParameters / studentParameters:F1} | {Mean(alone.Select(a => a.Speed), "F0")} | {Mean(alone.Select(a => a.Accuracy * 100), "F2")} % | {Seeds(alone)} |",
            $"| distilled student | {studentParameters:N0} | 1/{(double)teacherParameters / studentParameters:F1} | {Mean(distilled.Select(a => a.Speed), "F0")} | {Mean(distilled.Select(a => a.Accuracy * 100), "F2")} % | {Seeds(distilled)} |",
            "",
            $"Gain from distillation: {gain:+0.00;-0.00} points (target: at least +0.5 points with at most a tenth of the teacher's parameters).",
        };
        if (!skipPruning)
        {
            lines.AddRange(new[]
            {
                "",
                "## Magnitude pruning of the teacher",
                "",
                "Global magnitude threshold over the convolution and linear weights (biases and batch norm kept), then 1 epoch of fine-tuning",
                "(Adam, learning rate 2e-4) with the pruned weights held at zero. Accuracy on the 10,000 test images.",
                "",
                "| target | zero weights | accuracy before | pruned, no fine-tuning | after 1 epoch of fine-tuning | sparsity per layer |",
                "|---|---|---|---|---|---|",
            });
            lines.AddRange(pruning);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        AnsiConsole.WriteLine($"Written to {reportPath}");
        return 0;
    }

    private static T Also<T>(this T value, Action<T> action)
    {
        action(value);
        return value;
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

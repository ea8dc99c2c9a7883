using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Graphs;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Resident memory at the end of every epoch, with the default settings (glibc's allocator as it is, the trainer's
/// release policy on): the GCN on Cora for 200 epochs, the default CNN on Fashion-MNIST for 10, and ResNet18's last two
/// blocks fine-tuned for 3 epochs on 5,000 images at 64 x 64. Each run is a child process of its own, so one's heap
/// does not colour the next. The target: flat within 5% after epoch 2.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- memory
/// </summary>
internal static class MemoryBenchmark
{
    private static readonly string[] Runs = ["gcn", "cnn", "resnet18"];

    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/memory.md" };
        var run = new Option<string?>("--run") { Description = "Internal: measure one run and print JSON.", Hidden = true };
        var gcnEpochs = new Option<int>("--gcn-epochs") { Description = "Epochs of the GCN run (200, the paper's; more shows where memory levels off).", DefaultValueFactory = _ => 200 };
        var command = new System.CommandLine.Command("memory", "Resident memory per epoch: GCN, CNN, ResNet18 fine-tuning.") { report, run, gcnEpochs };
        command.SetAction(r => r.GetValue(run) is { } one ? Measure(one, r.GetValue(gcnEpochs)) : Orchestrate(r.GetValue(report)!, r.GetValue(gcnEpochs)));
        return command;
    }

    private sealed record Result(string Run, string Description, double[] EndOfEpochMegabytes, double PeakMegabytes, double Seconds, long Releases);

    private static int Orchestrate(string reportPath, int gcnEpochs)
    {
        var results = new List<Result>();
        foreach (string run in Runs)
        {
            AnsiConsole.MarkupLine($"Memory: [bold]{run}[/] ...");
            var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
            foreach (string arg in new[] { "memory", "--run", run, "--gcn-epochs", gcnEpochs.ToString(System.Globalization.CultureInfo.InvariantCulture) })
                start.ArgumentList.Add(arg);
            using var child = Process.Start(start)!;
            string output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            if (child.ExitCode != 0)
                throw new InvalidOperationException($"The '{run}' run failed with exit code {child.ExitCode}:\n{output}");
            results.Add(JsonSerializer.Deserialize<Result>(output.Split('\n').Last(l => l.StartsWith('{')))!);
            AnsiConsole.WriteLine($"{run}: {string.Join(" ", results[^1].EndOfEpochMegabytes.Select(m => $"{m:F0}"))} MiB");
        }

        var lines = new List<string>
        {
            "# Resident memory per epoch",
            "",
            "Resident set size (VmRSS) at the end of every epoch, with the default settings: glibc's allocator untouched, the trainer's",
            "release policy on (malloc_trim when resident memory has grown by more than 128 MB and 10% since it last did, and at each epoch's end;",
            "a compacting garbage collection after the first epoch and a generation-0 one after each later epoch).",
            $"Each run in a child process of its own, on {Environment.ProcessorCount} CPU cores.",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- memory`",
            "",
            "| run | epochs | RSS after epoch 1 / 2 / last, MiB | largest change after epoch 2 (target 5%) | peak RSS MiB | releases | seconds |",
            "|---|---|---|---|---|---|---|",
        };
        foreach (var r in results)
        {
            var m = r.EndOfEpochMegabytes;
            double change = m.Skip(2).Select(v => Math.Abs(v - m[1]) / m[1]).DefaultIfEmpty(0).Max();
            lines.Add($"| {r.Description} | {m.Length} | {m[0]:F0} / {m[1]:F0} / {m[^1]:F0} | {change:P1} | {r.PeakMegabytes:F0} | {r.Releases} | {r.Seconds:F0} |");
        }
        lines.Add("");
        lines.Add("Every epoch's figure, MiB:");
        lines.Add("");
        foreach (var r in results)
            lines.Add($"- {r.Run}: {string.Join(", ", r.EndOfEpochMegabytes.Select(v => $"{v:F0}"))}");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        AnsiConsole.MarkupLine($"Wrote [bold]{reportPath}[/].");
        return 0;
    }

    private static int Measure(string run, int gcnEpochs)
    {
        var ml = new MLContext(seed: 1);
        var endOfEpoch = new List<double>();
        var progress = new TransferBenchmark.Inline(p =>
        {
            if (p.IsEpochEnd)
                endOfEpoch.Add(TransferBenchmark.ResidentMegabytes());
        });
        var clock = Stopwatch.StartNew();
        long releases = NativeAllocator.Releases;
        string description;
        switch (run)
        {
            case "gcn":
            {
                var (nodes, edges) = Cora.Load(ml, "test/Microsoft.ML.DeepVariants.Tests/Data/cora");
                // Early stopping off, so that all 200 epochs run.
                ml.Transforms.DeepVariants.GcnNodeClassifier(edges, new GcnOptions { Epochs = gcnEpochs, EarlyStoppingPatience = 0, Device = TorchDeviceKind.Cpu, Progress = progress }).Fit(nodes);
                description = $"GCN, Cora, Kipf and Welling's settings, {gcnEpochs} epochs";
                break;
            }
            case "cnn":
            {
                var train = ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Train, maxRows: 10_000));
                ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
                {
                    ImageHeight = 28, ImageWidth = 28, Epochs = 10, Device = TorchDeviceKind.Cpu, Progress = progress,
                }).Fit(train);
                description = "CNN (default LeNet), 10,000 Fashion-MNIST images, 10 epochs";
                break;
            }
            case "resnet18":
            {
                string folder = Path.Combine(Path.GetTempPath(), "deepvariants-transfer-png");
                var train = ml.Data.Cache(TransferBenchmark.Pixels(ml, TransferBenchmark.WritePngs(folder, FashionMnistSplit.Train, 5000), 64));
                var backbone = PretrainedBackboneOptions.ResNet18();
                backbone.ImageHeight = backbone.ImageWidth = 64;
                ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
                {
                    Backbone = backbone, Training = BackboneTraining.LastBlocks, TrainableBlocks = 2, Epochs = 3, BatchSize = 32,
                    Device = TorchDeviceKind.Cpu, Progress = progress,
                }).Fit(train);
                description = "ResNet18, last two blocks fine-tuned (AdamW), 5,000 images at 64 x 64, 3 epochs";
                break;
            }
            default:
                throw new ArgumentException($"Unknown run '{run}'; expected one of {string.Join(", ", Runs)}.");
        }
        Console.WriteLine(JsonSerializer.Serialize(new Result(run, description, endOfEpoch.ToArray(), ProcessMemory.PeakMegabytes(),
            clock.Elapsed.TotalSeconds, NativeAllocator.Releases - releases)));
        return 0;
    }
}

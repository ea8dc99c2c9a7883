// Benchmarks the CNN foundation on Fashion-MNIST, in one run and on one machine:
//  - training: the ML.NET pipeline (CnnClassifier) against a plain TorchSharp loop over the same network,
//    data, batch size and optimizer; seconds per epoch and their ratio;
//  - inference: the fitted ML.NET transform (ONNX Runtime, one row at a time) against plain TorchSharp in
//    batches of 1,000; images per second and their ratio;
//  - peak resident memory;
// each under glibc's default allocator and with NativeAllocator.KeepFreedMemory(). Each setting runs in a
// child process of its own, so allocator settings and peak memory do not leak between them.
//   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- --epochs 2
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Spectre.Console;
using static TorchSharp.torch;

var epochs = new Option<int>("--epochs") { Description = "Epochs for each trainer.", DefaultValueFactory = _ => 2 };
var rows = new Option<int?>("--train-rows") { Description = "Training rows (all 60,000 when left out)." };
var allocator = new Option<string?>("--measure") { Description = "Internal: measure one allocator setting (default|keep) and print JSON.", Hidden = true };
var report = new Option<string>("--report") { Description = "Markdown report path.", DefaultValueFactory = _ => "docs/benchmarks/cnn-foundation.md" };
var root = new RootCommand("DeepVariants.ML benchmarks: the CNN foundation by default, 'graphs' for the GCN.") { epochs, rows, allocator, report };
root.SetAction(r => r.GetValue(allocator) is { } setting
    ? Measure(setting, r.GetValue(epochs), r.GetValue(rows))
    : Orchestrate(r.GetValue(epochs), r.GetValue(rows), r.GetValue(report)!));
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.GraphBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.DenoisingBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.CnnFamilyBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.CompressionBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.SequenceBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.AutoMLBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.TransferBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.StreamingBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.MemoryBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.TabularBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.DistributedBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.ServingBenchmark.Command());
root.Subcommands.Add(Microsoft.ML.DeepVariants.Benchmarks.GenerativeBenchmark.Command());
return root.Parse(args).Invoke();

static int Orchestrate(int epochs, int? rows, string reportPath)
{
    var results = new List<Result>();
    foreach (string setting in new[] { "default", "keep" })
    {
        AnsiConsole.MarkupLine($"Measuring with allocator setting [bold]{setting}[/] ...");
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        foreach (string arg in Environment.GetCommandLineArgs().Skip(1))
            start.ArgumentList.Add(arg);
        start.ArgumentList.Add("--measure");
        start.ArgumentList.Add(setting);
        using var child = Process.Start(start)!;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0)
            throw new InvalidOperationException($"The '{setting}' measurement failed with exit code {child.ExitCode}:\n{output}");
        results.Add(JsonSerializer.Deserialize<Result>(output.Split('\n').Last(l => l.StartsWith('{')))!);
    }

    var table = new Table().AddColumns("allocator", "pipeline s/epoch", "plain TorchSharp s/epoch", "ratio (target <= 1.10)",
        "ML.NET transform img/s", "TorchSharp img/s (batch 1000)", "transform / TorchSharp", "test accuracy", "peak RSS MiB");
    foreach (var r in results)
        table.AddRow(r.Allocator, F(r.PipelineSecondsPerEpoch), F(r.PlainSecondsPerEpoch), F(r.PipelineSecondsPerEpoch / r.PlainSecondsPerEpoch, "F3"),
            F(r.TransformImagesPerSecond, "F0"), F(r.TorchImagesPerSecond, "F0"), F(r.TransformImagesPerSecond / r.TorchImagesPerSecond),
            F(r.PipelineAccuracy * 100, "F2") + " %", F(r.PeakMegabytes, "F0"));
    AnsiConsole.Write(table);

    var lines = new List<string>
    {
        "# CNN foundation benchmark",
        "",
        $"Machine: {Environment.ProcessorCount} cores, {RuntimeInformationText()}. Data: Fashion-MNIST, {results[0].TrainRows:N0} training and 10,000 test images.",
        $"Network: LeNet (2 conv blocks of width 32, hidden 128), batch 128, Adam lr 0.001, {epochs} epochs per trainer.",
        "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- --epochs " + epochs + "`",
        "",
        "| allocator | pipeline s/epoch | plain TorchSharp s/epoch | ratio | ML.NET transform img/s | TorchSharp img/s (batch 1000) | transform / TorchSharp | test accuracy | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    };
    lines.AddRange(results.Select(r => $"| {r.Allocator} | {F(r.PipelineSecondsPerEpoch)} | {F(r.PlainSecondsPerEpoch)} | {F(r.PipelineSecondsPerEpoch / r.PlainSecondsPerEpoch, "F3")} | " +
        $"{F(r.TransformImagesPerSecond, "F0")} | {F(r.TorchImagesPerSecond, "F0")} | {F(r.TransformImagesPerSecond / r.TorchImagesPerSecond)} | {F(r.PipelineAccuracy * 100, "F2")} % | {F(r.PeakMegabytes, "F0")} |"));
    lines.Add("");
    lines.Add("`keep` is `NativeAllocator.KeepFreedMemory()` (glibc keeps freed buffers: no mmap for large blocks, high trim threshold).");
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
    string temporary = reportPath + ".tmp";
    File.WriteAllLines(temporary, lines);
    File.Move(temporary, reportPath, overwrite: true);
    AnsiConsole.MarkupLine($"Report written to [blue]{reportPath}[/].");
    return 0;
}

static int Measure(string setting, int epochs, int? rows)
{
    if (setting == "keep" && !NativeAllocator.KeepFreedMemory())
        throw new InvalidOperationException("The allocator setting is not available on this system.");
    var ml = new MLContext(seed: 1);
    var trainRows = FashionMnist.Read(FashionMnistSplit.Train, rows);
    var testRows = FashionMnist.Read(FashionMnistSplit.Test);
    var options = new CnnClassifierOptions { ImageHeight = 28, ImageWidth = 28, Epochs = epochs, BatchSize = 128, Device = TorchDeviceKind.Cpu };

    // 1. The ML.NET pipeline: reading the IDataView, training, ONNX export and wrapping included.
    var train = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(trainRows));
    var keyedTrain = train.Transform(ml.Data.LoadFromEnumerable(trainRows));
    var clock = Stopwatch.StartNew();
    var model = ml.Transforms.DeepVariants.CnnClassifier(options).Fit(keyedTrain);
    double pipelineSeconds = clock.Elapsed.TotalSeconds;

    var keyedTest = train.Transform(ml.Data.LoadFromEnumerable(testRows));
    var scored = model.Transform(keyedTest);
    clock.Restart();
    int scoredRows = 0;
    using (var cursor = scored.GetRowCursor([scored.Schema["Score"]]))
    {
        var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
        VBuffer<float> score = default;
        while (cursor.MoveNext())
        {
            getter(ref score);
            scoredRows++;
        }
    }
    double transformRate = scoredRows / clock.Elapsed.TotalSeconds;
    double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;

    // 2. A plain TorchSharp loop over the same network, data and optimizer, as a TorchSharp user writes it.
    random.manual_seed(1);
    using var network = CnnNetwork.Create(options.Architecture, 1, 28, 28, FashionMnist.ClassNames.Count);
    var classIndex = FashionMnist.ClassNames.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (long)p.i);
    using var x = tensor(trainRows.SelectMany(r => r.Features).ToArray(), [trainRows.Count, 1, 28, 28]);
    using var y = tensor(trainRows.Select(r => classIndex[r.Label]).ToArray());
    using var optimizer = optim.Adam(network.parameters(), options.LearningRate);
    clock.Restart();
    for (int epoch = 0; epoch < epochs; epoch++)
    {
        network.train();
        using var order = randperm(trainRows.Count);
        for (long start = 0; start < trainRows.Count; start += options.BatchSize)
        {
            using var scope = NewDisposeScope();
            var index = order.narrow(0, start, Math.Min(options.BatchSize, trainRows.Count - start));
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(network.call(x.index_select(0, index)), y.index_select(0, index));
            loss.backward();
            optimizer.step();
            loss.item<float>();
        }
    }
    double plainSeconds = clock.Elapsed.TotalSeconds;

    network.eval();
    using var testX = tensor(testRows.SelectMany(r => r.Features).ToArray(), [testRows.Count, 1, 28, 28]);
    clock.Restart();
    using (no_grad())
        for (long start = 0; start < testRows.Count; start += 1000)
        {
            using var scope = NewDisposeScope();
            network.call(testX.narrow(0, start, Math.Min(1000, testRows.Count - start))).softmax(1).data<float>().ToArray();
        }
    double torchRate = testRows.Count / clock.Elapsed.TotalSeconds;

    var result = new Result(setting, trainRows.Count, pipelineSeconds / epochs, plainSeconds / epochs, transformRate, torchRate, accuracy, Microsoft.ML.DeepVariants.Benchmarks.ProcessMemory.PeakMegabytes());
    Console.WriteLine(JsonSerializer.Serialize(result));
    return 0;
}

static string F(double value, string format = "F2") => value.ToString(format, CultureInfo.InvariantCulture);

static string RuntimeInformationText() => System.Runtime.InteropServices.RuntimeInformation.OSDescription + ", .NET " + Environment.Version;

sealed record Result(string Allocator, int TrainRows, double PipelineSecondsPerEpoch, double PlainSecondsPerEpoch,
    double TransformImagesPerSecond, double TorchImagesPerSecond, double PipelineAccuracy, double PeakMegabytes);

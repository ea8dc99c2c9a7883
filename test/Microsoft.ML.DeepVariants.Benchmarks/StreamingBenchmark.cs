using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Streaming against in-memory training, side by side, each in a child process of its own (so peak memory is its own):
/// the full Fashion-MNIST in memory, streamed from the same in-memory data view (which cannot shuffle: the shuffle
/// buffer alone randomises), and streamed from ML.NET's binary .idv file on disk (block shuffling plus the buffer);
/// then a folder of 20,000 PNG files decoded batch by batch (LoadImages, ResizeImages, pixels) while training.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- streaming
/// </summary>
internal static class StreamingBenchmark
{
    private static readonly string Work = Path.Combine(Path.GetTempPath(), "deepvariants-streaming");

    private sealed record Result(string Mode, long Rows, int Epochs, double SecondsPerEpoch, double FitSeconds, double TestAccuracy, double PeakMegabytes, int Seed = 1);

    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/streaming.md" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 3, Description = "Epochs for the Fashion-MNIST runs." };
        var images = new Option<int>("--images") { DefaultValueFactory = _ => 20_000, Description = "PNG files in the image folder." };
        var seeds = new Option<int>("--seeds") { DefaultValueFactory = _ => 3, Description = "Seeds per Fashion-MNIST mode (1, 2, ...); accuracies are compared as means, since one seed's order of batches moves accuracy by tenths of a point." };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1, Hidden = true };
        var mode = new Option<string?>("--mode") { Description = "Internal: measure one mode and print JSON.", Hidden = true };
        var command = new System.CommandLine.Command("streaming", "Streamed against in-memory training; an image folder decoded on the fly.") { report, epochs, images, seeds, seed, mode };
        command.SetAction(r => r.GetValue(mode) is { } one
            ? Measure(one, r.GetValue(epochs), r.GetValue(images), r.GetValue(seed))
            : Orchestrate(r.GetValue(report)!, r.GetValue(epochs), r.GetValue(images), r.GetValue(seeds)));
        return command;
    }

    private static int Orchestrate(string reportPath, int epochs, int images, int seeds)
    {
        Prepare(images);
        var results = new List<Result>();
        // Seeds outermost, so that a change in the machine's speed during the run falls on every mode alike.
        var runs = Enumerable.Range(1, seeds).SelectMany(s => new[] { "in-memory", "streamed-view", "streamed-idv" }.Select(m => (Mode: m, Seed: s)))
            .Append(("png-folder", 1));
        foreach (var (mode, seed) in runs)
        {
            AnsiConsole.MarkupLine($"Measuring [bold]{mode}[/], seed {seed} ...");
            var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
            foreach (string arg in new[] { "streaming", "--mode", mode, "--epochs", epochs.ToString(CultureInfo.InvariantCulture), "--images", images.ToString(CultureInfo.InvariantCulture),
                "--seed", seed.ToString(CultureInfo.InvariantCulture) })
                start.ArgumentList.Add(arg);
            using var child = Process.Start(start)!;
            string output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            if (child.ExitCode != 0)
                throw new InvalidOperationException($"The '{mode}' measurement failed with exit code {child.ExitCode}:\n{output}");
            var result = JsonSerializer.Deserialize<Result>(output.Split('\n').Last(l => l.StartsWith('{')))!;
            results.Add(result);
            AnsiConsole.WriteLine($"{mode}: {result.SecondsPerEpoch:F1} s/epoch, {result.TestAccuracy:P2}, peak {result.PeakMegabytes:F0} MiB");
        }

        var byMode = results.Where(r => r.Mode != "png-folder").GroupBy(r => r.Mode).ToList();
        double memorySeconds = byMode[0].Average(r => r.SecondsPerEpoch), memoryAccuracy = byMode[0].Average(r => r.TestAccuracy);
        var lines = new List<string>
        {
            "# Streaming against in-memory training",
            "",
            $"Machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}. Each row ran in a child process of its own; peak RSS is that process's.",
            $"Network: the default LeNet (2 blocks from 32 channels, hidden 128), Adam 1e-3, batch 128, {epochs} epochs on the 60,000 Fashion-MNIST training images; test accuracy on the 10,000 test images.",
            $"Seeds 1 to {seeds} for each mode, run in turn (seed 1 of every mode, then seed 2, ...); the figures are means over the seeds, the accuracy of each seed in brackets.",
            "Streaming: a background reader fills batches from the data view's cursor, 4 batches ahead, through a shuffle buffer sized by memory (256 MB: here the whole training set; for the 64x64 RGB images of the streaming test, 5,461 rows).",
            $"Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- streaming --seeds {seeds}`",
            "",
            "| data | rows | seconds per epoch | ratio to in memory (target <= 1.15) | fit seconds (reading included) | test accuracy (per seed) | difference (target within 0.3 points) | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|",
        };
        foreach (var group in byMode)
        {
            double seconds = group.Average(r => r.SecondsPerEpoch), accuracy = group.Average(r => r.TestAccuracy);
            lines.Add($"| {Describe(group.Key)} | {group.First().Rows:N0} | {seconds:F1} | {seconds / memorySeconds:F3} | {group.Average(r => r.FitSeconds):F1} | " +
                $"{accuracy * 100:F2} % ({string.Join(", ", group.Select(r => $"{r.TestAccuracy * 100:F2}"))}) | {(accuracy - memoryAccuracy) * 100:+0.00;-0.00;0.00} | {group.Max(r => r.PeakMegabytes):F0} |");
        }
        var folder = results.Single(r => r.Mode == "png-folder");
        lines.Add("");
        lines.Add("## A folder of PNG files, decoded while training");
        lines.Add("");
        lines.Add($"{folder.Rows:N0} Fashion-MNIST training images written as 28x28 grayscale PNG files, one folder per class, read with `LoadImages` and `ResizeImages`; " +
            "the CNN's own pixel extraction turns them into tensors batch by batch (DataLoading = Streaming), so no image is held in memory beyond its batch. " +
            "Test accuracy on 2,000 test images from PNG files the same way.");
        lines.Add("");
        lines.Add("| images | epochs | seconds per epoch | images per second (decoding and training) | test accuracy | peak RSS MiB |");
        lines.Add("|---|---|---|---|---|---|");
        lines.Add($"| {folder.Rows:N0} | {folder.Epochs} | {folder.SecondsPerEpoch:F1} | {folder.Rows / folder.SecondsPerEpoch:F0} | {folder.TestAccuracy * 100:F2} % | {folder.PeakMegabytes:F0} |");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        AnsiConsole.WriteLine(string.Join("\n", lines));
        return 0;
    }

    private static string Describe(string mode) => mode switch
    {
        "in-memory" => "in memory (read once into native tensors)",
        "streamed-view" => "streamed from the in-memory data view (no cursor shuffle: buffer only)",
        _ => "streamed from a binary .idv file on disk (block shuffle + buffer)",
    };

    // The .idv file of the keyed training set, and the PNG folders, written once.
    private static void Prepare(int images)
    {
        Directory.CreateDirectory(Work);
        var ml = new MLContext(seed: 1);
        string idv = Path.Combine(Work, "fashion-train.idv");
        if (!File.Exists(idv))
        {
            using var stream = File.Create(idv + ".tmp");
            ml.Data.SaveAsBinary(Keyed(ml, FashionMnist.Load(ml, FashionMnistSplit.Train)), stream, keepHidden: false);
            stream.Close();
            File.Move(idv + ".tmp", idv, overwrite: true);
        }
        foreach (var (split, count, name) in new[] { (FashionMnistSplit.Train, images, "train"), (FashionMnistSplit.Test, 2000, "test") })
        {
            string folder = Path.Combine(Work, $"png-{name}-{count}");
            if (Directory.Exists(folder))
                continue;
            AnsiConsole.MarkupLine($"Writing {count:N0} PNG files to {folder} ...");
            int i = 0;
            foreach (var row in FashionMnist.Read(split, maxRows: count))
                FashionMnist.SavePng(row, Path.Combine(folder + ".tmp", row.Label, $"{i++}.png"));
            Directory.Move(folder + ".tmp", folder);
        }
    }

    private static int Measure(string mode, int epochs, int images, int seed)
    {
        NativeAllocator.KeepFreedMemory();
        var ml = new MLContext(seed: seed);
        var options = new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = mode == "png-folder" ? 1 : epochs, BatchSize = 128, Device = TorchDeviceKind.Cpu,
            DataLoading = mode == "in-memory" ? DataLoadingMode.InMemory : DataLoadingMode.Streaming,
        };
        IDataView train, test;
        if (mode == "png-folder")
        {
            (train, test) = (Images(ml, $"png-train-{images}"), Images(ml, "png-test-2000"));
            options.FeatureColumnName = "Image";
        }
        else
        {
            train = mode == "streamed-idv"
                ? ml.Data.LoadFromBinary(Path.Combine(Work, "fashion-train.idv"))
                : Keyed(ml, FashionMnist.Load(ml, FashionMnistSplit.Train));
            test = Keyed(ml, FashionMnist.Load(ml, FashionMnistSplit.Test));
        }
        var clock = Stopwatch.StartNew();
        var result = ml.Transforms.DeepVariants.CnnClassifier(options).Train(train);
        double fitSeconds = clock.Elapsed.TotalSeconds;
        double accuracy = ml.MulticlassClassification.Evaluate(result.Model.Transform(test)).MicroAccuracy;
        double perEpoch = result.History.Epochs[^1].Elapsed.TotalSeconds / result.History.Epochs.Count;
        long rows = mode == "png-folder" ? images : 60_000;
        Console.WriteLine(JsonSerializer.Serialize(new Result(mode, rows, options.Epochs, perEpoch, fitSeconds, accuracy, ProcessMemory.PeakMegabytes(), seed)));
        return 0;
    }

    // Image files listed per class folder, loaded and resized by ML.NET's image transforms, the label keyed in a fixed class order.
    private static IDataView Images(MLContext ml, string folder)
    {
        string root = Path.Combine(Work, folder);
        var files = Directory.GetDirectories(root).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).Select(f => new ImageFile { Path = f, Label = Path.GetFileName(d) })).ToList();
        // A seeded shuffle of the listing: the shuffle buffer alone could not mix a list sorted by class.
        files = files.Select((file, i) => (file, order: StableSeed.Mix(1, i))).OrderBy(p => p.order).Select(p => p.file).ToList();
        var listed = ml.Data.LoadFromEnumerable(files);
        var images = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "Path")
            .Append(ml.Transforms.ResizeImages("Image", 28, 28));
        return Keyed(ml, images.Fit(listed).Transform(listed));
    }

    private static IDataView Keyed(MLContext ml, IDataView data)
    {
        var classOrder = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: classOrder).Fit(data).Transform(data);
    }

    private sealed class ImageFile
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

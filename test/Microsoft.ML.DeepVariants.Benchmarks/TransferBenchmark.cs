using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.Transforms.Image;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Transfer learning from the ImageNet-pretrained ResNet18 (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18):
/// featurization throughput at 224 x 224 against ML.NET's DnnFeaturizeImage on the same images in the same run,
/// then the frozen linear probe and last-block fine-tuning on a larger Fashion-MNIST slice at a smaller resolution.
/// Images are PNG files on disk, read by ML.NET's LoadImages, ResizeImages and ExtractPixels. Then the backbone table: the
/// torchvision families as PyTorch's exporter writes them at full size (eng/onnx-fixtures.py --full, random weights): whether
/// each imports, its difference from ONNX Runtime, its parameters, featurizer throughput batched against ML.NET's
/// ApplyOnnxModel one row at a time, and fine-tuning seconds per epoch.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- transfer
/// </summary>
internal static class TransferBenchmark
{
    private const double ResNet18Gflops = 1.82; // one forward pass at 224 x 224

    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/transfer.md" };
        var speedImages = new Option<int>("--speed-images") { DefaultValueFactory = _ => 400 };
        var trainRows = new Option<int>("--train-rows") { DefaultValueFactory = _ => 5000 };
        var size = new Option<int>("--size") { Description = "Image size for the probe and fine-tuning.", DefaultValueFactory = _ => 64 };
        var command = new System.CommandLine.Command("transfer", "ResNet18 transfer learning: throughput, linear probe, fine-tuning.") { report, speedImages, trainRows, size };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(speedImages), r.GetValue(trainRows), r.GetValue(size)));
        return command;
    }

    private static int Execute(string reportPath, int speedImages, int trainRows, int size)
    {
        // No NativeAllocator.KeepFreedMemory() here: with glibc's mmap turned off, fine-tuning ResNet18's large weight
        // tensors fragmented the heap until the process ran out of memory (24 GB) on this machine.
        var ml = new MLContext(seed: 1);
        string folder = Path.Combine(Path.GetTempPath(), "deepvariants-transfer-png");
        var trainFiles = WritePngs(folder, FashionMnistSplit.Train, trainRows);
        var testFiles = WritePngs(folder, FashionMnistSplit.Test, 1000);

        // Throughput at 224 x 224, the size both featurizers are built for; pixels are extracted (and cached) before the clock starts.
        var pixels224 = ml.Data.Cache(Pixels(ml, testFiles.Take(speedImages).ToArray(), 224));
        _ = pixels224.GetColumn<float[]>("Pixels").Count();
        double Throughput(IEstimator<ITransformer> featurizer, string column)
        {
            var model = featurizer.Fit(pixels224);
            _ = model.Transform(ml.Data.TakeRows(pixels224, 8)).GetColumn<float[]>(column).Count(); // warm-up
            var clock = Stopwatch.StartNew();
            long rows = model.Transform(pixels224).GetColumn<float[]>(column).LongCount();
            return rows / clock.Elapsed.TotalSeconds;
        }
        AnsiConsole.MarkupLine("Throughput: ML.NET DnnFeaturizeImage ...");
        double dnn = Throughput(ml.Transforms.DnnFeaturizeImage("Embedding", m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"), "Embedding");
        AnsiConsole.MarkupLine("Throughput: PretrainedFeaturizer (batches of 32) ...");
        double ours = Throughput(ml.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(PretrainedBackboneOptions.ResNet18()) { BatchSize = 32 }), "Embedding");
        AnsiConsole.WriteLine($"DnnFeaturizeImage {dnn:F1} img/s, PretrainedFeaturizer {ours:F1} img/s, ratio {ours / dnn:F2}");

        // Probe and fine-tuning at a smaller size (ResNet18 pools globally, so it takes any size).
        var train = ml.Data.Cache(Pixels(ml, trainFiles, size));
        var test = ml.Data.Cache(Pixels(ml, testFiles, size));
        var backbone = PretrainedBackboneOptions.ResNet18();
        backbone.ImageHeight = backbone.ImageWidth = size;
        var clock = Stopwatch.StartNew();
        var probe = ml.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(backbone))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"))
            .Fit(train);
        double probeAccuracy = ml.MulticlassClassification.Evaluate(probe.Transform(test)).MicroAccuracy;
        double probeSeconds = clock.Elapsed.TotalSeconds;
        AnsiConsole.WriteLine($"probe: {probeAccuracy:P2} in {probeSeconds:F0} s");

        var runs = new List<string>();
        foreach (var (name, training, blocks) in new[] { ("last block", BackboneTraining.LastBlocks, 1), ("last two blocks", BackboneTraining.LastBlocks, 2) })
        {
            clock.Restart();
            var peaks = new List<double>();
            double epochPeak = 0;
            var result = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
            {
                Backbone = backbone, Training = training, TrainableBlocks = blocks, BackboneLearningRateFactor = 1, Epochs = 8, BatchSize = 32,
                LearningRate = 3e-4f, Schedule = LearningRateSchedule.Cosine, Device = TorchDeviceKind.Cpu,
                Progress = new Inline(p =>
                {
                    epochPeak = Math.Max(epochPeak, ResidentMegabytes());
                    if (p.IsEpochEnd)
                        (peaks, epochPeak) = ([.. peaks, epochPeak], 0);
                }),
            }).Train(train);
            double accuracy = ml.MulticlassClassification.Evaluate(result.Model.Transform(test)).MicroAccuracy;
            runs.Add($"| fine-tuned: {name} | {result.TrainableParameters:N0} | 8 epochs, AdamW 3e-4 (no decay), cosine | {clock.Elapsed.TotalSeconds:F0} | {accuracy * 100:F2} % | " +
                $"{peaks[0]:F0} / {peaks[2]:F0} / {peaks[^1]:F0} |");
            AnsiConsole.WriteLine(runs[^1]);
        }
        var families = BackboneTable();

        // FLOP per cycle per core: two FMA pipes of 512 bits (16 floats) with AVX-512, of 256 bits (8 floats) with AVX2; an FMA counts two.
        int flopsPerCycle = System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? 64 : 32;
        double peak = Environment.ProcessorCount * 2.6 * flopsPerCycle;
        var lines = new List<string>
        {
            "# Transfer learning from ResNet18 (ONNX)",
            "",
            "The ImageNet-pretrained ResNet18 of the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1, imported into TorchSharp or",
            "cut and served with ONNX Runtime. Images: Fashion-MNIST written as PNG files, read with LoadImages, ResizeImages and ExtractPixels",
            $"(grayscale copied to three channels). {Environment.ProcessorCount} CPU cores ({(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "AVX-512" : "AVX2, no AVX-512")}).",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- transfer`",
            "",
            "## Featurization throughput at 224 x 224",
            "",
            $"{speedImages} images, the same pixels for both, in one run; ResNet18 is {ResNet18Gflops} GFLOPs a forward pass.",
            "",
            "| featurizer | images/s | GFLOP/s | share of peak |",
            "|---|---|---|---|",
            $"| ML.NET DnnFeaturizeImage (ResNet18, one row at a time) | {dnn:F1} | {dnn * ResNet18Gflops:F0} | {dnn * ResNet18Gflops / peak:P0} |",
            $"| PretrainedFeaturizer (batches of 32, ONNX Runtime) | {ours:F1} | {ours * ResNet18Gflops:F0} | {ours * ResNet18Gflops / peak:P0} |",
            "",
            $"Ratio: {ours / dnn:F2} (target at least 1.5). Peak: {Environment.ProcessorCount} cores x 2.6 GHz x {flopsPerCycle} FLOP per cycle = {peak:F0} GFLOP/s.",
            "",
            $"## Linear probe and fine-tuning at {size} x {size}",
            "",
            $"{trainRows:N0} training and 1,000 test images. ResNet18's final average pooling covers the whole map at 224 pixels, so the import",
            "and the exported graphs pool globally and take any size. The frozen part of the backbone runs once per image; fine-tuning trains the rest.",
            "",
            "| model | trained weights | training | seconds | test accuracy | peak RSS MiB in epochs 1 / 3 / 8 |",
            "|---|---|---|---|---|---|",
            $"| frozen probe: LbfgsMaximumEntropy on the 512-value embedding | 5,130 | L-BFGS | {probeSeconds:F0} | {probeAccuracy * 100:F2} % | |",
        };
        lines.AddRange(runs);
        lines.Add("");
        lines.Add("Fine-tuning the last two blocks once grew the process past 23 GB: glibc kept the freed tensor buffers (about 50 MB a step) while the live");
        lines.Add("tensors stayed constant. The trainer now hands freed memory back when resident memory grows (NativeAllocator), so it stays flat.");
        lines.AddRange(families);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        AnsiConsole.WriteLine(string.Join("\n", lines));
        return 0;
    }

    // The torchvision families at full size: import, parity, parameters, throughput, fine-tuning seconds per epoch.
    private static List<string> BackboneTable()
    {
        string folder = Path.GetFullPath(Path.Combine("artifacts", "onnx-full"));
        if (!File.Exists(Path.Combine(folder, "manifest.json")))
        {
            AnsiConsole.MarkupLine($"Writing the full-size graphs to {folder} ...");
            var make = Process.Start(new ProcessStartInfo("/usr/bin/python3", $"eng/onnx-fixtures.py --out \"{folder}\" --full --opsets 17"))!;
            make.WaitForExit();
            if (make.ExitCode != 0)
                throw new InvalidOperationException("eng/onnx-fixtures.py --full failed; it needs Debian's python3-torch and python3-torchvision (eng/onnx-fixtures.sh installs them).");
        }
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "manifest.json")));
        var ml = new MLContext(seed: 1);
        var lines = new List<string>
        {
            "",
            "## The torchvision families as PyTorch exports them",
            "",
            "Random weights (fixed seed), 10 classes, exported by PyTorch 1.13 at opset 17 with a dynamic batch (`python3 eng/onnx-fixtures.py --out artifacts/onnx-full --full`),",
            "at 224 x 224 (Inception v3 at 299). Difference: the largest gap between the import's output and ONNX Runtime's on two random images, over the",
            "largest output. Throughput: 32 images through the whole graph, ML.NET's ApplyOnnxModel one row at a time against PretrainedFeaturizer in",
            "batches of 32 (both ONNX Runtime). Fine-tuning: the last block and a new head on 128 images, seconds per epoch (the frozen part computed once before).",
            "",
            "| family | imports | difference from ONNX Runtime | parameters | ApplyOnnxModel img/s | PretrainedFeaturizer img/s | ratio | fine-tuning s/epoch |",
            "|---|---|---|---|---|---|---|---|",
        };
        foreach (var graph in manifest.RootElement.GetProperty("graphs").EnumerateArray().Where(g => g.GetProperty("family").GetString() != "operators"))
        {
            string family = graph.GetProperty("family").GetString()!, file = Path.Combine(folder, graph.GetProperty("file").GetString()!);
            int size = graph.GetProperty("size").GetInt32();
            AnsiConsole.MarkupLine($"Backbone [bold]{family}[/] ...");
            byte[] onnx = File.ReadAllBytes(file);
            string row;
            try
            {
                row = BackboneRow(ml, family, onnx, file, size);
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException or ArgumentException)
            {
                row = $"| {family} | no: {e.Message.Split('\n')[0]} | | | | | | |";
            }
            lines.Add(row);
            AnsiConsole.WriteLine(row);
        }
        return lines;
    }

    private static string BackboneRow(MLContext ml, string family, byte[] onnx, string file, int size)
    {
        // Parity on two random images.
        var random = new Random(1);
        float[] input = Enumerable.Range(0, 2 * 3 * size * size).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        double gap;
        long parameters;
        using (var imported = OnnxImporter.Import(onnx, source: file))
        using (var session = new InferenceSession(onnx))
        {
            parameters = imported.parameters().Sum(p => p.numel());
            float[] ours;
            using (TorchSharp.torch.no_grad())
            using (var scope = TorchSharp.torch.NewDisposeScope())
                ours = imported.call(TorchSharp.torch.tensor(input, [2, 3, size, size])).contiguous().data<float>().ToArray();
            using var value = OrtValue.CreateTensorValueFromMemory(input, [2, 3, size, size]);
            using var run = new RunOptions();
            using var outputs = session.Run(run, new Dictionary<string, OrtValue> { ["input"] = value }, [session.OutputNames[0]]);
            float[] runtime = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            gap = ours.Zip(runtime, (a, b) => Math.Abs(a - b)).Max() / Math.Max(1e-12, runtime.Max(Math.Abs));
        }

        // Throughput: the same 32 images through ApplyOnnxModel (one row at a time) and through PretrainedFeaturizer (batched).
        var images = Enumerable.Range(0, 32).Select(i => new Pixels224 { Pixels = Enumerable.Range(0, 3 * size * size).Select(_ => (float)random.NextDouble()).ToArray() }).ToList();
        var definition = SchemaDefinition.Create(typeof(Pixels224));
        definition[nameof(Pixels224.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        var data = ml.Data.Cache(ml.Data.LoadFromEnumerable(images, definition));
        var plain = ml.Transforms.CopyColumns("input", "Pixels").Append(ml.Transforms.ApplyOnnxModel(["output"], ["input"], file)).Fit(data);
        double plainRate = Rate(() => plain.Transform(data).GetColumn<float[]>("output").Count(), 32);
        var backbone = PretrainedBackboneOptions.FromClassifier(file);
        backbone.ImageHeight = backbone.ImageWidth = size;
        var featurizer = ml.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(backbone) { BatchSize = 32 }).Fit(data);
        double batchedRate = Rate(() => featurizer.Transform(data).GetColumn<float[]>("Embedding").Count(), 32);

        // Fine-tuning the last block with a new head on 128 labelled images.
        var labelled = Enumerable.Range(0, 128).Select(i => new LabelledPixels { Pixels = images[i % 32].Pixels, Label = (i % 10).ToString(CultureInfo.InvariantCulture) }).ToList();
        var labelledDefinition = SchemaDefinition.Create(typeof(LabelledPixels));
        labelledDefinition[nameof(LabelledPixels.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        var result = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
        {
            Backbone = backbone, Training = BackboneTraining.LastBlocks, TrainableBlocks = 1, Head = PretrainedHead.Replace, Epochs = 2, BatchSize = 32,
            Device = TorchDeviceKind.Cpu,
        }).Train(ml.Data.LoadFromEnumerable(labelled, labelledDefinition));
        double perEpoch = (result.History.Epochs[1].Elapsed - result.History.Epochs[0].Elapsed).TotalSeconds;
        return $"| {family} | yes | {gap:E1} | {parameters:N0} | {plainRate:F1} | {batchedRate:F1} | {batchedRate / plainRate:F2} | {perEpoch:F1} |";
    }

    private static double Rate(Func<int> run, int rows)
    {
        run(); // warm-up
        var clock = Stopwatch.StartNew();
        run();
        return rows / clock.Elapsed.TotalSeconds;
    }

    internal static double ResidentMegabytes() =>
        double.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(':')[1].Trim().Split(' ')[0],
            CultureInfo.InvariantCulture) / 1024;

    internal sealed class Inline(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    private sealed class Pixels224
    {
        public float[] Pixels { get; set; } = [];
    }

    private sealed class LabelledPixels
    {
        public float[] Pixels { get; set; } = [];
        public string Label { get; set; } = "";
    }

    internal static string[] WritePngs(string folder, FashionMnistSplit split, int count) =>
        FashionMnist.Read(split, maxRows: count).Select((row, i) =>
        {
            // The class index names the file: some class names hold a slash.
            string path = Path.Combine(folder, split.ToString(), $"{i:D5}_{FashionMnist.ClassNames.ToList().IndexOf(row.Label)}.png");
            FashionMnist.SavePng(row, path);
            return path;
        }).ToArray();

    internal static IDataView Pixels(MLContext ml, string[] paths, int size)
    {
        var rows = ml.Data.LoadFromEnumerable(paths.Select(p => new ImageFile
            { Path = p, Label = FashionMnist.ClassNames[int.Parse(Path.GetFileNameWithoutExtension(p).Split('_')[1])] }).ToList());
        var keys = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys)
            .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "Path"))
            .Append(ml.Transforms.ResizeImages("Image", size, size))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", ImagePixelExtractingEstimator.ColorBits.Rgb, interleavePixelColors: false))
            .Fit(rows).Transform(rows);
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

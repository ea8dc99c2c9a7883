using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class TransferLearningTests
{
    private const int Size = 64; // ResNet18 pools globally, so 64 x 64 images keep the tests quick on two cores
    public TestContext TestContext { get; set; } = null!;

    // Real PNG files on disk, written once: 1,000 training and 300 test images of Fashion-MNIST.
    private static readonly Lazy<(string[] Train, string[] Test)> Files = new(() =>
    {
        string folder = Path.Combine(Path.GetTempPath(), "deepvariants-fashion-png");
        string[] Write(FashionMnistSplit split, int count) => FashionMnist.Read(split, maxRows: count).Select((row, i) =>
        {
            // The class index names the file: some class names hold a slash.
            string path = Path.Combine(folder, split.ToString(), $"{i:D5}_{FashionMnist.ClassNames.ToList().IndexOf(row.Label)}.png");
            FashionMnist.SavePng(row, path);
            return path;
        }).ToArray();
        return (Write(FashionMnistSplit.Train, 1000), Write(FashionMnistSplit.Test, 300));
    });

    private static IDataView Pixels(MLContext ml, string[] paths)
    {
        var rows = ml.Data.LoadFromEnumerable(paths.Select(p => new ImageFile { Path = p, Label = FashionMnist.ClassNames[int.Parse(Path.GetFileNameWithoutExtension(p).Split('_')[1])] }).ToList());
        var keys = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ImageFile { Label = n })).Transform(ml, "Label");
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys)
            .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "Path"))
            .Append(ml.Transforms.ResizeImages("Image", Size, Size))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", ImagePixelExtractingEstimator.ColorBits.Rgb, interleavePixelColors: false))
            .Fit(rows).Transform(rows);
    }

    [TestMethod]
    public void FineTuningTheLastTwoBlocksKeepsResidentMemoryFlatAcrossEpochs()
    {
        // Fine-tuning ResNet18's last two blocks once grew resident memory by about 50 MB a step: freed buffers that glibc
        // kept. The trainer now hands them back when memory grows; without that, two more epochs here add about 1.3 GB.
        var ml = new MLContext(seed: 1);
        var pixels = Pixels(ml, Files.Value.Train.Take(400).ToArray());
        var peaks = new List<double>();
        var ends = new List<double>();
        double peak = 0;
        var options = new PretrainedClassifierOptions
        {
            Backbone = Backbone(), Training = BackboneTraining.LastBlocks, TrainableBlocks = 2, Epochs = 3, BatchSize = 32, Device = TorchDeviceKind.Cpu,
            Progress = new InlineProgress(p =>
            {
                double resident = ResidentMegabytes();
                peak = Math.Max(peak, resident);
                if (p.IsEpochEnd)
                {
                    // The end-of-epoch event comes after the trainer's epoch-end release, as the memory target measures it.
                    ends.Add(resident);
                    peaks.Add(peak);
                    peak = 0;
                }
            }),
        };
        ml.Transforms.DeepVariants.PretrainedClassifier(options).Fit(pixels);
        TestContext.WriteLine($"resident memory at each epoch's end: {string.Join(", ", ends.Select(e => $"{e:F0} MB"))}; " +
            $"largest within each epoch: {string.Join(", ", peaks.Select(p => $"{p:F0} MB"))}");
        Assert.HasCount(3, ends);
        Assert.IsLessThanOrEqualTo(ends[1] * 1.05, ends[2], "resident memory at the end of epoch 3 is within 5% of epoch 2's");
        // Within an epoch the release policy lets memory grow by 128 MB and 10% (and a step) before it hands memory back, so peaks may
        // differ by that much (a clean clone's runs gave 1,134 / 1,214 / 1,195 and 1,371 / 1,359 / 1,449 MB); the
        // regression this guards against added about 650 MB an epoch.
        Assert.IsLessThanOrEqualTo(peaks[1] * 1.1 + 192, peaks[2], "epoch 3's peak is within the release policy's slack (and a step's growth) of epoch 2's");
    }

    private static double ResidentMegabytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return double.Parse(line.Split(':')[1].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024;
    }

    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    private static PretrainedBackboneOptions Backbone()
    {
        var options = PretrainedBackboneOptions.ResNet18();
        options.ImageHeight = options.ImageWidth = Size;
        return options;
    }

    [TestMethod]
    public void FrozenResNet18ProbeLearnsFashionMnistAndFineTuningTheLastBlockDoesBetter()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.Cache(Pixels(ml, Files.Value.Train));
        var test = ml.Data.Cache(Pixels(ml, Files.Value.Test));

        // A linear probe: ML.NET's maximum-entropy classifier on the frozen embeddings.
        var probe = ml.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(Backbone()))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"))
            .Fit(train);
        double probeAccuracy = ml.MulticlassClassification.Evaluate(probe.Transform(test)).MicroAccuracy;

        var fineTuned = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
        {
            Backbone = Backbone(), Training = BackboneTraining.LastBlocks, TrainableBlocks = 1, BackboneLearningRateFactor = 1,
            Epochs = 8, BatchSize = 32, LearningRate = 3e-4f, Device = TorchDeviceKind.Cpu,
        }).Train(train);
        double fineTunedAccuracy = ml.MulticlassClassification.Evaluate(fineTuned.Model.Transform(test)).MicroAccuracy;

        TestContext.WriteLine($"{Size}x{Size}: frozen probe {probeAccuracy:P2}; last block fine-tuned ({fineTuned.TrainableParameters:N0} weights, nodes {string.Join(", ", fineTuned.TrainableNodes)}) {fineTunedAccuracy:P2}");
        Assert.IsGreaterThan(0.70, probeAccuracy, $"probe {probeAccuracy:P2}");
        Assert.IsGreaterThan(probeAccuracy, fineTunedAccuracy, $"fine-tuned {fineTunedAccuracy:P2} vs probe {probeAccuracy:P2}");
        Assert.AreEqual(2, fineTuned.TrainableNodes.Count(n => n.StartsWith("Convolution", StringComparison.Ordinal)), "the last block has two convolutions");
        Assert.AreEqual(2, fineTuned.TrainableNodes.Count(n => n.StartsWith("BatchNormalization", StringComparison.Ordinal)));

        // Both persist as plain ML.NET models and predict the same after loading.
        foreach (var (name, model) in new (string, ITransformer)[] { ("probe.zip", probe), ("finetuned.zip", fineTuned.Model) })
        {
            string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), name);
            ml.Model.Save(model, train.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            Assert.IsLessThanOrEqualTo(1e-4f, TestData.MaxAbsDifference(TestData.Scores(model.Transform(test)), TestData.Scores(loaded.Transform(test))), name);
        }
    }

    [TestMethod]
    public void BatchedFeaturizationEqualsTheSavedSingleRowModel()
    {
        var ml = new MLContext(seed: 1);
        var images = Pixels(ml, Files.Value.Test.Take(40).ToArray());
        var featurizer = ml.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(Backbone()) { BatchSize = 16 }).Fit(images);
        var batched = featurizer.Transform(images).GetColumn<float[]>("Embedding").ToArray();
        Assert.HasCount(40, batched);
        Assert.AreEqual(512, batched[0].Length);

        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), "featurizer.zip");
        ml.Model.Save(featurizer, images.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        var parts = loaded is IEnumerable<ITransformer> chain ? chain.ToList() : [loaded];
        Assert.IsTrue(parts.All(t => t.GetType().Namespace!.StartsWith("Microsoft.ML", StringComparison.Ordinal)), "the saved featurizer is ML.NET's own ONNX transformer");
        var single = loaded.Transform(images).GetColumn<float[]>("Embedding").ToArray();
        Assert.IsLessThanOrEqualTo(1e-3f, TestData.MaxAbsDifference(batched, single));

        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.PretrainedFeaturizer(
            new PretrainedFeaturizerOptions(PretrainedBackboneOptions.ResNet18())).Fit(images));
        StringAssert.Contains(e.Message, "Schema mismatch for input column 'Pixels': expected Vector<Single, 150528>");
    }

    private sealed class ImageFile
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }
}

internal static class DataViewExtensions
{
    public static IDataView Transform(this IDataView data, MLContext ml, string column) => ml.Transforms.SelectColumns(column).Fit(data).Transform(data);
}

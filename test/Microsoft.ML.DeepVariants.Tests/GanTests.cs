using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Generative;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class GanTests
{
    // Three classes that differ in shape, so a short run can learn each one's outline.
    private static readonly string[] Classes = ["Trouser", "Sneaker", "Bag"];

    public TestContext TestContext { get; set; } = null!;

    private static IDataView KeyedClasses(MLContext ml, IEnumerable<FashionMnistImage> rows) =>
        ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Data.LoadFromEnumerable(Classes.Select(c => new Name { Label = c })))
            .Fit(ml.Data.LoadFromEnumerable(rows.ToList())).Transform(ml.Data.LoadFromEnumerable(rows.ToList()));

    [TestMethod]
    public void AConditionalGansSamplesAreClassifiedAsTheirClassAndItsServedGeneratorIsTheNetwork()
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 24000).Where(r => Classes.Contains(r.Label)).ToList();
        var train = KeyedClasses(ml, rows.Take(6000));
        // About 190 steps at a higher learning rate than DCGAN's 2e-4: enough for each class's outline.
        var fit = ml.Transforms.DeepVariants.Gan(new GanOptions
        {
            ImageHeight = 28, ImageWidth = 28, ConditionColumnName = "Label", LatentSize = 32, Width = 16, Epochs = 2,
            LearningRate = 5e-4f, DiscriminatorLearningRate = 5e-4f, LabelSmoothing = 0.1f, Device = TorchDeviceKind.Cpu, Seed = 3,
        }).Train(train);
        TestContext.WriteLine(string.Join("; ", fit.Losses.Select(e => $"epoch {e.Epoch}: D {e.DiscriminatorLoss:F3}, G {e.GeneratorLoss:F3}, D accuracy {e.DiscriminatorAccuracy:F2}")));
        CollectionAssert.AreEqual(Classes, fit.ClassNames.ToArray());

        // A classifier trained on real images (held apart from the GAN's) judges the samples.
        var judge = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 2, Device = TorchDeviceKind.Cpu, Seed = 1,
        }).Fit(KeyedClasses(ml, rows.Skip(6000).Take(1000)));
        var samples = fit.Generate(ml, count: 150, seed: 5);
        CollectionAssert.AreEqual(Enumerable.Range(0, 150).Select(i => (uint)(i % 3 + 1)).ToArray(), samples.GetColumn<uint>("Label").ToArray(),
            "the classes in turn, as keys 1 to 3");
        var judged = judge.Transform(ml.Transforms.CopyColumns("Features", "Generated").Fit(samples).Transform(samples));
        var wanted = judged.GetColumn<uint>("Label").ToArray();
        var predicted = judged.GetColumn<uint>("PredictedLabel").ToArray();
        double agreement = wanted.Zip(predicted).Average(p => p.First == p.Second ? 1.0 : 0.0);
        TestContext.WriteLine($"samples classified as their conditioning class: {agreement:P1} (chance {1.0 / Classes.Length:P1})");
        Assert.IsGreaterThan(0.8, agreement, "each class's samples look like their class, well above chance (one in three)");

        // The classification accuracy score: a classifier trained on samples alone, scored on real held-out images.
        var many = fit.Generate(ml, count: 900, seed: 7);
        var test = KeyedClasses(ml, FashionMnist.Read(FashionMnistSplit.Test, maxRows: 1500).Where(r => Classes.Contains(r.Label)).Take(300));
        double cas = GenerativeMetrics.ClassificationAccuracyScore(ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 2, Device = TorchDeviceKind.Cpu, Seed = 1,
        }), ml.Transforms.CopyColumns("Features", "Generated").Fit(many).Transform(many), test);
        TestContext.WriteLine($"classification accuracy score on 300 real test images: {cas:P1}");
        Assert.IsGreaterThan(0.8, cas, "a classifier learns the three classes from the samples alone");
        Assert.Throws<ArgumentException>(() => GenerativeMetrics.ClassificationAccuracyScore(ml.Transforms.DeepVariants.CnnClassifier(28, 28), many,
            TestData.Keyed(ml, TestData.Test(ml, 50))), "ten test classes against three generated ones");

        // Same seed, same samples; another seed, others.
        var images = samples.GetColumn<float[]>("Generated").ToArray();
        Assert.AreEqual(0f, TestData.MaxAbsDifference(images, fit.Generate(ml, 150, seed: 5).GetColumn<float[]>("Generated").ToArray()));
        Assert.IsGreaterThan(0.1f, TestData.MaxAbsDifference(images, fit.Generate(ml, 150, seed: 6).GetColumn<float[]>("Generated").ToArray()));
        Assert.IsTrue(images.All(i => i.Length == 784 && i.All(v => v is >= 0 and <= 1)));

        // The served ONNX generator against the TorchSharp network, on the same latents and classes.
        var latents = samples.GetColumn<float[]>("Latent").Take(24).ToArray();
        var keys = wanted.Take(24).ToArray();
        using var networks = (GanNetworks)fit.Trained!.Restore();
        using var scope = NewDisposeScope();
        var z = tensor(latents.SelectMany(l => l).ToArray(), [latents.Length, 32]);
        var expected = networks.Served.Generate(z, tensor(keys.Select(k => (long)k - 1).ToArray())).Plus(1.0).Times(0.5);
        float parity = TestData.MaxAbsDifference(images.Take(24).ToArray(), Enumerable.Range(0, 24).Select(i => expected[i].data<float>().ToArray()).ToArray());
        TestContext.WriteLine($"served generator against the network: {parity:G3}");
        Assert.IsLessThan(1e-4f, parity);

        string folder = TestContext.TestRunResultsDirectory ?? Path.GetTempPath();
        string path = Path.Combine(folder, $"gan-{Guid.NewGuid():N}.zip");
        ml.Model.Save(fit.Model, samples.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        var again = loaded.Transform(fit.Generate(ml, 150, seed: 5)).GetColumn<float[]>("Generated").ToArray();
        Assert.AreEqual(0f, TestData.MaxAbsDifference(images, again), "Save/Load generates the same images");
        File.Delete(path);
        GenerativePlots.WriteGrid(Path.Combine(folder, "gan-conditional-samples.png"), images.Take(30).ToList(), 28, 28, columns: 3);
    }

    [TestMethod]
    public void TheStabilisedUnconditionalGanServesItsAveragedGenerator()
    {
        var ml = new MLContext(seed: 2);
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 400);
        var fit = ml.Transforms.DeepVariants.Gan(new GanOptions
        {
            ImageHeight = 28, ImageWidth = 28, LatentSize = 8, Width = 8, Epochs = 2, BatchSize = 32, Loss = GanLoss.Hinge,
            SpectralNormalization = true, GeneratorAverageDecay = 0.9f, DiscriminatorSteps = 2, Device = TorchDeviceKind.Cpu,
        }).Train(ml.Data.LoadFromEnumerable(rows));
        Assert.HasCount(2, fit.Losses);
        Assert.IsTrue(fit.Losses.All(e => double.IsFinite(e.DiscriminatorLoss) && double.IsFinite(e.GeneratorLoss)));
        Assert.IsEmpty(fit.ClassNames);
        var samples = fit.Generate(ml, count: 16, seed: 1);
        Assert.IsNull(samples.Schema.GetColumnOrNull("Label"), "no class column for an unconditional GAN");
        var images = samples.GetColumn<float[]>("Generated").ToArray();
        var latents = samples.GetColumn<float[]>("Latent").ToArray();
        using var networks = (GanNetworks)fit.Trained!.Restore();
        Assert.AreNotSame(networks.Generator, networks.Served, "the average is served");
        using var scope = NewDisposeScope();
        var expected = networks.Served.call(tensor(latents.SelectMany(l => l).ToArray(), [16, 8])).Plus(1.0).Times(0.5);
        float parity = TestData.MaxAbsDifference(images, Enumerable.Range(0, 16).Select(i => expected[i].data<float>().ToArray()).ToArray());
        var trained = networks.Generator.call(tensor(latents.SelectMany(l => l).ToArray(), [16, 8])).Plus(1.0).Times(0.5);
        float averageGap = TestData.MaxAbsDifference(images, Enumerable.Range(0, 16).Select(i => trained[i].data<float>().ToArray()).ToArray());
        TestContext.WriteLine($"served against the averaged network {parity:G3}; against the trained one {averageGap:G3}");
        Assert.IsLessThan(1e-4f, parity);
        Assert.IsGreaterThan(1e-3f, averageGap, "the served weights are the average, not the last step's");
        var path = fit.Interpolate(ml, latents[0], latents[1], steps: 5);
        Assert.IsLessThan(1e-5f, TestData.MaxAbsDifference([path[0], path[^1]], [images[0], images[1]]), "the path runs from the first latent to the second");
    }

    [TestMethod]
    public void BadGanInputsAreRefusedByNameBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 64);
        var text = ml.Data.LoadFromEnumerable(rows);
        var events = new List<TrainingProgress>();
        var progress = new Recorder(events);
        foreach (var (options, name) in new (GanOptions, string)[]
        {
            (new() { ImageHeight = 28, ImageWidth = 28, LatentSize = 0 }, "LatentSize"),
            (new() { ImageHeight = 30, ImageWidth = 30 }, "ImageHeight"),
            (new() { ImageHeight = 28, ImageWidth = 28, Depth = 3 }, "ImageHeight"),
            (new() { ImageHeight = 28, ImageWidth = 28, ConditionColumnName = "Label" }, "ConditionColumnName"),
            (new() { ImageHeight = 28, ImageWidth = 28, Loss = GanLoss.Hinge, LabelSmoothing = 0.1f }, "LabelSmoothing"),
            (new() { ImageHeight = 28, ImageWidth = 28, GeneratorAverageDecay = 1 }, "GeneratorAverageDecay"),
            (new() { ImageHeight = 28, ImageWidth = 28, FeatureColumnName = "Pixels" }, "Pixels"),
            (new() { ImageHeight = 32, ImageWidth = 32 }, "Vector<Single, 1024>"),
            (new() { ImageHeight = 28, ImageWidth = 28, EarlyStoppingPatience = 2 }, "EarlyStoppingPatience"),
            (new() { ImageHeight = 28, ImageWidth = 28, Optimizer = OptimizerKind.Sgd }, "Optimizer"),
        })
        {
            options.Progress = progress;
            var e = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.Gan(options).Fit(text));
            TestContext.WriteLine($"{name}: {e.Message}");
            StringAssert.Contains(e.Message, name);
        }
        var unscaled = ml.Data.LoadFromEnumerable(rows.Select(r => new FashionMnistImage { Features = r.Features.Select(v => v * 255).ToArray(), Label = r.Label }).ToList());
        var range = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.Gan(new GanOptions { ImageHeight = 28, ImageWidth = 28, Progress = progress }).Fit(unscaled));
        StringAssert.Contains(range.Message, "Column 'Features' has the value");
        var validation = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.Gan(new GanOptions { ImageHeight = 28, ImageWidth = 28, Progress = progress }).Train(text, text));
        StringAssert.Contains(validation.Message, "without validation data");
        Assert.IsEmpty(events, "refused before any training batch");
    }

    private sealed class Recorder(List<TrainingProgress> events) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => events.Add(value);
    }

    private sealed class Name
    {
        public string Label { get; set; } = "";
    }
}

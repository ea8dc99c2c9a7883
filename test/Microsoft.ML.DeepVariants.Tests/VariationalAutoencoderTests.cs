using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Generative;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class VariationalAutoencoderTests
{
    private static readonly string[] Clothing = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt"];

    public TestContext TestContext { get; set; } = null!;

    private static IDataView Images(MLContext ml, IEnumerable<FashionMnistImage> rows) =>
        ml.Data.LoadFromEnumerable(rows.Select(r => new Image { Features = r.Features }).ToList());

    [TestMethod]
    public void AVaeOfClothingScoresBagsAsUnusualAndItsGeneratorDecodesLikeTheModel()
    {
        var ml = new MLContext(seed: 1);
        var train = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 3000).Where(r => Clothing.Contains(r.Label)).Take(1800).ToList();
        var test = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 2000);
        var clothing = test.Where(r => Clothing.Contains(r.Label)).Take(300).ToList();
        var bags = test.Where(r => r.Label == "Bag").Take(150).ToList();
        var fit = ml.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions
        {
            LatentSize = 8, Width = 256, Epochs = 8, BatchSize = 64, LearningRate = 2e-3f, Device = TorchDeviceKind.Cpu,
        }).Train(Images(ml, train));
        var losses = fit.History.Epochs.Select(e => e.Loss).ToList();
        TestContext.WriteLine($"negative ELBO per epoch: {string.Join(", ", losses.Select(l => l.ToString("F1")))}");
        Assert.IsLessThan(losses[0] * 0.75, losses[^1], "the bound tightens as it trains");

        var clothingScores = fit.Model.Transform(Images(ml, clothing)).GetColumn<float>("Score").ToArray();
        var bagScores = fit.Model.Transform(Images(ml, bags)).GetColumn<float>("Score").ToArray();
        // The rank AUC of "bag" against held-out clothing by Score: how often a bag scores above a garment.
        double auc = bagScores.Average(b => clothingScores.Average(c => b > c ? 1.0 : b == c ? 0.5 : 0.0));
        TestContext.WriteLine($"mean Score: held-out clothing {clothingScores.Average():F1}, bags {bagScores.Average():F1}; AUC {auc:F3}");
        Assert.IsGreaterThan(0.8, auc, "a bag is unusual to a model of clothing");

        var scored = fit.Model.Transform(Images(ml, clothing.Take(20)));
        var means = scored.GetColumn<float[]>("LatentMean").ToArray();
        var reconstructions = scored.GetColumn<float[]>("Reconstruction").ToArray();
        Assert.HasCount(8, means[0]);
        Assert.HasCount(784, reconstructions[0]);
        var latents = ml.Data.LoadFromEnumerable(means.Select(m => new Latent { Value = m }).ToList());
        var decoded = fit.CreateGenerator(ml).Transform(latents).GetColumn<float[]>("Generated").ToArray();
        float gap = TestData.MaxAbsDifference(decoded, reconstructions);
        TestContext.WriteLine($"generator(latent mean) against the model's reconstruction: {gap:G3}");
        Assert.IsLessThan(1e-5f, gap, "the generator is the model's decoder");

        var samples = fit.Generate(ml, count: 16, seed: 3).GetColumn<float[]>("Generated").ToArray();
        Assert.HasCount(16, samples);
        Assert.IsTrue(samples.All(s => s.Length == 784 && s.All(v => v is >= 0 and <= 1)), "Bernoulli means are probabilities");
        Assert.IsGreaterThan(0.01, samples.Select(s => s.Average()).Max() - samples.Select(s => s.Average()).Min(), "different latents decode to different images");

        // From a garment's latent mean to a bag's: the end points are those images' reconstructions.
        var bagMean = fit.Model.Transform(Images(ml, bags.Take(1))).GetColumn<float[]>("LatentMean").First();
        var bagReconstruction = fit.Model.Transform(Images(ml, bags.Take(1))).GetColumn<float[]>("Reconstruction").First();
        var morph = fit.Interpolate(ml, means[0], bagMean, steps: 8);
        Assert.IsLessThan(1e-5f, TestData.MaxAbsDifference([morph[0], morph[^1]], [reconstructions[0], bagReconstruction]));
        string folder = TestContext.TestRunResultsDirectory ?? Path.GetTempPath();
        GenerativePlots.WriteGrid(Path.Combine(folder, "vae-samples.png"), samples, 28, 28);
        GenerativePlots.WriteGrid(Path.Combine(folder, "vae-interpolation.png"), morph, 28, 28, columns: 8);
        Assert.IsGreaterThan(1_000L, new FileInfo(Path.Combine(folder, "vae-interpolation.png")).Length);

        string path = Path.Combine(folder, $"vae-{Guid.NewGuid():N}.zip");
        ml.Model.Save(fit.Model, scored.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        var again = loaded.Transform(Images(ml, clothing.Take(20))).GetColumn<float>("Score").ToArray();
        Assert.IsLessThan(1e-4, again.Zip(clothingScores.Take(20), (a, b) => Math.Abs(a - b) / Math.Max(1, Math.Abs(b))).Max(), "Save/Load scores the same");
        File.Delete(path);
    }

    [TestMethod]
    [DataRow(VariationalAutoencoderKind.Convolutional, ReconstructionLikelihood.Bernoulli, 1f)]
    [DataRow(VariationalAutoencoderKind.Dense, ReconstructionLikelihood.Gaussian, 4f)]
    public void TheServedGraphComputesTheNetworksNegativeElbo(VariationalAutoencoderKind kind, ReconstructionLikelihood likelihood, float beta)
    {
        var ml = new MLContext(seed: 2);
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 256);
        var options = new VariationalAutoencoderOptions
        {
            Kind = kind, ImageHeight = 28, ImageWidth = 28, LatentSize = 6, Width = kind == VariationalAutoencoderKind.Dense ? 64 : 8,
            Likelihood = likelihood, Beta = beta, Epochs = 1, BatchSize = 64, Device = TorchDeviceKind.Cpu,
        };
        var fit = ml.Transforms.DeepVariants.VariationalAutoencoder(options).Train(Images(ml, rows));
        var sample = rows.Take(12).ToList();
        var scored = fit.Model.Transform(Images(ml, sample));

        using var network = (VariationalAutoencoderNetwork)fit.Trained!.Restore();
        network.eval();
        using var scope = NewDisposeScope();
        var x = tensor(sample.SelectMany(r => r.Features).ToArray(), [sample.Count, 784]);
        var output = network.call(x);
        var expectedScore = VariationalAutoencoderNetwork.NegativeElbo(output, x, 784, 6, beta, likelihood).data<float>().ToArray();
        var expectedMean = Rows(output.narrow(1, 784, 6));
        var expectedReconstruction = Rows(likelihood == ReconstructionLikelihood.Bernoulli ? output.narrow(1, 0, 784).sigmoid() : output.narrow(1, 0, 784));

        var score = scored.GetColumn<float>("Score").ToArray();
        float scoreGap = score.Zip(expectedScore, (a, b) => Math.Abs(a - b) / Math.Max(1, Math.Abs(b))).Max();
        float meanGap = TestData.MaxAbsDifference(TestData.Scores(scored, "LatentMean"), expectedMean);
        float reconstructionGap = TestData.MaxAbsDifference(TestData.Scores(scored, "Reconstruction"), expectedReconstruction);
        TestContext.WriteLine($"{kind}, {likelihood}, beta {beta}: Score {scoreGap:G3} (relative), mean {meanGap:G3}, reconstruction {reconstructionGap:G3}; Score of the first row {score[0]:F2}");
        Assert.IsLessThan(1e-4f, scoreGap);
        Assert.IsLessThan(1e-4f, meanGap);
        Assert.IsLessThan(1e-4f, reconstructionGap);
        Assert.AreEqual(VariationalAutoencoderNetwork.CountParameters(options, 784), fit.ParameterCount, "the count from the options is the built network's");
    }

    private static float[][] Rows(Tensor t) => Enumerable.Range(0, (int)t.shape[0]).Select(i => t[i].data<float>().ToArray()).ToArray();

    [TestMethod]
    public void BadVariationalAutoencoderInputsAreRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 64);
        var unscaled = ml.Data.LoadFromEnumerable(rows.Select(r => new Image { Features = r.Features.Select(v => v * 255).ToArray() }).ToList());
        var events = new List<TrainingProgress>();
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions
        {
            Epochs = 1, Device = TorchDeviceKind.Cpu, Progress = new Recorder(events),
        }).Fit(unscaled));
        StringAssert.Contains(error.Message, "Column 'Features' has the value");
        StringAssert.Contains(error.Message, "a Bernoulli likelihood reads values in [0, 1]");
        Assert.IsEmpty(events, "refused before any training batch");

        var images = Images(ml, rows);
        foreach (var (options, name) in new (VariationalAutoencoderOptions, string)[]
        {
            (new() { LatentSize = 0 }, "LatentSize"),
            (new() { Beta = -1 }, "Beta"),
            (new() { Depth = 9 }, "Depth"),
            (new() { Kind = VariationalAutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, Depth = 3 }, "ImageHeight"),
            (new() { ReconstructionColumnName = "Score" }, "ReconstructionColumnName"),
            (new() { FeatureColumnName = "Pixels" }, "Pixels"),
        })
        {
            var e = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.VariationalAutoencoder(options).Fit(images));
            TestContext.WriteLine($"{name}: {e.Message}");
            StringAssert.Contains(e.Message, name);
        }
        var wrongSize = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions
        {
            Kind = VariationalAutoencoderKind.Convolutional, ImageHeight = 32, ImageWidth = 32,
        }).Fit(images));
        StringAssert.Contains(wrongSize.Message, "Vector<Single, 1024>");
    }

    private sealed class Recorder(List<TrainingProgress> events) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => events.Add(value);
    }

    private sealed class Image
    {
        [VectorType(784)]
        public float[] Features { get; set; } = [];
    }

    private sealed class Latent
    {
        [VectorType(8)]
        [ColumnName("Latent")]
        public float[] Value { get; set; } = [];
    }
}

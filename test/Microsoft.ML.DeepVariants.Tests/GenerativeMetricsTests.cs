using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Generative;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class GenerativeMetricsTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void TheFrechetDistanceOfTwoGaussiansIsTheirClosedForm()
    {
        // N(0, I) against N(mu, 4 I) in 4 dimensions: |mu|^2 + Tr(I + 4I - 2 * 2I) = |mu|^2 + 4.
        var random = new Random(5);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        float[] mu = [1, -2, 0.5f, 0];
        var a = Enumerable.Range(0, 20_000).Select(_ => Enumerable.Range(0, 4).Select(_ => (float)Gaussian()).ToArray()).ToList();
        var b = Enumerable.Range(0, 20_000).Select(_ => Enumerable.Range(0, 4).Select(i => (float)(mu[i] + 2 * Gaussian())).ToArray()).ToList();
        double distance = GenerativeMetrics.FrechetDistance(a, b), expected = mu.Sum(m => m * m) + 4;
        TestContext.WriteLine($"Frechet distance {distance:F4}, closed form {expected:F4}; of a set with itself {GenerativeMetrics.FrechetDistance(a, a):G3}");
        // 20,000 draws estimate each variance of 4 within about 0.04 and the means within 0.015: a few tenths in all.
        Assert.AreEqual(expected, distance, 0.3);
        Assert.AreEqual(0, GenerativeMetrics.FrechetDistance(a, a), 1e-6);
        Assert.Throws<ArgumentException>(() => GenerativeMetrics.FrechetDistance(a.Take(1).ToList(), b));
        var diverged = b.Take(10).Select(v => v.ToArray()).ToList();
        diverged[7][2] = float.NaN;
        var error = Assert.Throws<ArgumentException>(() => GenerativeMetrics.FrechetDistance(a, diverged));
        StringAssert.Contains(error.Message, "Vector 7 of the second set has NaN at position 2");
    }

    [TestMethod]
    public void InAFashionFeaturizersEmbeddingRealImagesAreCloserThanVaeSamplesAndThoseCloserThanNoise()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 3000));
        var featurizer = ml.Transforms.DeepVariants.CnnFeaturizer(new CnnFeaturizerOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 2, Device = TorchDeviceKind.Cpu,
            Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Depth = 2, Width = 16, HiddenSize = 64 },
        }).Fit(train);
        var vae = ml.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions
        {
            LatentSize = 8, Width = 256, Epochs = 5, Device = TorchDeviceKind.Cpu,
        }).Train(TestData.Train(ml, 3000));
        var test = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 1000);
        var halfA = ml.Data.LoadFromEnumerable(test.Take(500));
        var halfB = ml.Data.LoadFromEnumerable(test.Skip(500));
        var random = new Random(3);
        var noise = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 500).Select(_ => new Pixels { Features = Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray() }).ToList());
        double real = GenerativeMetrics.FrechetDistance(featurizer, halfA, halfB, "Features", "Features");
        double samples = GenerativeMetrics.FrechetDistance(featurizer, halfA, vae.Generate(ml, 500, seed: 1), "Features", "Generated");
        double uniform = GenerativeMetrics.FrechetDistance(featurizer, halfA, noise, "Features", "Features");
        TestContext.WriteLine($"Frechet distance in the LeNet featurizer's 64-d embedding: real vs real {real:F2}, VAE samples {samples:F2}, uniform noise {uniform:F2}");
        Assert.IsLessThan(samples, real);
        Assert.IsLessThan(uniform, samples);
    }

    private sealed class Pixels
    {
        [VectorType(784)]
        public float[] Features { get; set; } = [];
    }
}

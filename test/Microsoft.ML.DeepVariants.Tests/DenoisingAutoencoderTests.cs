using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Datasets;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class DenoisingAutoencoderTests
{
    public TestContext TestContext { get; set; } = null!;

    private static DenoisingAutoencoderOptions Convolutional(int epochs) => new()
    {
        Kind = AutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, NoiseStandardDeviation = 0.4f,
        InputMinimum = 0, InputMaximum = 1, Epochs = epochs, BatchSize = 64, Device = TorchDeviceKind.Cpu,
    };

    /// <summary>Test images with fixed Gaussian noise (sigma 0.4, clipped to [0, 1]) as Features, and the originals as Clean.</summary>
    internal static IDataView NoisyPairs(MLContext ml, IEnumerable<FashionMnistImage> images, float sigma = 0.4f, int seed = 99)
    {
        var random = new Random(seed);
        var rows = images.Select(image => new NoisyPair
        {
            Clean = image.Features,
            Features = image.Features.Select(v => Math.Clamp(v + sigma * (float)Gaussian(random), 0f, 1f)).ToArray(),
        }).ToList();
        return ml.Data.LoadFromEnumerable(rows);
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [TestMethod]
    public void ThreeEpochsRaiseThePsnrOfNoisyImagesByFourDecibels()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Train(ml, 3000);
        var result = ml.Transforms.DeepVariants.DenoisingAutoencoder(Convolutional(epochs: 3)).Train(train);
        var test = NoisyPairs(ml, FashionMnist.Read(FashionMnistSplit.Test, maxRows: 500));
        var denoised = result.Model.Transform(test);

        double noisy = ImageQuality.Psnr(test, "Features", "Clean");
        double cleaned = ImageQuality.Psnr(denoised, "Denoised", "Clean");
        double ssimNoisy = ImageQuality.Ssim(test, "Features", "Clean", 28, 28);
        double ssimCleaned = ImageQuality.Ssim(denoised, "Denoised", "Clean", 28, 28);
        TestContext.WriteLine($"PSNR noisy {noisy:F2} dB, denoised {cleaned:F2} dB; SSIM {ssimNoisy:F3} -> {ssimCleaned:F3}; losses {string.Join(", ", result.History.Epochs.Select(e => e.Loss.ToString("F4")))}");
        Assert.IsGreaterThanOrEqualTo(4.0, cleaned - noisy, $"PSNR gain {cleaned - noisy:F2} dB");
        Assert.IsGreaterThan(ssimNoisy, ssimCleaned);
        Assert.IsLessThan(result.History.Epochs[0].Loss, result.History.Epochs[^1].Loss, "the loss falls");
    }

    [TestMethod]
    public void ReconstructionErrorFlagsAnotherClassAsAnomalous()
    {
        var ml = new MLContext(seed: 2);
        var trousers = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 5000).Where(i => i.Label == "Trouser").ToList();
        var model = ml.Transforms.DeepVariants.DenoisingAutoencoder(new DenoisingAutoencoderOptions
        {
            Kind = AutoencoderKind.Dense, CodeSize = 16, InputMinimum = 0, InputMaximum = 1, Epochs = 10, BatchSize = 32,
            NoiseStandardDeviation = 0.1f, Device = TorchDeviceKind.Cpu,
        }).Fit(ml.Data.LoadFromEnumerable(trousers));

        var test = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 1000);
        double MeanScore(string label) => model.Transform(ml.Data.LoadFromEnumerable(test.Where(i => i.Label == label))).GetColumn<float>("Score").Average();
        double own = MeanScore("Trouser"), bags = MeanScore("Bag"), shirts = MeanScore("Shirt");
        TestContext.WriteLine($"mean reconstruction error: held-out trousers {own:F4}, bags {bags:F4}, shirts {shirts:F4}");
        Assert.IsGreaterThan(own, bags);
        Assert.IsGreaterThan(own, shirts);
    }

    [TestMethod]
    [DataRow(AutoencoderKind.Dense)]
    [DataRow(AutoencoderKind.Convolutional)]
    public void OnnxMatchesTorchSharp(AutoencoderKind kind)
    {
        random.manual_seed(3);
        var options = Convolutional(epochs: 1);
        options.Kind = kind;
        using var network = AutoencoderNetwork.Create(options, 784);
        network.eval();
        using var input = rand(3, 784);
        using var reconstruction = network.call(input);
        using var code = network.Encode(input);
        byte[] onnx = network.ExportOnnx("x", "y", "code", "error");
        for (int row = 0; row < 3; row++)
        {
            using var one = input[row];
            float[] expected = reconstruction[row].data<float>().ToArray();
            float[] actual = OnnxParityTests.RunOnnx(onnx, "x", one, "y");
            Assert.IsLessThanOrEqualTo(1e-4f, expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max());
            float[] expectedCode = code[row].data<float>().ToArray();
            Assert.IsLessThanOrEqualTo(1e-4f, expectedCode.Zip(OnnxParityTests.RunOnnx(onnx, "x", one, "code"), (a, b) => Math.Abs(a - b)).Max());
            float expectedError = (reconstruction[row] - input[row]).pow(2).mean().item<float>();
            Assert.AreEqual(expectedError, OnnxParityTests.RunOnnx(onnx, "x", one, "error").Single(), 1e-5f);
        }
    }

    [TestMethod]
    public void SaveAndLoadGiveTheSameOutputsAndInferenceNeverCorrupts()
    {
        var ml = new MLContext(seed: 4);
        var train = TestData.Train(ml, 500);
        var model = ml.Transforms.DeepVariants.DenoisingAutoencoder(Convolutional(epochs: 1)).Fit(train);
        var test = NoisyPairs(ml, FashionMnist.Read(FashionMnistSplit.Test, maxRows: 50));
        var first = model.Transform(test);
        Assert.AreEqual(0f, TestData.MaxAbsDifference(TestData.Scores(first, "Denoised"), TestData.Scores(model.Transform(test), "Denoised")),
            "the same input twice gives the same output: no noise at inference");
        Assert.AreEqual(NumberDataViewType.Single, first.Schema["Score"].Type);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 32), first.Schema["Code"].Type);

        string path = Path.Combine(Path.GetTempPath(), $"dae-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            var second = loaded.Transform(test);
            foreach (string column in new[] { "Denoised", "Code" })
                Assert.IsLessThanOrEqualTo(1e-5f, TestData.MaxAbsDifference(TestData.Scores(first, column), TestData.Scores(second, column)));
            CollectionAssert.AreEqual(first.GetColumn<float>("Score").ToArray(), second.GetColumn<float>("Score").ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void LearnsFromTheUsersOwnNoisyAndCleanPairs()
    {
        var ml = new MLContext(seed: 5);
        var pairs = NoisyPairs(ml, FashionMnist.Read(FashionMnistSplit.Train, maxRows: 2000), seed: 1);
        var options = Convolutional(epochs: 2);
        options.NoiseStandardDeviation = 0;
        options.CleanColumnName = "Clean";
        var model = ml.Transforms.DeepVariants.DenoisingAutoencoder(options).Fit(pairs);
        var test = NoisyPairs(ml, FashionMnist.Read(FashionMnistSplit.Test, maxRows: 300));
        double gain = ImageQuality.Psnr(model.Transform(test), "Denoised", "Clean") - ImageQuality.Psnr(test, "Features", "Clean");
        Assert.IsGreaterThan(3.0, gain, $"PSNR gain {gain:F2} dB");
    }

    [TestMethod]
    public void MetricsKnowTheirReferenceValues()
    {
        float[] image = Enumerable.Range(0, 64).Select(i => i / 64f).ToArray();
        Assert.AreEqual(1.0, ImageQuality.Ssim(image, image, 8, 8), 1e-9);
        Assert.AreEqual(100.0, ImageQuality.Psnr(image, image), 1e-9);
        float[] shifted = image.Select(v => v + 0.1f).ToArray();
        Assert.AreEqual(20.0, ImageQuality.Psnr(shifted, image), 1e-4, "MSE 0.01 on a range of 1 is 20 dB");
        Assert.IsLessThan(1.0, ImageQuality.Ssim(shifted, image, 8, 8));
    }

    [TestMethod]
    public void BadOptionsAndInputsAreRejected()
    {
        var ml = new MLContext(seed: 6);
        var data = TestData.Train(ml, 20);
        void Expect<T>(DenoisingAutoencoderOptions options, IDataView input, string fragment) where T : Exception
        {
            var error = Assert.Throws<T>(() => ml.Transforms.DeepVariants.DenoisingAutoencoder(options).Fit(input));
            StringAssert.Contains(error.Message, fragment, $"message was: {error.Message}");
        }
        Expect<ArgumentOutOfRangeException>(new DenoisingAutoencoderOptions { FeatureColumnName = "Pixels" }, data, "Could not find input column 'Pixels'");
        Expect<ArgumentException>(new DenoisingAutoencoderOptions { SaltAndPepperProbability = 0.1f }, data, "InputMinimum");
        Expect<ArgumentOutOfRangeException>(new DenoisingAutoencoderOptions { Kind = AutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, Depth = 3 }, data, "divisible by 8");
        Expect<ArgumentOutOfRangeException>(new DenoisingAutoencoderOptions { Kind = AutoencoderKind.Convolutional, ImageHeight = 32, ImageWidth = 32 }, data, "Vector<Single, 1024>");
        Expect<ArgumentOutOfRangeException>(new DenoisingAutoencoderOptions { NoiseStandardDeviation = -1 }, data, "NoiseStandardDeviation");
        Expect<ArgumentOutOfRangeException>(new DenoisingAutoencoderOptions { CleanColumnName = "Clean" }, data, "Could not find input column 'Clean'");
    }

    internal sealed class NoisyPair
    {
        [VectorType(784)]
        public float[] Features { get; set; } = [];
        [VectorType(784)]
        public float[] Clean { get; set; } = [];
    }
}

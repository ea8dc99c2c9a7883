using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Generative;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class ImageToImageTests
{
    public TestContext TestContext { get; set; } = null!;

    private static IDataView Pairs(MLContext ml, IEnumerable<FashionMnistImage> rows) =>
        ml.Data.LoadFromEnumerable(rows.Select(r => new Pair { Edges = EdgeMaps.Sobel(r.Features, 28, 28), Features = r.Features }).ToList());

    [TestMethod]
    public void Pix2PixLearnsEdgesToImagesAndServesItsUNet()
    {
        var ml = new MLContext(seed: 1);
        var trainRows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 3000);
        var train = Pairs(ml, trainRows);
        var testRows = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 200);
        var test = Pairs(ml, testRows);
        var options = new ImageToImageOptions
        {
            SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28, Width = 16, Epochs = 3,
            LearningRate = 1e-3f, Device = TorchDeviceKind.Cpu, Seed = 2,
        };
        var fit = ml.Transforms.DeepVariants.ImageToImage(options).Train(train);
        TestContext.WriteLine(string.Join("; ", fit.Losses.Select(e => $"epoch {e.Epoch}: L1 {e.L1Loss:F4}, D {e.DiscriminatorLoss:F3}, adversarial {e.AdversarialLoss:F3}")));
        Assert.IsLessThan(fit.Losses[0].L1Loss, fit.Losses[^1].L1Loss, "the L1 distance to the targets falls");
        Assert.IsTrue(fit.Losses.All(e => e.DiscriminatorLoss > 0), "a discriminator trained");

        var translated = fit.Model.Transform(test);
        double psnr = ImageQuality.Psnr(translated, "Translated", "Features");
        double ssim = ImageQuality.Ssim(translated, "Translated", "Features", 28, 28);
        // The baseline that knows nothing of the edges: the mean training image for every test item.
        var mean = Enumerable.Range(0, 784).Select(p => (float)trainRows.Average(r => r.Features[p])).ToArray();
        double meanPsnr = testRows.Average(r => ImageQuality.Psnr(mean, r.Features));
        TestContext.WriteLine($"held-out edges to images: PSNR {psnr:F2} dB, SSIM {ssim:F3}; the mean image: PSNR {meanPsnr:F2} dB");
        Assert.IsGreaterThan(meanPsnr + 4, psnr, "the edges tell the U-Net far more than the mean image");
        Assert.IsGreaterThan(0.5, ssim);

        // The served graph against the TorchSharp U-Net.
        var sources = translated.GetColumn<float[]>("Edges").Take(16).ToArray();
        var served = translated.GetColumn<float[]>("Translated").Take(16).ToArray();
        using var networks = (ImageToImageNetworks)fit.Trained!.Restore();
        using var scope = NewDisposeScope();
        var expected = networks.Generator.call(tensor(sources.SelectMany(s => s).ToArray(), [16, 784]));
        float parity = TestData.MaxAbsDifference(served, Enumerable.Range(0, 16).Select(i => expected[i].data<float>().ToArray()).ToArray());
        TestContext.WriteLine($"served U-Net against the network: {parity:G3}");
        Assert.IsLessThan(1e-4f, parity);

        string folder = TestContext.TestRunResultsDirectory ?? Path.GetTempPath();
        GenerativePlots.WriteGrid(Path.Combine(folder, "pix2pix-edges-translated-real.png"),
            Enumerable.Range(0, 8).SelectMany(i => new[] { sources[i], served[i], testRows[i].Features }).ToList(), 28, 28, columns: 6);
    }

    [TestMethod]
    public void BadImageToImageOptionsAreRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var pairs = Pairs(ml, FashionMnist.Read(FashionMnistSplit.Train, maxRows: 16));
        ImageToImageOptions Options() => new() { SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28 };
        foreach (var (change, name) in new (Action<ImageToImageOptions>, string)[]
        {
            (o => o.ImageHeight = 30, "ImageHeight"),
            (o => o.Depth = 3, "ImageHeight"),
            (o => o.TargetColumnName = "Edges", "TargetColumnName"),
            (o => (o.L1Weight, o.AdversarialWeight) = (0, 0), "L1Weight"),
            (o => o.DiscriminatorDepth = 3, "DiscriminatorDepth"),
            (o => o.TargetChannels = 3, "Vector<Single, 2352>"),
            (o => o.SourceColumnName = "Sketch", "Sketch"),
        })
        {
            var options = Options();
            change(options);
            var e = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.ImageToImage(options).Fit(pairs));
            TestContext.WriteLine($"{name}: {e.Message}");
            StringAssert.Contains(e.Message, name);
        }
    }

    private sealed class Pair
    {
        [VectorType(784)]
        public float[] Edges { get; set; } = [];

        [VectorType(784)]
        public float[] Features { get; set; } = [];
    }
}

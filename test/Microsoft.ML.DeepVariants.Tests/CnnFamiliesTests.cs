using Microsoft.ML.DeepVariants.Cnn;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class CnnFamiliesTests
{
    public TestContext TestContext { get; set; } = null!;

    // One epoch on 2,000 images is only 60 to 125 steps, so each family gets the learning rate and batch size
    // that suit it (chosen by a small sweep on these images; the batch-normalised families need more steps).
    public static IEnumerable<object[]> Families =>
    [
        [new CnnArchitecture { Family = CnnFamily.LeNet }, 0.01f, 32],
        [new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 16 }, 0.01f, 32],
        [new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 3, Width = 16 }, 0.01f, 32],
        [new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 3, Width = 64, Bottleneck = true }, 0.003f, 16],
        [new CnnArchitecture { Family = CnnFamily.Inception, Depth = 2, Width = 32 }, 0.003f, 16],
        [new CnnArchitecture { Family = CnnFamily.DenseNet, Depth = 3, LayersPerBlock = 2, GrowthRate = 12 }, 0.01f, 32],
    ];

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void EachFamilyBeats60PercentAfterOneEpoch(CnnArchitecture architecture, float learningRate, int batchSize)
    {
        var ml = new MLContext(seed: 1);
        var result = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Architecture = architecture, Epochs = 1, BatchSize = batchSize, LearningRate = learningRate,
            Device = TorchDeviceKind.Cpu,
        }).Train(TestData.Keyed(ml, TestData.Train(ml, 2000)));
        double accuracy = ml.MulticlassClassification.Evaluate(result.Model.Transform(TestData.Keyed(ml, TestData.Test(ml, 500)))).MicroAccuracy;
        TestContext.WriteLine($"{architecture.Family}{(architecture.Bottleneck ? " (bottleneck)" : "")}: {accuracy:P1} after 1 epoch on 2,000 images, {result.ParameterCount:N0} parameters");
        Assert.IsGreaterThan(0.60, accuracy, $"{architecture.Family}: {accuracy:P1}");
        Assert.AreEqual(architecture.ParameterCount(1, 28, 28, 10), result.ParameterCount, "the description's count is the trained network's");
    }

    [TestMethod]
    public void TheDescriptionRoundTripsThroughJsonWithItsParameterCount()
    {
        var architecture = new CnnArchitecture { Family = CnnFamily.DenseNet, Depth = 3, LayersPerBlock = 4, GrowthRate = 8, KernelSize = 5, Dropout = 0.1f };
        string json = architecture.ToJson();
        StringAssert.Contains(json, "\"DenseNet\"");
        var back = CnnArchitecture.FromJson(json);
        Assert.AreEqual(json, back.ToJson());
        long count = back.ParameterCount(3, 32, 32, 7);
        random.manual_seed(1);
        using var network = CnnNetwork.Create(architecture, 3, 32, 32, 7);
        Assert.AreEqual(network.parameters().Sum(p => p.numel()), count);
        Assert.IsGreaterThan(count, new CnnArchitecture { Family = CnnFamily.DenseNet, Depth = 3, LayersPerBlock = 4, GrowthRate = 16 }.ParameterCount(3, 32, 32, 7),
            "a larger growth rate means more parameters");
        Assert.Throws<ArgumentOutOfRangeException>(() => new CnnArchitecture { KernelSize = 4 }.Validate());
    }

    [TestMethod]
    public void InferenceNeverAugments()
    {
        var ml = new MLContext(seed: 2);
        var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu,
            Augmentation = new CnnAugmentation
            {
                CropPadding = 2, HorizontalFlipProbability = 0.5f, TranslationFraction = 0.1f, NoiseStandardDeviation = 0.1f, ErasingProbability = 0.5f,
            },
        }).Fit(TestData.Keyed(ml, TestData.Train(ml, 500)));
        var test = TestData.Keyed(ml, TestData.Test(ml, 100));
        Assert.AreEqual(0f, TestData.MaxAbsDifference(TestData.Scores(model.Transform(test)), TestData.Scores(model.Transform(test))));
    }

    [TestMethod]
    public void FlipsAreExactAndCropsAreShiftsWithinThePadding()
    {
        random.manual_seed(3);
        using var images = rand(16, 1, 8, 8);
        using (var flipped = new CnnAugmentation { HorizontalFlipProbability = 1 }.Apply(images))
            Assert.IsTrue(Same(flipped, images.flip(3)));
        // With nothing to do, Apply hands back its input (so it must not be disposed here).
        Assert.IsTrue(Same(new CnnAugmentation { HorizontalFlipProbability = 0 }.Apply(images), images));

        using var cropped = new CnnAugmentation { CropPadding = 2 }.Apply(images);
        int shifted = 0;
        for (int n = 0; n < 16; n++)
        {
            bool found = false;
            for (int dy = -2; dy <= 2 && !found; dy++)
                for (int dx = -2; dx <= 2 && !found; dx++)
                {
                    using var padded = nn.functional.pad(images[n], [2, 2, 2, 2]);
                    using var window = padded.narrow(1, 2 + dy, 8).narrow(2, 2 + dx, 8);
                    found = Same(window, cropped[n]);
                    if (found && (dy, dx) != (0, 0))
                        shifted++;
                }
            Assert.IsTrue(found, $"image {n} is a shift of at most 2 pixels");
        }
        Assert.IsGreaterThan(8, shifted, "most images move");
    }

    [TestMethod]
    public void ErasingZeroesOneRectangleOfBoundedArea()
    {
        random.manual_seed(4);
        using var images = ones(32, 1, 20, 20);
        using var erased = new CnnAugmentation { ErasingProbability = 1, ErasingMaxArea = 0.25f }.Apply(images);
        for (int n = 0; n < 32; n++)
        {
            using var zero = erased[n][0].eq(0);
            long count = zero.sum().item<long>();
            Assert.IsTrue(count is >= 1 and <= 100, $"image {n}: {count} pixels erased");
            using var rows = zero.any(1).nonzero();
            using var cols = zero.any(0).nonzero();
            Assert.AreEqual(rows.shape[0] * cols.shape[0], count, "the erased pixels form one rectangle");
        }
    }

    private static bool Same(Tensor a, Tensor b) => a.eq(b).all().item<bool>();

    [TestMethod]
    public void BadAugmentationSettingsAreNamed()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new CnnAugmentation { HorizontalFlipProbability = 1.5f }.Validate());
        StringAssert.Contains(error.Message, "HorizontalFlipProbability");
        Assert.Throws<ArgumentOutOfRangeException>(() => new CnnAugmentation { TranslationFraction = 0.6f }.Validate());
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.DeepVariants.Tabular;
using static Microsoft.ML.DeepVariants.Tests.FashionStreams;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Several labels from one CNN trunk, and an image stream fused with a numeric one, on Fashion-MNIST.</summary>
[TestClass]
public sealed class MultiStreamTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly Lazy<List<FashionItem>> Train = new(() => Items(FashionMnist.Read(FashionMnistSplit.Train, maxRows: 3000), seed: 1));
    private static readonly Lazy<List<FashionItem>> Test = new(() => Items(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 1000), seed: 2));

    private static TabularNetworkOptions Options(bool image, bool hint, StreamFusion fusion = StreamFusion.Concatenate) => new()
    {
        NumericColumnNames = hint ? [nameof(FashionItem.Hint)] : [],
        ImageColumnName = image ? nameof(FashionItem.Pixels) : null, ImageHeight = 28, ImageWidth = 28, Fusion = fusion,
        LabelColumnName = nameof(FashionItem.Item), Width = 128, Depth = 1, Epochs = 5, BatchSize = 64, Seed = 1,
    };

    private static double Accuracy(MLContext ml, ITransformer model, string score = "Score", string label = nameof(FashionItem.Item), string predicted = "PredictedLabel")
    {
        var scored = model.Transform(ml.Data.LoadFromEnumerable(Test.Value));
        return PredictedClasses.Accuracy(scored, predicted, scored.GetColumn<string>(label));
    }

    [TestMethod]
    public void ConcatenatingTheImageWithANoisyHintBeatsEitherStreamAlone()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Train.Value.Take(2000));
        double image = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: true, hint: false)).Fit(train));
        double hint = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: false, hint: true)).Fit(train));
        double fused = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: true, hint: true)).Fit(train));
        // The gated sum trains in the next test (and in the benchmark, beside this one).
        TestContext.WriteLine($"Fashion-MNIST 2,000 / 1,000: image {image:P2}, hint {hint:P2}, concatenated {fused:P2}");
        Assert.IsGreaterThan(0.75, image);
        Assert.IsGreaterThan(Math.Max(image, hint) + 0.03, fused, "Concatenation uses both streams.");
    }

    [TestMethod]
    public void OneTrunkLearnsTheItemAndItsGroupAndServesBothLikeTheNetwork()
    {
        var ml = new MLContext(seed: 1);
        var options = Options(image: true, hint: true, StreamFusion.GatedSum);
        options.Labels = [new TabularLabel(nameof(FashionItem.Item), TabularTaskKind.Multiclass), new TabularLabel(nameof(FashionItem.Group), TabularTaskKind.Multiclass) { LossWeight = 0.5f }];
        var result = ml.Transforms.DeepVariants.TabularNetwork(options).Train(ml.Data.LoadFromEnumerable(Train.Value));
        double item = Accuracy(ml, result.Model, "Score.Item", nameof(FashionItem.Item), "PredictedLabel.Item");
        double group = Accuracy(ml, result.Model, "Score.Group", nameof(FashionItem.Group), "PredictedLabel.Group");
        TestContext.WriteLine($"multi-task: item {item:P2}, group {group:P2}");
        Assert.IsGreaterThan(0.8, item);
        Assert.IsGreaterThan(0.95, group);

        // The served graph (image and hint streams, gated sum, two heads) against the network, on 32 test rows.
        var data = ml.Data.LoadFromEnumerable(Test.Value.Take(32));
        var scored = result.Model.Transform(data);
        using var network = result.Trained!.Restore();
        var rows = Test.Value.Take(32).Select(r => r.Hint.Concat(r.Pixels).ToArray()).ToArray();
        using var x = TorchSharp.torch.tensor(rows.SelectMany(v => v).ToArray(), [rows.Length, rows[0].Length]);
        using var output = network.call(x);
        using var itemScores = TorchSharp.torch.nn.functional.softmax(output.narrow(1, 0, 10), 1);
        using var groupScores = TorchSharp.torch.nn.functional.softmax(output.narrow(1, 10, 3), 1);
        float itemGap = TestData.MaxAbsDifference(TestData.Scores(scored, "Score.Item"), Enumerable.Range(0, 32).Select(i => itemScores[i].data<float>().ToArray()).ToArray());
        float groupGap = TestData.MaxAbsDifference(TestData.Scores(scored, "Score.Group"), Enumerable.Range(0, 32).Select(i => groupScores[i].data<float>().ToArray()).ToArray());
        TestContext.WriteLine($"parity: item {itemGap:E2}, group {groupGap:E2}");
        Assert.IsLessThanOrEqualTo(1e-4f, itemGap);
        Assert.IsLessThanOrEqualTo(1e-4f, groupGap);
    }

    [TestMethod]
    public void AnImageColumnOfTheWrongSizeIsRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var options = Options(image: true, hint: false);
        options.ImageHeight = 32;
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.TabularNetwork(options).Fit(ml.Data.LoadFromEnumerable(Train.Value.Take(20))));
        StringAssert.Contains(error.Message, "'Pixels'");
        StringAssert.Contains(error.Message, "Vector<Single, 896> of 1 x 32 x 28 pixels");
    }

    /// <summary>A BasicMotions case: 100 steps of 6 accelerometer and gyroscope values, and two numbers a table would hold.</summary>
    public sealed class MotionRow
    {
        [VectorType(600)]
        public float[] Series { get; set; } = [];

        [VectorType(2)]
        public float[] Numbers { get; set; } = [];

        public string Label { get; set; } = "";
    }

    private static List<MotionRow> Motions(string split, int seed)
    {
        var random = new Random(seed);
        var problem = TimeSeriesFile.Read(Path.Combine(AppContext.BaseDirectory, "Data", "timeseries", "BasicMotions", $"BasicMotions_{split}.ts"));
        return problem.Cases.Select(c => new MotionRow { Series = c.Values, Numbers = [(float)random.NextDouble(), (float)random.NextDouble()], Label = c.Label }).ToList();
    }

    [TestMethod]
    public void ASeriesStreamLearnsBasicMotionsAndThreeGatedStreamsServeLikeTheNetwork()
    {
        var ml = new MLContext(seed: 1);
        var train = Motions("TRAIN", 1);
        var test = Motions("TEST", 2);
        var options = new TabularNetworkOptions
        {
            NumericColumnNames = [], SeriesColumnName = nameof(MotionRow.Series), SeriesLength = 100, SeriesChannels = 6,
            Width = 64, Depth = 1, Epochs = 40, BatchSize = 8, Seed = 1,
        };
        var model = ml.Transforms.DeepVariants.TabularNetwork(options).Fit(ml.Data.LoadFromEnumerable(train));
        var scored = model.Transform(ml.Data.LoadFromEnumerable(test));
        double accuracy = PredictedClasses.Accuracy(scored, "PredictedLabel", test.Select(row => row.Label));
        TestContext.WriteLine($"BasicMotions, series stream alone (40 / 40): accuracy {accuracy:P1}");
        Assert.IsGreaterThanOrEqualTo(0.9, accuracy);

        // Table, image and series streams with softmax gates: the served graph against the network on rows it never saw.
        var rows = Train.Value.Take(64).Zip(train.Concat(train), (item, motion) => new ThreeStreams
        {
            Pixels = item.Pixels, Series = motion.Series, Numbers = motion.Numbers, Label = item.Group,
        }).ToList();
        var three = new TabularNetworkOptions
        {
            NumericColumnNames = [nameof(ThreeStreams.Numbers)], ImageColumnName = nameof(ThreeStreams.Pixels), ImageHeight = 28, ImageWidth = 28,
            SeriesColumnName = nameof(ThreeStreams.Series), SeriesLength = 100, SeriesChannels = 6, Fusion = StreamFusion.GatedSum,
            Width = 16, Depth = 1, Epochs = 2, BatchSize = 16, Seed = 1,
        };
        var result = ml.Transforms.DeepVariants.TabularNetwork(three).Train(ml.Data.LoadFromEnumerable(rows.Take(48)));
        var held = rows.Skip(48).ToList();
        var served = TestData.Scores(result.Model.Transform(ml.Data.LoadFromEnumerable(held)));
        using var network = result.Trained!.Restore();
        using var x = TorchSharp.torch.tensor(held.SelectMany(r => r.Numbers.Concat(r.Pixels).Concat(r.Series)).ToArray(), [held.Count, 2 + 784 + 600]);
        using var probabilities = TorchSharp.torch.nn.functional.softmax(network.call(x), 1);
        float gap = TestData.MaxAbsDifference(served, Enumerable.Range(0, held.Count).Select(i => probabilities[i].data<float>().ToArray()).ToArray());
        TestContext.WriteLine($"three gated streams: parity {gap:E2}");
        Assert.IsLessThanOrEqualTo(1e-4f, gap);
    }

    private sealed class ThreeStreams
    {
        [VectorType(784)]
        public float[] Pixels { get; set; } = [];

        [VectorType(600)]
        public float[] Series { get; set; } = [];

        [VectorType(2)]
        public float[] Numbers { get; set; } = [];

        public string Label { get; set; } = "";
    }
}

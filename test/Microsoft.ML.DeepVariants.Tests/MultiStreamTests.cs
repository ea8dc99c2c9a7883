using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;
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
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        scored.Schema[predicted].GetKeyValues(ref names);
        var classes = names.DenseValues().Select(n => n.ToString()).ToArray();
        var truth = scored.GetColumn<string>(label).ToArray();
        return scored.GetColumn<uint>(predicted).Zip(truth, (p, t) => p > 0 && classes[p - 1] == t ? 1.0 : 0.0).Average();
    }

    [TestMethod]
    public void FusingTheImageWithANoisyHintBeatsEitherStreamAlone()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Train.Value);
        double image = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: true, hint: false)).Fit(train));
        double hint = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: false, hint: true)).Fit(train));
        double fused = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: true, hint: true)).Fit(train));
        double gated = Accuracy(ml, ml.Transforms.DeepVariants.TabularNetwork(Options(image: true, hint: true, StreamFusion.GatedSum)).Fit(train));
        TestContext.WriteLine($"Fashion-MNIST 3,000 / 1,000: image {image:P2}, hint {hint:P2}, concatenated {fused:P2}, gated sum {gated:P2}");
        Assert.IsGreaterThan(0.75, image);
        Assert.IsGreaterThan(Math.Max(image, hint) + 0.03, fused, "Concatenation uses both streams.");
        Assert.IsGreaterThan(Math.Max(image, hint) + 0.03, gated, "The gated sum uses both streams.");
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
}

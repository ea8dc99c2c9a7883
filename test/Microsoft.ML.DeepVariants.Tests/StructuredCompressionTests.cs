using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Factorization;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.DeepVariants.Pruning;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Channel pruning and low-rank factorization: smaller networks that still serve what TorchSharp computes.</summary>
[TestClass]
public sealed class StructuredCompressionTests
{
    public TestContext TestContext { get; set; } = null!;

    private static MLContext _ml = null!;
    private static IDataView _train = null!, _test = null!;
    private static FitResult _leNet = null!;

    [ClassInitialize]
    public static void FitOnce(TestContext _)
    {
        _ml = new MLContext(seed: 1);
        _train = TestData.Keyed(_ml, TestData.Train(_ml, 2000));
        _test = TestData.Keyed(_ml, TestData.Test(_ml, 500));
        _leNet = Fit(new CnnArchitecture { Family = CnnFamily.LeNet, Width = 16, HiddenSize = 64 }, epochs: 3);
    }

    private static FitResult Fit(CnnArchitecture architecture, int epochs, int rows = 2000, float learningRate = 1e-3f) =>
        _ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = epochs, Device = TorchDeviceKind.Cpu, Seed = 3, Architecture = architecture, LearningRate = learningRate,
        }).Train(rows == 2000 ? _train : TestData.Keyed(_ml, TestData.Train(_ml, rows)));

    private double Accuracy(ITransformer model) => _ml.MulticlassClassification.Evaluate(model.Transform(_test)).MicroAccuracy;

    // The rewritten TorchSharp network's logits against its exported graph's, on 64 test images through ONNX Runtime.
    private static float ParityAgainstOnnx(FitResult fitted, Func<IRebuildableNetwork, nn.Module<Tensor, Tensor>> rewrite)
    {
        using var scope = NewDisposeScope();
        var network = rewrite((IRebuildableNetwork)fitted.Trained!.Restore());
        network.eval();
        var images = TestData.Test(_ml, 64).GetColumn<float[]>("Features").SelectMany(f => f).ToArray();
        var batch = tensor(images).reshape(64, 1, 28, 28);
        using var noGrad = no_grad();
        var logits = network.call(batch);
        var export = fitted.Trained.Export(network);
        float worst = 0;
        for (int row = 0; row < 64; row++)
        {
            float[] onnx = OnnxParityTests.RunOnnx(export.Bytes, export.Inputs[0], batch[row].flatten(), export.Outputs[0]);
            float[] torch = logits[row].data<float>().ToArray();
            worst = Math.Max(worst, torch.Zip(onnx, (a, b) => Math.Abs(a - b)).Max());
        }
        return worst;
    }

    [TestMethod]
    public void HalfTheChannelsOfALeNetIsTheHalfWidthLeNetAndServesWhatTorchSharpComputes()
    {
        var result = _ml.Transforms.DeepVariants.PruneChannels(_leNet, new ChannelPruningOptions { Ratio = 0.5, Epochs = 1 }).Train(_train, _test);

        // Every convolution keeps half its filters, which is the LeNet of half the width, parameter for parameter.
        long halfWidth = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 8, HiddenSize = 64 }.ParameterCount(1, 28, 28, 10);
        TestContext.WriteLine($"LeNet: {result.Report.ParametersBefore:N0} -> {result.Report.ParametersAfter:N0} parameters (half width: {halfWidth:N0}); " +
            $"{string.Join(", ", result.Report.Layers.Select(l => $"{l.Name} {l.FiltersBefore}->{l.FiltersAfter}"))}; ONNX {_leNet.OnnxModel.Length:N0} -> {result.OnnxModel.Length:N0} bytes; " +
            $"accuracy {result.Report.AccuracyBefore:P2} fitted, {result.Report.AccuracyPruned:P2} pruned, {result.Report.AccuracyAfter:P2} after one epoch");
        Assert.AreEqual(halfWidth, result.Report.ParametersAfter);
        Assert.IsTrue(result.Report.Layers.All(l => l.FiltersAfter == l.FiltersBefore / 2));
        Assert.IsLessThan(0.6 * _leNet.OnnxModel.Length, result.OnnxModel.Length, "the graph itself is smaller");
        // Floor: within 3 points of the fitted model after one epoch of fine-tuning.
        Assert.IsGreaterThanOrEqualTo(result.Report.AccuracyBefore!.Value - 0.03, result.Report.AccuracyAfter!.Value);
        Assert.AreEqual(result.Report.AccuracyAfter!.Value, Accuracy(result.Model), 1e-9, "ML.NET serves the fine-tuned network");

        // The thinner network is exported with parity against TorchSharp (a dense layer after a flatten reads 7 x 7 positions a channel).
        float parity = ParityAgainstOnnx(_leNet, n => Thinner(n, new ChannelPruningOptions { Ratio = 0.5 }));
        TestContext.WriteLine($"parity {parity:E2}");
        Assert.IsLessThanOrEqualTo(1e-4f, parity);
    }

    private static nn.Module<Tensor, Tensor> Thinner(IRebuildableNetwork network, ChannelPruningOptions options)
    {
        var links = ChannelPruning.Links(network);
        return ModuleRewrite.Replace(network, ChannelPruning.Replacements(links, ChannelPruning.Keep(links, options)));
    }

    [TestMethod]
    public void AVggPrunedByBatchNormScalesKeepsItsAccuracyFloorAndSavesAsAnyModel()
    {
        var vgg = Fit(new CnnArchitecture { Family = CnnFamily.Vgg, Width = 16, Depth = 2, LayersPerBlock = 2 }, epochs: 4, learningRate: 3e-3f);
        var result = _ml.Transforms.DeepVariants.PruneChannels(vgg, new ChannelPruningOptions
        {
            Ratio = 0.25, Importance = ChannelImportance.BatchNormScale, Epochs = 2,
            LayerRatios = { ["convolutions.block1_conv1.conv"] = 0.5 },
        }).Train(_train, _test);
        var fitted = new CnnArchitecture { Family = CnnFamily.Vgg, Width = 16, Depth = 2, LayersPerBlock = 2 };
        TestContext.WriteLine($"VGG: {result.Report.ParametersBefore:N0} -> {result.Report.ParametersAfter:N0} parameters; " +
            $"{string.Join(", ", result.Report.Layers.Select(l => $"{l.Name} {l.FiltersBefore}->{l.FiltersAfter}"))}; " +
            $"accuracy {result.Report.AccuracyBefore:P2} fitted, {result.Report.AccuracyPruned:P2} pruned, {result.Report.AccuracyAfter:P2} after two epochs");
        CollectionAssert.AreEqual(new long[] { 8, 12, 24, 24 }, result.Report.Layers.Select(l => l.FiltersAfter).ToArray(), "16 - 8 (its own ratio), 16 - 4, 32 - 8, 32 - 8");
        // 1->8, 8->12, 12->24 and 24->24 3x3 convolutions with their batch norms, and a 24->10 classifier.
        long expected = (1 * 8 * 9 + 2 * 8) + (8 * 12 * 9 + 2 * 12) + (12 * 24 * 9 + 2 * 24) + (24 * 24 * 9 + 2 * 24) + (24 * 10 + 10);
        Assert.AreEqual(expected, result.Report.ParametersAfter);
        Assert.AreEqual(fitted.ParameterCount(1, 28, 28, 10), result.Report.ParametersBefore);
        // Parity of the thinner VGG (its classifier reads one position a channel, after global average pooling).
        float parity = ParityAgainstOnnx(vgg, n => Thinner(n, new ChannelPruningOptions { Ratio = 0.25, Importance = ChannelImportance.BatchNormScale }));
        TestContext.WriteLine($"parity {parity:E2}");
        Assert.IsLessThanOrEqualTo(1e-4f, parity);
        // Floor: within 8 points of the fitted (and still learning) network after two epochs.
        Assert.IsGreaterThanOrEqualTo(result.Report.AccuracyBefore!.Value - 0.08, result.Report.AccuracyAfter!.Value);

        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"channels-{Guid.NewGuid():N}.zip");
        _ml.Model.Save(result.Model, _train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        CollectionAssert.AreEqual(PredictedClasses.Of(result.Model.Transform(_test), "PredictedLabel"), PredictedClasses.Of(loaded.Transform(_test), "PredictedLabel"));
    }

    [TestMethod]
    public void AFactorizedLeNetHasTheRanksAskedForAndServesWhatTorchSharpComputes()
    {
        var options = new LowRankOptions { EnergyFraction = 0.8, LayerRanks = { ["pooling.fc"] = 16, ["convolutions.block1.conv"] = 12 }, Epochs = 1 };
        var result = _ml.Transforms.DeepVariants.Factorize(_leNet, options).Train(_train, _test);
        var report = result.Report;
        TestContext.WriteLine($"LeNet: {report.ParametersBefore:N0} -> {report.ParametersAfter:N0} parameters; " +
            string.Join(", ", report.Layers.Select(l => $"{l.Name} {l.Rows}x{l.Columns} rank {(l.Rank?.ToString() ?? "kept")} energy {l.EnergyKept:P0}")) +
            $"; ONNX {_leNet.OnnxModel.Length:N0} -> {result.OnnxModel.Length:N0} bytes; accuracy {report.AccuracyBefore:P2} fitted, {report.AccuracyFactorized:P2} factorized, {report.AccuracyAfter:P2} after one epoch");

        var fc = report.Layers.Single(l => l.Name == "pooling.fc");
        Assert.AreEqual(16, fc.Rank);
        Assert.AreEqual(16 * (fc.Rows + fc.Columns), fc.ParametersAfter);
        foreach (var layer in report.Layers.Where(l => l.Rank is not null && l.Name != "pooling.fc"))
            Assert.IsGreaterThanOrEqualTo(0.8, layer.EnergyKept, $"{layer.Name} keeps the energy asked for");
        // Rank 12 of a 16 x 25 layer would need 12 * 41 = 492 weights where it has 400: kept whole, with the reason.
        var kept = report.Layers.Single(l => l.Name == "convolutions.block1.conv");
        Assert.IsNull(kept.Rank);
        StringAssert.Contains(kept.Reason, "492");
        Assert.AreEqual(report.ParametersBefore - report.Layers.Sum(l => l.ParametersBefore - l.ParametersAfter), report.ParametersAfter);
        Assert.IsLessThan(0.5 * report.ParametersBefore, report.ParametersAfter);
        Assert.IsGreaterThanOrEqualTo(report.AccuracyBefore!.Value - 0.03, report.AccuracyAfter!.Value);
        Assert.AreEqual(report.AccuracyAfter!.Value, Accuracy(result.Model), 1e-9, "ML.NET serves the fine-tuned network");

        long counted = 0;
        float parity = ParityAgainstOnnx(_leNet, n =>
        {
            var plan = FactorizationEstimator.Plan(n, options);
            var layers = ModuleRewrite.Layers(n).ToDictionary(l => l.Name, l => l.Module);
            var rewritten = ModuleRewrite.Replace(n, plan.Where(l => l.Rank is not null)
                .ToDictionary(l => l.Name, l => (nn.Module)LowRankFactorization.Factorize(layers[l.Name], l.Rank!.Value)));
            counted = rewritten.parameters().Sum(p => p.numel());
            return rewritten;
        });
        TestContext.WriteLine($"parity {parity:E2}; counted {counted:N0} parameters");
        Assert.AreEqual(report.ParametersAfter, counted, "the report counts the network's parameters");
        Assert.IsLessThanOrEqualTo(1e-4f, parity);
    }

    [TestMethod]
    public void TheRankForAnEnergyFractionIsTheSmallestThatKeepsIt()
    {
        // Squared singular values 9, 4, 1 of 14: 64%, 93%, 100%.
        float[] singular = [3, 2, 1];
        Assert.AreEqual(1, LowRankFactorization.RankForEnergy(singular, 0.6));
        Assert.AreEqual(2, LowRankFactorization.RankForEnergy(singular, 0.9));
        Assert.AreEqual(3, LowRankFactorization.RankForEnergy(singular, 0.95));
        Assert.AreEqual(3, LowRankFactorization.RankForEnergy(singular, 1));
        // At full rank the pair computes what the layer did.
        using var scope = NewDisposeScope();
        var layer = nn.Conv2d(3, 5, 3, padding: 1);
        var pair = LowRankFactorization.Factorize(layer, 5);
        var x = randn(2, 3, 6, 6);
        Assert.IsLessThan(1e-5, (layer.call(x) - pair.call(x)).abs().max().item<float>());
    }

    [TestMethod]
    public void BadCompressionOptionsAreRefusedByNameBeforeAnyRowIsRead()
    {
        // A data view whose rows cannot be read: every refusal below must come before the first row.
        var unreadable = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select<int, Datasets.FashionMnistImage>(_ => throw new InvalidOperationException("a row was read")));
        unreadable = TestData.Keyed(_ml, unreadable);
        void Refused<T>(Action action, string fragment) where T : Exception
        {
            var error = Assert.Throws<T>(action);
            StringAssert.Contains(error.Message, fragment);
            TestContext.WriteLine($"{typeof(T).Name}: {error.Message}");
        }
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.Factorize(_leNet, new LowRankOptions { Rank = 0 }).Train(unreadable), "Rank");
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.Factorize(_leNet, new LowRankOptions { EnergyFraction = 1.5 }).Train(unreadable), "EnergyFraction");
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.Factorize(_leNet, new LowRankOptions { LayerRanks = { ["pooling.fc"] = 0 } }).Train(unreadable), "LayerRanks[pooling.fc]");
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.Factorize(_leNet, new LowRankOptions { LayerRanks = { ["head.classifier"] = 11 } }).Train(unreadable), "above the layer's rank of 10");
        Refused<ArgumentException>(() => _ml.Transforms.DeepVariants.Factorize(_leNet, new LowRankOptions { LayerRanks = { ["fc9"] = 4 } }).Train(unreadable), "'fc9'");
        Refused<ArgumentException>(() => _ml.Transforms.DeepVariants.Factorize(_leNet, new LowRankOptions { Layers = ["pooling.fc", "conv7"] }).Train(unreadable), "'conv7'");
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.PruneChannels(_leNet, new ChannelPruningOptions { Ratio = 1 }).Train(unreadable), "remove every filter");
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.PruneChannels(_leNet, new ChannelPruningOptions
            { LayerRatios = { ["convolutions.block1.conv"] = 1 } }).Train(unreadable), "LayerRatios[convolutions.block1.conv]");
        Refused<ArgumentException>(() => _ml.Transforms.DeepVariants.PruneChannels(_leNet, new ChannelPruningOptions { LayerRatios = { ["block1"] = 0.5 } }).Train(unreadable), "'block1'");
        Refused<ArgumentOutOfRangeException>(() => _ml.Transforms.DeepVariants.PruneChannels(_leNet, new ChannelPruningOptions { Ratio = -0.1 }).Train(unreadable), "Ratio");

        // A residual network ties channel counts through its additions: refused, naming the block.
        var resNet = Fit(new CnnArchitecture { Family = CnnFamily.ResNet, Width = 4, Depth = 1 }, epochs: 1, rows: 200);
        Refused<NotSupportedException>(() => _ml.Transforms.DeepVariants.PruneChannels(resNet, new ChannelPruningOptions()).Train(unreadable), "ResidualBlock");
        Refused<ArgumentException>(() => _ml.Transforms.DeepVariants.Factorize(resNet, new LowRankOptions { Layers = ["convolutions.stage1.block1.body.conv1"] }).Train(unreadable), "not factorized");
    }

    [TestMethod]
    public void TheServingReportMeasuresTheModelAndItsBatchedGraphComputesWhatItServes()
    {
        var test = TestData.Keyed(_ml, TestData.Test(_ml, 128));
        var figures = ServingReport.Measure(_ml, _leNet.Model, _leNet.OnnxModel, test);
        TestContext.WriteLine($"{figures.Parameters:N0} stored weights, {figures.OnnxBytes:N0} bytes, {figures.RowsPerSecond:N0} rows/s one at a time, " +
            $"{figures.BatchedRowsPerSecond:N0} rows/s in batches of 64, accuracy {figures.Accuracy:P2}");
        // The trainable parameters and the batch norms' running means and variances (two per channel of 16 + 32).
        Assert.AreEqual(_leNet.ParameterCount + 2 * (16 + 32), figures.Parameters);
        Assert.AreEqual(_leNet.OnnxModel.LongLength, figures.OnnxBytes);
        Assert.AreEqual(_ml.MulticlassClassification.Evaluate(_leNet.Model.Transform(test)).MicroAccuracy, figures.Accuracy!.Value, 1e-9);
        Assert.IsGreaterThan(0, figures.RowsPerSecond);
        Assert.IsGreaterThan(0, figures.BatchedRowsPerSecond);

        // The batched copy gives each row of a batch the logits the single-row graph gives it alone.
        var export = _leNet.Trained!.Export(_leNet.Trained.Restore());
        byte[] batched = ServingReport.Batched(export.Bytes);
        float[][] rows = TestData.Test(_ml, 8).GetColumn<float[]>("Features").ToArray();
        using var batch = tensor(rows.SelectMany(r => r).ToArray()).reshape(8, 784);
        float[] together = OnnxParityTests.RunOnnx(batched, export.Inputs[0], batch, export.Outputs[0]);
        Assert.HasCount(8 * 10, together);
        for (int row = 0; row < 8; row++)
        {
            using var one = tensor(rows[row]);
            float[] alone = OnnxParityTests.RunOnnx(export.Bytes, export.Inputs[0], one, export.Outputs[0]);
            for (int k = 0; k < 10; k++)
                Assert.AreEqual(alone[k], together[row * 10 + k], 1e-5f, $"row {row}, class {k}");
        }
    }
}

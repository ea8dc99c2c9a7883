using System.Diagnostics;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// The divergence guard and the fit diagnostics: a NaN or exploding loss stops training and keeps the best epoch's
/// weights, a run that diverges before any epoch fails, a fit that learned nothing says so, and an absurd architecture
/// is refused before anything is allocated.
/// </summary>
[TestClass]
public sealed class DivergenceTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Multiplies the learning rate by <paramref name="factor"/> after <paramref name="epoch"/>: a divergence forced from outside.</summary>
    private sealed class ScaleLearningRateAfter(int epoch, double factor) : TrainingCallback
    {
        public override void OnEpochEnd(EpochEnd end)
        {
            if (end.Progress.Epoch == epoch)
                end.LearningRateScale *= factor;
        }
    }

    private static CnnClassifierOptions Options(int epochs, int? stepsPerEpoch) => new()
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = epochs, BatchSize = 100, LearningRate = 3e-3f, StepsPerEpoch = stepsPerEpoch,
        Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 },
    };

    // The scores of a run stopped after `epochs` epochs with the same seed: what restoring that epoch must give.
    private static float[][] ScoresAfter(int epochs, int? stepsPerEpoch, IDataView train, IDataView? validation, IDataView test)
    {
        var ml = new MLContext(seed: 3);
        var model = ml.Transforms.DeepVariants.CnnClassifier(Options(epochs, stepsPerEpoch)).Fit(train, validation);
        return TestData.Scores(model.Transform(test));
    }

    [TestMethod]
    public void ANaNValidationLossStopsTrainingAndKeepsTheBestEpoch()
    {
        var ml = new MLContext(seed: 3);
        var train = TestData.Keyed(ml, TestData.Train(ml, 1000));
        var validation = TestData.Keyed(ml, TestData.Test(ml, 300));
        // One step an epoch, and a NaN learning rate after epoch 5: epoch 6's one step turns every weight NaN, which
        // only the validation loss can see.
        var options = Options(epochs: 8, stepsPerEpoch: 1);
        options.Callbacks.Add(new ScaleLearningRateAfter(5, double.NaN));
        var messages = new List<(ChannelMessageKind Kind, string Message)>();
        ml.Log += (_, e) => { lock (messages) messages.Add((e.Kind, e.RawMessage)); };
        var result = ml.Transforms.DeepVariants.CnnClassifier(options).Train(train, validation);

        var history = result.History;
        TestContext.WriteLine($"{history.StopReason}; validation accuracy by epoch: {string.Join(", ", history.Epochs.Select(e => $"{e.ValidationMetric:P1}"))}");
        Assert.IsTrue(history.Diverged);
        Assert.AreEqual(5, history.Epochs.Count, "the diverged epoch is not in the history");
        StringAssert.Contains(history.StopReason, "the loss became NaN (validation loss, epoch 6)");
        int best = 1 + Enumerable.Range(0, 5).OrderByDescending(i => history.Epochs[i].ValidationMetric).ThenBy(i => i).First();
        Assert.AreEqual(best, history.BestEpoch, "the epoch with the best validation accuracy is kept");
        Assert.IsTrue(messages.Any(m => m.Message.Contains("Training stopped at epoch 6", StringComparison.Ordinal)), "the log says what happened");

        float[][] scores = TestData.Scores(result.Model.Transform(validation));
        Assert.IsTrue(scores.All(row => row.All(float.IsFinite)), "the saved model is not the NaN one");
        Assert.AreEqual(0f, TestData.MaxAbsDifference(ScoresAfter(best, 1, train, validation, validation), scores), "the model is exactly the best epoch's");
    }

    [TestMethod]
    public void AnExplodingTrainingLossStopsTrainingAndKeepsTheBestEpoch()
    {
        var ml = new MLContext(seed: 3);
        var train = TestData.Keyed(ml, TestData.Train(ml, 1000));
        var test = TestData.Keyed(ml, TestData.Test(ml, 200));
        // Without validation data the best epoch is the one with the lowest training loss.
        var options = Options(epochs: 6, stepsPerEpoch: 5);
        options.Callbacks.Add(new ScaleLearningRateAfter(3, 1e5));
        var result = ml.Transforms.DeepVariants.CnnClassifier(options).Train(train);

        var history = result.History;
        TestContext.WriteLine($"{history.StopReason}; losses {string.Join(", ", history.Epochs.Select(e => $"{e.Loss:F3}"))}");
        Assert.IsTrue(history.Diverged);
        Assert.AreEqual(3, history.Epochs.Count);
        StringAssert.Contains(history.StopReason, "(training loss, epoch 4");
        int best = 1 + Enumerable.Range(0, 3).OrderBy(i => history.Epochs[i].Loss).First();
        Assert.AreEqual(best, history.BestEpoch);
        Assert.AreEqual(0f, TestData.MaxAbsDifference(ScoresAfter(best, 5, train, null, test), TestData.Scores(result.Model.Transform(test))),
            "the model is exactly the best epoch's");
    }

    [TestMethod]
    public void ARunThatDivergesBeforeAnyEpochEndsFailsNamingTheLearningRate()
    {
        var ml = new MLContext(seed: 3);
        var options = Options(epochs: 3, stepsPerEpoch: null);
        options.LearningRate = 1e6f;
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.DeepVariants.CnnClassifier(options).Fit(TestData.Keyed(ml, TestData.Train(ml, 500))));
        TestContext.WriteLine(error.Message);
        StringAssert.Contains(error.Message, "epoch 1");
        StringAssert.Contains(error.Message, "before any epoch finished");
        StringAssert.Contains(error.Message, "LearningRate is 1E+06");
    }

    [TestMethod]
    public void AFitThatLearnsNothingSaysSoInTheHistoryAndTheLog()
    {
        // Every image is the same, so nothing but the class balance can be learned: one class is predicted for every
        // row and the loss stays at its start.
        var ml = new MLContext(seed: 3);
        var random = new Random(4);
        var rows = Enumerable.Range(0, 300).Select(i => new Datasets.FashionMnistImage { Features = new float[28 * 28], Label = random.Next(3).ToString() }).ToList();
        var messages = new List<(ChannelMessageKind Kind, string Message)>();
        ml.Log += (_, e) => { lock (messages) messages.Add((e.Kind, e.RawMessage)); };
        var history = ml.Transforms.DeepVariants.CnnClassifier(Options(epochs: 3, stepsPerEpoch: null)).Train(ml.Data.LoadFromEnumerable(rows)).History;

        TestContext.WriteLine(string.Join("\n", history.Warnings));
        Assert.IsTrue(history.Warnings.Any(w => w.Contains("predicts one class", StringComparison.Ordinal)), "one class for every row is reported");
        Assert.IsTrue(history.Warnings.Any(w => w.Contains("never left its starting value", StringComparison.Ordinal)), "a loss that did not move is reported");
        Assert.IsTrue(messages.Count(m => m.Kind == ChannelMessageKind.Warning && history.Warnings.Contains(m.Message)) == history.Warnings.Count,
            "each warning is in MLContext.Log as a warning");
    }

    [TestMethod]
    public void ABatchLargerThanTheDataIsReported()
    {
        var ml = new MLContext(seed: 3);
        var messages = new List<(ChannelMessageKind Kind, string Message)>();
        ml.Log += (_, e) => { lock (messages) messages.Add((e.Kind, e.RawMessage)); };
        var options = Options(epochs: 1, stepsPerEpoch: null);
        options.BatchSize = 1000;
        var history = ml.Transforms.DeepVariants.CnnClassifier(options).Train(TestData.Keyed(ml, TestData.Train(ml, 300))).History;
        string warning = history.Warnings.Single(w => w.StartsWith("BatchSize", StringComparison.Ordinal));
        StringAssert.Contains(warning, "BatchSize 1000 is larger than the 300 training rows");
        Assert.IsTrue(messages.Any(m => m.Kind == ChannelMessageKind.Warning && m.Message == warning), "in MLContext.Log as a warning");
    }

    [TestMethod]
    public void AFitThatLearnsHasNoWarnings()
    {
        var ml = new MLContext(seed: 3);
        var history = ml.Transforms.DeepVariants.CnnClassifier(Options(epochs: 2, stepsPerEpoch: null)).Train(TestData.Keyed(ml, TestData.Train(ml, 1000))).History;
        Assert.IsEmpty(history.Warnings, string.Join("\n", history.Warnings));
        Assert.IsFalse(history.Diverged);
        Assert.IsNull(history.StopReason);
    }

    [TestMethod]
    public void LeNetOfDepth100IsRefusedAtOnceWithoutGrowingTheProcess()
    {
        var ml = new MLContext(seed: 3);
        var data = TestData.Keyed(ml, TestData.Train(ml, 100));
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        long before = process.WorkingSet64;
        var clock = Stopwatch.StartNew();
        foreach (var family in new[] { CnnFamily.LeNet, CnnFamily.Vgg })
        {
            var options = Options(epochs: 1, stepsPerEpoch: null);
            options.Architecture = new CnnArchitecture { Family = family, Depth = 100 };
            var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.CnnClassifier(options).Fit(data));
            StringAssert.Contains(error.Message, "Depth");
        }
        // The deepest description the ranges allow is counted on the meta device, not built: its count is refused.
        var deepest = Options(epochs: 1, stepsPerEpoch: null);
        deepest.Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Depth = 16, Width = 1 };
        var tooLarge = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.CnnClassifier(deepest).Fit(data));
        clock.Stop();
        process.Refresh();
        long grown = process.WorkingSet64 - before;
        TestContext.WriteLine($"{clock.ElapsedMilliseconds} ms, resident memory {grown / 1e6:+0.0;-0.0} MB; {tooLarge.Message}");
        StringAssert.Contains(tooLarge.Message, "MaxParameters");
        Assert.IsLessThan(1000, clock.ElapsedMilliseconds, "refused in under a second");
        Assert.IsLessThan(64L << 20, grown, "nothing of the network was allocated");
    }

    [TestMethod]
    public void TheParameterCountsFromDescriptionsAreTheBuiltNetworks()
    {
        // Counted without building (meta device or arithmetic) and counted on the real network must agree, for every family.
        foreach (var (architecture, channels, size) in new[]
        {
            (new CnnArchitecture { Family = CnnFamily.LeNet, Depth = 3 }, 1, 28),
            (new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 4, Width = 8 }, 3, 32),
            (new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 5, Bottleneck = true }, 3, 32),
            (new CnnArchitecture { Family = CnnFamily.Inception, Depth = 3 }, 1, 28),
            (new CnnArchitecture { Family = CnnFamily.DenseNet, Depth = 3, LayersPerBlock = 2 }, 3, 16),
        })
        {
            using var network = CnnNetwork.Create(architecture, channels, size, size, 7);
            Assert.AreEqual(network.ParameterCount, architecture.ParameterCount(channels, size, size, 7), architecture.ToJson());
        }
        foreach (var architecture in new[]
        {
            new Sequences.SequenceArchitecture(),
            new Sequences.SequenceArchitecture { Cell = Sequences.RecurrentCell.Gru, Layers = 3, Bidirectional = true, HiddenSize = 12 },
            new Sequences.SequenceArchitecture { Layers = 2, HiddenSize = 5, Pooling = Sequences.SequencePooling.Attention },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.TemporalConvolution },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.TemporalConvolution, Preset = Sequences.TemporalConvolutionPreset.ResNet, Filters = 8 },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.TemporalConvolution, Preset = Sequences.TemporalConvolutionPreset.InceptionTime },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.TemporalConvolution, Preset = Sequences.TemporalConvolutionPreset.InceptionTime, Depth = 7, EnsembleSize = 2, Filters = 4, Bottleneck = 3, KernelSize = 9 },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.Transformer },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.Transformer, Layers = 3, ModelWidth = 12, Heads = 3, FeedForwardSize = 7, Positions = Sequences.PositionEncoding.Learned, MaxPositions = 9, Pooling = Sequences.SequencePooling.Attention },
            new Sequences.SequenceArchitecture { Family = Sequences.SequenceFamily.Transformer, ModelWidth = 8, Heads = 2, Pooling = Sequences.SequencePooling.Mean },
        })
        {
            using var network = Sequences.SequenceNetwork.Create(architecture, channels: 3, classes: 4);
            Assert.AreEqual(network.ParameterCount, architecture.ParameterCount(3, 4), architecture.ToJson());
        }
        foreach (var options in new[]
        {
            new Autoencoders.DenoisingAutoencoderOptions { Depth = 3, Width = 64, CodeSize = 8 },
            new Autoencoders.DenoisingAutoencoderOptions { Kind = Autoencoders.AutoencoderKind.Convolutional, ImageHeight = 16, ImageWidth = 8, Channels = 3, Depth = 2, Width = 4 },
        })
        {
            int size = options.Kind == Autoencoders.AutoencoderKind.Dense ? 100 : 3 * 16 * 8;
            using var network = Autoencoders.AutoencoderNetwork.Create(options, size);
            Assert.AreEqual(network.ParameterCount, Autoencoders.AutoencoderNetwork.CountParameters(options, size), options.Kind.ToString());
        }
    }
}

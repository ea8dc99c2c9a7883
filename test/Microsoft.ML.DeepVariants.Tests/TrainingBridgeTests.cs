using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>The Torch/ bridge seen through the CNN: devices, schedules, validation, early stopping, guards, cancellation.</summary>
[TestClass]
public sealed class TrainingBridgeTests
{
    private static CnnClassifierOptions Small(Action<CnnClassifierOptions>? change = null)
    {
        var options = new CnnClassifierOptions { ImageHeight = 28, ImageWidth = 28, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 }, Epochs = 1, Device = TorchDeviceKind.Cpu };
        change?.Invoke(options);
        return options;
    }

    [TestMethod]
    public void CudaWithoutAGpuFailsClearlyUnlessFallbackToCpuIsSet()
    {
        if (TorchSharp.torch.cuda.is_available())
            Assert.Inconclusive("This machine has CUDA; the no-GPU behaviour cannot be observed here.");
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 200));

        var error = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.DeepVariants.CnnClassifier(Small(o => o.Device = TorchDeviceKind.Cuda)).Fit(train));
        StringAssert.Contains(error.Message, "FallbackToCpu");

        ml.FallbackToCpu = true;
        Assert.AreEqual("cpu", ml.Transforms.DeepVariants.CnnClassifier(Small(o => o.Device = TorchDeviceKind.Cuda)).Train(train).History.Device);
    }

    [TestMethod]
    public void AutoPicksCudaOnlyWhenTorchSharpReportsIt()
    {
        var ml = new MLContext(seed: 1);
        var history = ml.Transforms.DeepVariants.CnnClassifier(Small(o => o.Device = TorchDeviceKind.Auto))
            .Train(TestData.Keyed(ml, TestData.Train(ml, 200))).History;
        Assert.AreEqual(TorchSharp.torch.cuda.is_available() ? "cuda:0" : "cpu", history.Device);
    }

    [TestMethod]
    public void NegativeGpuDeviceIdIsRejected()
    {
        var ml = new MLContext(seed: 1) { GpuDeviceId = -2 };
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.CnnClassifier(Small(o => o.Device = TorchDeviceKind.Auto))
            .Fit(TestData.Keyed(ml, TestData.Train(ml, 50))));
        StringAssert.Contains(error.Message, "GpuDeviceId");
    }

    [TestMethod]
    public void StepAndCosineSchedulesSetEachEpochsLearningRate()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 100));
        double[] Rates(LearningRateSchedule schedule) => ml.Transforms.DeepVariants.CnnClassifier(Small(o =>
            {
                o.Epochs = 4; o.LearningRate = 0.01f; o.Schedule = schedule; o.StepSize = 2; o.StepGamma = 0.5f;
            })).Train(train).History.Epochs.Select(e => e.LearningRate).ToArray();

        CollectionAssert.AreEqual(new[] { 0.01, 0.01, 0.005, 0.005 }, Rates(LearningRateSchedule.Step).Select(r => Math.Round(r, 6)).ToArray());
        double[] expectedCosine = Enumerable.Range(0, 4).Select(e => Math.Round(0.01 * 0.5 * (1 + Math.Cos(Math.PI * e / 4)), 6)).ToArray();
        CollectionAssert.AreEqual(expectedCosine, Rates(LearningRateSchedule.Cosine).Select(r => Math.Round(r, 6)).ToArray());
    }

    [TestMethod]
    public void ProgressReportsEveryBatchAndEveryEpoch()
    {
        var ml = new MLContext(seed: 1);
        var events = new List<TrainingProgress>();
        ml.Transforms.DeepVariants.CnnClassifier(Small(o => { o.Epochs = 2; o.BatchSize = 50; o.Progress = new SynchronousProgress(events.Add); }))
            .Fit(TestData.Keyed(ml, TestData.Train(ml, 200)));
        Assert.AreEqual(2 * 4, events.Count(e => !e.IsEpochEnd), "4 batches in each of 2 epochs");
        Assert.AreEqual(2, events.Count(e => e.IsEpochEnd));
        Assert.IsTrue(events.All(e => e.Batches == 4 && e.Epochs == 2 && double.IsFinite(e.Loss)));
    }

    [TestMethod]
    public void MessagesReachTheMLContextLog()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        ml.Transforms.DeepVariants.CnnClassifier(Small()).Fit(TestData.Keyed(ml, TestData.Train(ml, 100)));
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("Epoch 1/1: loss")), string.Join("\n", messages.Take(20)));
    }

    [TestMethod]
    public void EarlyStoppingKeepsTheBestValidationEpoch()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 300));
        var validation = TestData.Keyed(ml, TestData.Test(ml, 300));
        var result = ml.Transforms.DeepVariants.CnnClassifier(Small(o => { o.Epochs = 12; o.EarlyStoppingPatience = 1; o.LearningRate = 0.02f; }))
            .Train(train, validation);

        var epochs = result.History.Epochs;
        Assert.IsTrue(epochs.All(e => e.ValidationMetric.HasValue && e.ValidationLoss.HasValue));
        int best = epochs.Select((e, i) => (e.ValidationMetric!.Value, Epoch: i + 1)).MaxBy(p => p.Value).Epoch;
        Assert.AreEqual(best, result.History.BestEpoch);
        Assert.IsTrue(result.History.StoppedEarly, $"validation accuracy per epoch: {string.Join(", ", epochs.Select(e => e.ValidationMetric))}");
        Assert.IsLessThan(12, epochs.Count);

        // The fitted model is the best epoch's: its accuracy on the validation data is the one recorded then.
        double accuracy = ml.MulticlassClassification.Evaluate(result.Model.Transform(validation)).MicroAccuracy;
        Assert.AreEqual(epochs[best - 1].ValidationMetric!.Value, accuracy, 1e-9);
    }

    [TestMethod]
    public void ALossThatBecomesNaNStopsTrainingWithAClearError()
    {
        var ml = new MLContext(seed: 1);
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.DeepVariants.CnnClassifier(Small(o =>
            {
                o.Optimizer = OptimizerKind.Sgd; o.LearningRate = 1e12f; o.Epochs = 3; o.Architecture.Dropout = 0;
            })).Fit(TestData.Keyed(ml, TestData.Train(ml, 600))));
        StringAssert.Contains(error.Message, "the loss became");
        StringAssert.Contains(error.Message, "LearningRate");
    }

    [TestMethod]
    public void CancellationStopsBetweenBatches()
    {
        var ml = new MLContext(seed: 1);
        using var cancel = new CancellationTokenSource();
        int batches = 0;
        Assert.Throws<OperationCanceledException>(() => ml.Transforms.DeepVariants.CnnClassifier(Small(o =>
            {
                o.Epochs = 5; o.BatchSize = 20; o.CancellationToken = cancel.Token;
                o.Progress = new SynchronousProgress(p => { if (++batches == 3) cancel.Cancel(); });
            })).Fit(TestData.Keyed(ml, TestData.Train(ml, 200))));
        Assert.AreEqual(3, batches, "no batch runs after cancellation");
    }

    [TestMethod]
    public void TheMLNetInternalsThisPackageUsesAreStillThere()
    {
        // Environment, seed and GPU settings of the catalog; the multiclass head; schema-shape columns.
        var ml = new MLContext(seed: 42) { GpuDeviceId = 1, FallbackToCpu = true };
        var estimator = ml.Transforms.DeepVariants.CnnClassifier(Small());
        var data = TestData.Keyed(ml, TestData.Train(ml, 20));
        var create = typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic, [typeof(DataViewSchema)])!;
        var output = estimator.GetOutputSchema((SchemaShape)create.Invoke(null, [data.Schema])!);
        var predicted = output.Single(c => c.Name == "PredictedLabel");
        Assert.IsTrue(predicted.IsKey);
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, output.Single(c => c.Name == "Score").Kind);
        Assert.IsNotNull(ml.MulticlassClassification.Trainers.Cnn(28, 28));
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests need the callback inline.</summary>
    private sealed class SynchronousProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

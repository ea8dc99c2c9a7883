using System.Globalization;
using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Training callbacks, as Keras users know them: stop training, lower the learning rate, log the history.</summary>
[TestClass]
public sealed class CallbackTests
{
    public TestContext TestContext { get; set; } = null!;

    private static CnnClassifierOptions Small(int epochs) => new()
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = epochs, BatchSize = 50, LearningRate = 0.004f, Device = TorchDeviceKind.Cpu,
        Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 },
    };

    [TestMethod]
    public void ReduceLearningRateOnPlateauDropsTheRateAfterPatienceEpochsWithoutImprovement()
    {
        var ml = new MLContext(seed: 1);
        var options = Small(epochs: 6);
        // No change is big enough to count as an improvement after the first epoch, so the rate drops every 2 epochs.
        options.Callbacks.Add(new ReduceLearningRateOnPlateau { Factor = 0.5, Patience = 2, MinimumDelta = 1e9 });
        var history = ml.Transforms.DeepVariants.CnnClassifier(options).Train(TestData.Keyed(ml, TestData.Train(ml, 200))).History;
        double[] rates = history.Epochs.Select(e => Math.Round(e.LearningRate / 0.004, 6)).ToArray();
        CollectionAssert.AreEqual(new[] { 1, 1, 1, 0.5, 0.5, 0.25 }, rates, string.Join(", ", rates));
    }

    [TestMethod]
    public void ACallbackStopsTrainingAndTheCsvLoggerWritesEveryEpoch()
    {
        var ml = new MLContext(seed: 1);
        string csv = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"history-{Guid.NewGuid():N}.csv");
        var options = Small(epochs: 10);
        options.Callbacks.Add(new CsvLogger(csv));
        options.Callbacks.Add(new EpochCallback(e => { if (e.Progress.Epoch == 3) e.StopTraining("three epochs are enough"); }));
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var history = ml.Transforms.DeepVariants.CnnClassifier(options).Train(TestData.Keyed(ml, TestData.Train(ml, 200))).History;

        Assert.AreEqual(3, history.Epochs.Count);
        Assert.IsTrue(history.StoppedEarly);
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("three epochs are enough")), "the reason reaches the log");
        string[] lines = File.ReadAllLines(csv);
        Assert.AreEqual("epoch,loss,metric,validation_loss,validation_metric,learning_rate,seconds", lines[0]);
        Assert.HasCount(4, lines, "a header and one line per epoch");
        for (int i = 0; i < 3; i++)
        {
            string[] cells = lines[i + 1].Split(',');
            Assert.AreEqual(i + 1, int.Parse(cells[0], CultureInfo.InvariantCulture));
            Assert.AreEqual(history.Epochs[i].Loss, double.Parse(cells[1], CultureInfo.InvariantCulture), 1e-12);
            Assert.AreEqual(history.Epochs[i].Metric!.Value, double.Parse(cells[2], CultureInfo.InvariantCulture), 1e-12);
        }
        Assert.IsTrue(history.Epochs.All(e => e.Metric is > 0 and <= 1), "the training accuracy is recorded");
    }

    [TestMethod]
    public void EarlyStoppingAsACallbackEqualsTheEarlyStoppingOption()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 300));
        var validation = TestData.Keyed(ml, TestData.Test(ml, 300));
        var byOption = Small(epochs: 8);
        byOption.LearningRate = 0.02f;
        byOption.EarlyStoppingPatience = 1;
        var byCallback = Small(epochs: 8);
        byCallback.LearningRate = 0.02f;
        byCallback.Callbacks.Add(new EarlyStopping { Patience = 1 });
        var a = ml.Transforms.DeepVariants.CnnClassifier(byOption).Train(train, validation).History;
        var b = ml.Transforms.DeepVariants.CnnClassifier(byCallback).Train(train, validation).History;
        Assert.AreEqual(a.Epochs.Count, b.Epochs.Count);
        Assert.AreEqual(a.BestEpoch, b.BestEpoch);
        CollectionAssert.AreEqual(a.Epochs.Select(e => e.ValidationLoss).ToArray(), b.Epochs.Select(e => e.ValidationLoss).ToArray());
    }
}

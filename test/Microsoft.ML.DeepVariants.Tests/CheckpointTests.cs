using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Checkpoints after every epoch: a killed process resumes where it stopped and ends with the same model.</summary>
[TestClass]
public sealed class CheckpointTests
{
    public TestContext TestContext { get; set; } = null!;

    private string Folder(string name) => Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"{name}-{Guid.NewGuid():N}");

    [TestMethod]
    public void AKilledTrainingProcessResumesAfterItsLastEpochAndEndsWithTheSameModel()
    {
        // TrainingHost: a CNN with augmentation, dropout, a cosine schedule and ReduceLearningRateOnPlateau, 4 epochs.
        string root = Folder("kill");
        Directory.CreateDirectory(root);
        var (code, output) = Hosts.Run(Hosts.Training, [Path.Combine(root, "whole"), Path.Combine(root, "whole.bin")], TimeSpan.FromMinutes(3));
        Assert.AreEqual(0, code, output);

        string checkpoint = Path.Combine(root, "killed");
        using (var process = Hosts.Start(Hosts.Training, [checkpoint, Path.Combine(root, "killed.bin"), "--pause-after", "2"]))
        {
            string? line;
            var seen = new List<string>();
            while ((line = process.StandardOutput.ReadLine()) is not null && !line.StartsWith("PAUSED", StringComparison.Ordinal))
                seen.Add(line);
            Assert.AreEqual("PAUSED 2", line, string.Join("\n", seen));
            process.Kill(entireProcessTree: true); // SIGKILL: no cancellation, no clean-up
            process.WaitForExit();
        }
        Assert.IsTrue(File.Exists(Path.Combine(checkpoint, "training.checkpoint")), "epoch 2's checkpoint survived the kill");
        Assert.IsFalse(Directory.GetFiles(checkpoint).Any(f => f.Contains(".tmp-")), "nothing half-written is left");

        (code, output) = Hosts.Run(Hosts.Training, [checkpoint, Path.Combine(root, "killed.bin")], TimeSpan.FromMinutes(3));
        TestContext.WriteLine(output);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "Resuming from the checkpoint");
        StringAssert.Contains(output, "after epoch 2");
        Assert.IsFalse(output.Contains("Epoch 1/4") || output.Contains("Epoch 2/4"), "epochs 1 and 2 do not run again");
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(root, "whole.bin")), File.ReadAllBytes(Path.Combine(root, "killed.bin")),
            "the resumed run's predictions are bit-identical to the uninterrupted run's");
        Assert.IsFalse(File.Exists(Path.Combine(checkpoint, "training.checkpoint")), "a finished run deletes its checkpoint");
    }

    [TestMethod]
    public void AStoppedFitResumesInTheSameProcessAndACheckpointOfAnotherRunIsRefused()
    {
        var ml = new MLContext(seed: 3);
        var train = TestData.Keyed(ml, TestData.Train(ml, 300));
        var test = TestData.Keyed(ml, TestData.Test(ml, 100));
        string folder = Folder("stop");
        CnnClassifierOptions Options(float learningRate = 3e-3f) => new()
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 3, BatchSize = 30, LearningRate = learningRate, Device = TorchDeviceKind.Cpu,
            Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 }, Optimizer = OptimizerKind.AdamW, WeightDecay = 1e-3f,
        };
        var whole = TestData.Scores(ml.Transforms.DeepVariants.CnnClassifier(Options()).Fit(train).Transform(test));

        // Cancelled at the first batch of epoch 2: epoch 1's checkpoint stays.
        using var cancel = new CancellationTokenSource();
        var stopped = Options();
        stopped.CheckpointDirectory = folder;
        stopped.CancellationToken = cancel.Token;
        stopped.Progress = new Inline(p => { if (p.Epoch == 2) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => ml.Transforms.DeepVariants.CnnClassifier(stopped).Fit(train));
        Assert.IsTrue(File.Exists(Path.Combine(folder, "training.checkpoint")));

        var other = Options(learningRate: 1e-2f);
        other.CheckpointDirectory = folder;
        var refused = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Transforms.DeepVariants.CnnClassifier(other).Fit(train));
        StringAssert.Contains(refused.Message, "CheckpointDirectory");
        StringAssert.Contains(refused.Message, folder);

        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var resumed = Options();
        resumed.CheckpointDirectory = folder;
        var result = ml.Transforms.DeepVariants.CnnClassifier(resumed).Train(train);
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("Resuming") && m.Contains("after epoch 1")), string.Join("\n", messages.Where(m => m.Contains("Epoch") || m.Contains("Resum"))));
        Assert.AreEqual(3, result.History.Epochs.Count, "the history holds the epoch from before the stop too");
        Assert.AreEqual(0f, TestData.MaxAbsDifference(whole, TestData.Scores(result.Model.Transform(test))), "the same model as an uninterrupted fit");
    }

    private sealed class Inline(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

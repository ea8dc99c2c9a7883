using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

[TestClass]
[DoNotParallelize]
public sealed class CnnExperimentTests
{
    public TestContext TestContext { get; set; } = null!;

    private static (IDataView Train, IDataView Validation) Data(MLContext ml)
    {
        var images = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 800);
        var keys = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new LabelRow { Label = n }));
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys);
        var train = ml.Data.LoadFromEnumerable(images.Take(600));
        var validation = ml.Data.LoadFromEnumerable(images.Skip(600));
        return (toKey.Fit(train).Transform(train), toKey.Fit(validation).Transform(validation));
    }

    private ImageClassificationExperimentSettings Settings(string journal) => new()
    {
        ImageHeight = 28, ImageWidth = 28, JournalPath = journal, MaxTrials = 4, EpochsPerTrial = 3, Seed = 11,
        Families = [CnnFamily.LeNet, CnnFamily.Vgg], Device = TorchDeviceKind.Cpu,
    };

    [TestMethod]
    public void ACnnSweepIsReproducibleAndItsBestModelIsRefitSavedAndLoaded()
    {
        var ml = new MLContext(seed: 1);
        var (train, validation) = Data(ml);
        string folder = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"cnn-sweep-{Guid.NewGuid():N}");
        List<string> Journal(string path)
        {
            using var journal = new SweepJournal(path);
            return journal.Trials(SearchSpaces.Cnn([CnnFamily.LeNet, CnnFamily.Vgg]))
                .Select(t => $"{t.Id}|{t.Status}|{t.Configuration.ToJson()}|{string.Join(",", t.EpochMetrics.Select(m => m.ToString("R")))}|{t.Reason}").ToList();
        }

        SweepResult result;
        using (var experiment = ml.DeepVariantsAutoML.CreateImageClassificationExperiment(train, validation, Settings(Path.Combine(folder, "a.db"))))
        {
            result = experiment.Run();
            experiment.RefitBest(result, Path.Combine(folder, "best.zip"));
        }
        using (var again = ml.DeepVariantsAutoML.CreateImageClassificationExperiment(train, validation, Settings(Path.Combine(folder, "b.db"))))
            again.Run();

        TestContext.WriteLine(string.Join("\n", result.Leaderboard.Select(t => $"{t.Id}: {t.Status} {t.BestMetric:P1} after {t.Epochs} epochs, {t.Configuration}")));
        CollectionAssert.AreEqual(Journal(Path.Combine(folder, "a.db")), Journal(Path.Combine(folder, "b.db")), "one worker, same seed: same journal apart from timestamps");
        Assert.AreEqual(4, result.Trials.Count);
        Assert.IsTrue(result.Trials.All(t => t.Configuration.GetString("family") is "LeNet" or "Vgg"));

        // The best configuration, refit on training plus validation data, is an ordinary ML.NET model with its configuration beside it.
        var model = new MLContext().Model.Load(Path.Combine(folder, "best.zip"), out _);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(validation));
        TestContext.WriteLine($"best trial {result.Best!.Id}: validation {result.Best.BestMetric:P1}; refit model on (seen) validation rows {metrics.MicroAccuracy:P1}");
        Assert.IsGreaterThan(0.6, metrics.MicroAccuracy);
        Assert.AreEqual(result.Best.Configuration.ToJson(), File.ReadAllText(Path.Combine(folder, "best.json")));
        Assert.IsFalse(File.Exists(Path.Combine(folder, "best.zip.tmp")));
    }

    private sealed class LabelRow
    {
        public string Label { get; set; } = "";
    }
}

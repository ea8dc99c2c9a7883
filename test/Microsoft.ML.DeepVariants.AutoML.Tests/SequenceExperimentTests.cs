using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.Sequences;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

[TestClass]
[DoNotParallelize]
public sealed class SequenceExperimentTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void EveryConfigurationOfTheSequenceSpaceIsAValidNetworkOfItsFamily()
    {
        var space = SearchSpaces.Sequence();
        var random = new Random(3);
        var seen = new HashSet<string>();
        for (int i = 0; i < 300; i++)
        {
            var configuration = space.Sample(random);
            var options = SearchSpaces.ToSequenceOptions(configuration, channels: 3);
            options.Validate();
            var a = options.Architecture;
            Assert.AreEqual(configuration.GetString("family"), a.Family.ToString());
            Assert.IsLessThan(options.MaxParameters, a.ParameterCount(3, 5), configuration.ToJson());
            Assert.IsTrue(a.Kernels.Max() <= 24, "every configuration fits series of 24 steps");
            seen.Add(a.Family == SequenceFamily.TemporalConvolution ? a.Preset.ToString() : a.Family.ToString());
        }
        CollectionAssert.AreEquivalent(new[] { "Recurrent", "Fcn", "ResNet", "InceptionTime", "Transformer" }, seen.ToArray());
    }

    [TestMethod]
    public void ASequenceSweepTriesSeveralFamiliesOnARealProblem()
    {
        // ItalyPowerDemand: 67 training days, 24 hourly values; 50 train the trials and 17 validate them.
        var ml = new MLContext(seed: 1);
        var problem = TimeSeriesFile.Read(Path.Combine(AppContext.BaseDirectory, "Data", "timeseries", "ItalyPowerDemand", "ItalyPowerDemand_TRAIN.ts"));
        var all = TimeSeriesFile.ToDataView(ml, problem);
        var train = ml.Data.TakeRows(all, 50);
        var validation = ml.Data.SkipRows(all, 50);
        string journal = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"sequence-sweep-{Guid.NewGuid():N}.db");
        using var experiment = ml.DeepVariantsAutoML.CreateSequenceClassificationExperiment(train, validation, channels: 1, new ExperimentSettings
        {
            JournalPath = journal, MaxTrials = 6, EpochsPerTrial = 6, Seed = 4, Search = SearchAlgorithm.Random, EarlyStopping = TrialStopping.None,
        });
        var result = experiment.Run();
        TestContext.WriteLine(string.Join("\n", result.Leaderboard.Select(t => $"{t.Id}: {t.Status} {t.BestMetric:P1} after {t.Epochs} epochs, {t.Configuration}")));
        Assert.AreEqual(6, result.Trials.Count);
        Assert.IsTrue(result.Trials.All(t => t.Status != TrialStatus.Failed), "every configuration trains");
        Assert.IsGreaterThanOrEqualTo(2, result.Trials.Select(t => t.Configuration.GetString("family")).Distinct().Count(), "the sweep chooses among families");
        Assert.IsGreaterThanOrEqualTo(0.8, result.Best!.BestMetric!.Value, "the best of six short trials tells winter from summer");
    }
}

using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.Tabular;
using Microsoft.ML.DeepVariants.Tests;
using static Microsoft.ML.DeepVariants.Tests.TabularTables;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

[TestClass]
[DoNotParallelize]
public sealed class TabularExperimentTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly TabularNetworkOptions Columns = new()
    {
        NumericColumnNames = DiamondRow.Numeric, CategoricalColumnNames = DiamondRow.Categorical,
        LabelColumnName = nameof(DiamondRow.Price), Task = TabularTaskKind.Regression,
    };

    [TestMethod]
    public void EveryConfigurationOfTheTabularSpaceIsAValidNetwork()
    {
        var space = SearchSpaces.Tabular();
        var random = new Random(5);
        var widths = new HashSet<int>();
        for (int i = 0; i < 300; i++)
        {
            var configuration = space.Sample(random);
            var options = SearchSpaces.ToTabularOptions(configuration, Columns);
            options.Validate();
            CollectionAssert.AreEqual(Columns.CategoricalColumnNames, options.CategoricalColumnNames);
            Assert.AreEqual(TabularTaskKind.Regression, options.Task);
            Assert.IsLessThan(options.MaxParameters, options.ParameterCount(numericSlots: 6, categoryCounts: [5, 7, 8], headOutputs: [1]), configuration.ToJson());
            widths.Add(options.Width);
        }
        Assert.IsGreaterThan(50, widths.Count, "the width is searched on a log scale, not a handful of values");
    }

    [TestMethod]
    public void ATabularSweepRanksRegressionsAndRefitsTheBestOnBothSplits()
    {
        TabularTables.Folder = Path.Combine(AppContext.BaseDirectory, "Data", "tabular");
        var ml = new MLContext(seed: 1);
        var (rows, _) = Diamonds();
        // 2,000 diamonds in a random order (the file runs through prices in order): 1,600 train the trials and 400 validate them.
        var shuffle = new Random(7);
        var slice = rows.Where((_, i) => i % 20 == 0).Take(2000).OrderBy(_ => shuffle.Next()).ToList();
        var train = ml.Data.LoadFromEnumerable(slice.Take(1600));
        var validation = ml.Data.LoadFromEnumerable(slice.Skip(1600));
        string folder = TestContext.TestRunResultsDirectory ?? Path.GetTempPath();
        string journal = Path.Combine(folder, $"tabular-sweep-{Guid.NewGuid():N}.db");
        using var experiment = ml.DeepVariantsAutoML.CreateTabularExperiment(train, validation, Columns, new ExperimentSettings
        {
            JournalPath = journal, MaxTrials = 4, EpochsPerTrial = 4, Seed = 2, Search = SearchAlgorithm.Random, EarlyStopping = TrialStopping.None,
        });
        var result = experiment.Run();
        TestContext.WriteLine(string.Join("\n", result.Leaderboard.Select(t => $"{t.Id}: {t.Status} {t.BestMetric:F4} after {t.Epochs} epochs, {t.Configuration}")));
        Assert.AreEqual(4, result.Trials.Count);
        Assert.IsTrue(result.Trials.All(t => t.Status != TrialStatus.Failed), "every configuration trains");
        // The metric is minus the mean squared error of the standardized price: above -0.15 explains 85 % of its variance.
        Assert.IsGreaterThan(-0.15, result.Best!.BestMetric!.Value);
        Assert.IsLessThanOrEqualTo(0.0, result.Best.BestMetric.Value);

        string model = Path.Combine(folder, $"tabular-best-{Guid.NewGuid():N}.zip");
        experiment.RefitBest(result, model);
        var refit = ml.Model.Load(model, out _);
        var metrics = ml.Regression.Evaluate(refit.Transform(validation), nameof(DiamondRow.Price));
        TestContext.WriteLine($"refit on 2,000 rows: validation R² {metrics.RSquared:F4}");
        Assert.IsGreaterThan(0.9, metrics.RSquared);
        File.Delete(model);
    }
}

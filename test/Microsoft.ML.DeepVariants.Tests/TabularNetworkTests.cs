using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Tabular;
using static Microsoft.ML.DeepVariants.Tests.TabularTables;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>The tabular network on slices of real tables: the three tasks through ML.NET's catalogs and evaluators, embeddings, missing values, several labels, parity, Save/Load, bad inputs.</summary>
[TestClass]
public sealed class TabularNetworkTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly Lazy<(List<LetterRow> Train, List<LetterRow> Test)> LetterRows = new(Letters);
    private static readonly Lazy<(List<DiamondRow> Train, List<DiamondRow> Test)> DiamondRows = new(Diamonds);

    private static IDataView Load<T>(MLContext ml, IEnumerable<T> rows) where T : class => ml.Data.LoadFromEnumerable(rows);

    // diamonds.csv is ordered by price in long runs: slices take every k-th row, so they span every price (and every letter).
    private static List<T> Every<T>(List<T> rows, int rowCount) => rows.Where((_, i) => i % (rows.Count / rowCount) == 0).Take(rowCount).ToList();

    private static TabularNetworkOptions DiamondOptions(int epochs = 12) => new()
    {
        NumericColumnNames = DiamondRow.Numeric, CategoricalColumnNames = DiamondRow.Categorical,
        LabelColumnName = nameof(DiamondRow.Price), Task = TabularTaskKind.Regression, Epochs = epochs, Width = 128, Depth = 2, Seed = 1,
    };

    [TestMethod]
    public void MulticlassTrainerLearnsLetterRecognitionAndEvaluatesWithMLNet()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = LetterRows.Value;
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", nameof(LetterRow.Letter))
            .Append(ml.MulticlassClassification.Trainers.TabularNetwork(epochs: 10, width: 256, depth: 2));
        var model = pipeline.Fit(Load(ml, Every(train, 6000)));
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(Load(ml, Every(test, 2000))));
        TestContext.WriteLine($"Letter, 4,000 training rows: accuracy {metrics.MicroAccuracy:P2}");
        // 26 classes; the benchmark's LightGBM reaches 96.6 % with all 16,000 training rows.
        Assert.IsGreaterThan(0.88, metrics.MicroAccuracy);
    }

    [TestMethod]
    public void BinaryTrainerSeparatesTheTwoHalvesOfTheAlphabet()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = LetterRows.Value;
        var trainer = ml.BinaryClassification.Trainers.TabularNetwork(new TabularNetworkOptions
        {
            LabelColumnName = nameof(LetterRow.SecondHalf), Task = TabularTaskKind.Binary, Epochs = 10, Width = 256, Depth = 2, Seed = 1,
        });
        var scored = trainer.Fit(Load(ml, Every(train, 6000))).Transform(Load(ml, Every(test, 2000)));
        var metrics = ml.BinaryClassification.Evaluate(scored, nameof(LetterRow.SecondHalf));
        TestContext.WriteLine($"Letter A-M vs N-Z: accuracy {metrics.Accuracy:P2}, AUC {metrics.AreaUnderRocCurve:F4}, log-loss {metrics.LogLoss:F4}");
        Assert.IsGreaterThan(0.9, metrics.Accuracy);
        Assert.IsGreaterThan(0.96, metrics.AreaUnderRocCurve);
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        Assert.IsTrue(probabilities.All(p => p is >= 0 and <= 1), "Probability is a sigmoid of the logit.");
        CollectionAssert.AreEqual(scored.GetColumn<float>("Score").Select(s => s > 0).ToArray(), scored.GetColumn<bool>("PredictedLabel").ToArray());
    }

    [TestMethod]
    public void RegressionOnDiamondsUsesTheCategoryEmbeddings()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = DiamondRows.Value;
        var model = ml.Transforms.DeepVariants.TabularNetwork(DiamondOptions()).Fit(Load(ml, Every(train, 8000)));
        var testRows = Every(test, 2000).ToList();
        var metrics = ml.Regression.Evaluate(model.Transform(Load(ml, testRows)), nameof(DiamondRow.Price));
        // Clarity permuted across the test rows: the same values, no longer with their diamonds.
        var shuffled = new Random(3);
        var clarities = testRows.Select(r => r.Clarity).OrderBy(_ => shuffled.Next()).ToArray();
        var permuted = testRows.Select((r, i) => new DiamondRow
        {
            Carat = r.Carat, Cut = r.Cut, Color = r.Color, Clarity = clarities[i], Depth = r.Depth, Table = r.Table, Price = r.Price, X = r.X, Y = r.Y, Z = r.Z,
        });
        var broken = ml.Regression.Evaluate(model.Transform(Load(ml, permuted)), nameof(DiamondRow.Price));
        TestContext.WriteLine($"diamonds, 8,000 training rows: RMSE {metrics.RootMeanSquaredError:F1}, R² {metrics.RSquared:F4}; clarity permuted: RMSE {broken.RootMeanSquaredError:F1}");
        Assert.IsGreaterThan(0.95, metrics.RSquared);
        Assert.IsLessThan(850, metrics.RootMeanSquaredError);
        Assert.IsGreaterThan(1.5 * metrics.RootMeanSquaredError, broken.RootMeanSquaredError, "Clarity's embedding carries what the price depends on.");
    }

    [TestMethod]
    public void ServedGraphMatchesTheNetworkAndSaveLoadKeepsEveryTask()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = DiamondRows.Value;
        var options = DiamondOptions(epochs: 2);
        options.Labels = [new TabularLabel(nameof(DiamondRow.Price), TabularTaskKind.Regression), new TabularLabel(nameof(DiamondRow.Cut), TabularTaskKind.Multiclass),
            new TabularLabel("Expensive", TabularTaskKind.Binary)];
        options.NumericColumnNames = [nameof(DiamondRow.Carat), nameof(DiamondRow.Depth), nameof(DiamondRow.Table)];
        options.CategoricalColumnNames = [nameof(DiamondRow.Color), nameof(DiamondRow.Clarity)];
        options.Normalization = TabularNormalization.Layer;
        var withExpensive = ml.Transforms.CustomMapping<DiamondRow, ExpensiveRow>((r, e) => e.Expensive = r.Price > 2400, null);
        var trainData = withExpensive.Fit(Load(ml, Every(train, 1500))).Transform(Load(ml, Every(train, 1500)));
        var result = ml.Transforms.DeepVariants.TabularNetwork(options).Train(trainData);
        // A few rows with a missing number and an unseen category: served the same way.
        var rows = Every(test, 64).Select((r, i) => new DiamondRow
        {
            Carat = i % 7 == 0 ? float.NaN : r.Carat, Cut = r.Cut, Color = i % 9 == 0 ? "never seen" : r.Color, Clarity = r.Clarity,
            Depth = r.Depth, Table = r.Table, Price = r.Price, X = r.X, Y = r.Y, Z = r.Z,
        }).ToList();
        var data = Load(ml, rows);
        var scored = result.Model.Transform(data);

        using var network = result.Trained!.Restore();
        var prepared = result.Trained.Prepare(data);
        // The network's row: the numbers, then each category's key (0 for the unseen colour).
        var colors = prepared.GetColumn<uint>("DeepVariants.Tabular.Key.Color").ToArray();
        var clarities = prepared.GetColumn<uint>("DeepVariants.Tabular.Key.Clarity").ToArray();
        var inputs = prepared.GetColumn<VBuffer<float>>("DeepVariants.Tabular.Inputs").Select((v, i) => v.DenseValues().Append(colors[i]).Append(clarities[i]).ToArray()).ToArray();
        Assert.IsTrue(colors.Where((_, i) => i % 9 == 0).All(k => k == 0), "An unseen colour is the missing key.");
        using var x = TorchSharp.torch.tensor(inputs.SelectMany(v => v).ToArray(), [inputs.Length, inputs[0].Length]);
        using var output = network.call(x);
        var prices = Every(train, 1500).Select(r => (double)r.Price).ToArray();
        double mean = prices.Average(), sd = Math.Sqrt(prices.Select(p => (p - mean) * (p - mean)).Average());
        var expectedPrice = output.select(1, 0).data<float>().Select(v => (float)(v * sd + mean)).ToArray();
        int cuts = ((VectorDataViewType)scored.Schema["Score.Cut"].Type).Size;
        var expectedCut = TorchSharp.torch.nn.functional.softmax(output.narrow(1, 1, cuts), 1);
        var expectedProbability = TorchSharp.torch.sigmoid(output.select(1, 1 + cuts)).data<float>().ToArray();

        var price = scored.GetColumn<float>("Score.Price").ToArray();
        var cut = TestData.Scores(scored, "Score.Cut");
        var probability = scored.GetColumn<float>("Probability.Expensive").ToArray();
        float priceGap = price.Zip(expectedPrice, (a, b) => Math.Abs(a - b) / Math.Max(1, Math.Abs(b))).Max();
        float cutGap = TestData.MaxAbsDifference(cut, Enumerable.Range(0, rows.Count).Select(i => expectedCut[i].data<float>().ToArray()).ToArray());
        float probabilityGap = probability.Zip(expectedProbability, (a, b) => Math.Abs(a - b)).Max();
        TestContext.WriteLine($"parity: price (relative) {priceGap:E2}, cut {cutGap:E2}, expensive {probabilityGap:E2}");
        Assert.IsLessThanOrEqualTo(1e-4f, priceGap);
        Assert.IsLessThanOrEqualTo(1e-4f, cutGap);
        Assert.IsLessThanOrEqualTo(1e-4f, probabilityGap);
        Assert.IsTrue(price.All(float.IsFinite), "A missing carat and an unseen colour still give a price.");

        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"tabular-{Guid.NewGuid():N}.zip");
        ml.Model.Save(result.Model, trainData.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _).Transform(data);
        CollectionAssert.AreEqual(price, loaded.GetColumn<float>("Score.Price").ToArray());
        CollectionAssert.AreEqual(probability, loaded.GetColumn<float>("Probability.Expensive").ToArray());
        Assert.AreEqual(0f, TestData.MaxAbsDifference(cut, TestData.Scores(loaded, "Score.Cut")));
        CollectionAssert.AreEqual(scored.GetColumn<uint>("PredictedLabel.Cut").ToArray(), loaded.GetColumn<uint>("PredictedLabel.Cut").ToArray());
        CollectionAssert.AreEqual(scored.GetColumn<bool>("PredictedLabel.Expensive").ToArray(), loaded.GetColumn<bool>("PredictedLabel.Expensive").ToArray());
        File.Delete(path);
    }

    private sealed class ExpensiveRow
    {
        public bool Expensive { get; set; }
    }

    [TestMethod]
    public void MissingNumbersAreImputedWithAnIndicatorOrRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = DiamondRows.Value;
        // Carat, the strongest feature, missing on a fifth of the rows.
        IEnumerable<DiamondRow> Holes(IEnumerable<DiamondRow> rows) => rows.Select((r, i) => new DiamondRow
        {
            Carat = i % 5 == 0 ? float.NaN : r.Carat, Cut = r.Cut, Color = r.Color, Clarity = r.Clarity, Depth = r.Depth, Table = r.Table,
            Price = r.Price, X = r.X, Y = r.Y, Z = r.Z,
        });
        var model = ml.Transforms.DeepVariants.TabularNetwork(DiamondOptions(epochs: 6)).Fit(Load(ml, Holes(Every(train, 4000))));
        var metrics = ml.Regression.Evaluate(model.Transform(Load(ml, Holes(Every(test, 1000)))), nameof(DiamondRow.Price));
        TestContext.WriteLine($"carat missing on 20 % of rows: R² {metrics.RSquared:F4}");
        Assert.IsGreaterThan(0.9, metrics.RSquared);

        // Every numeric slot missing somewhere (in different rows): each gets its indicator input in the served graph.
        var everywhere = Every(train, 300).Select((r, i) => new DiamondRow
        {
            Carat = i % 6 == 0 ? float.NaN : r.Carat, Depth = i % 6 == 1 ? float.NaN : r.Depth, Table = i % 6 == 2 ? float.NaN : r.Table,
            X = i % 6 == 3 ? float.NaN : r.X, Y = i % 6 == 4 ? float.NaN : r.Y, Z = i % 6 == 5 ? float.NaN : r.Z,
            Cut = r.Cut, Color = r.Color, Clarity = r.Clarity, Price = r.Price,
        });
        var graph = global::Onnx.ModelProto.Parser.ParseFrom(ml.Transforms.DeepVariants.TabularNetwork(DiamondOptions(epochs: 1)).Train(Load(ml, everywhere)).OnnxModel);
        CollectionAssert.AreEqual(new long[] { 6 }, graph.Graph.Initializer.Single(t => t.Name == "indicator_slots").Dims.ToArray());

        var strict = DiamondOptions(epochs: 1);
        strict.HandleMissing = false;
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.TabularNetwork(strict).Fit(Load(ml, Holes(Every(train, 50)))));
        StringAssert.Contains(error.Message, "'Carat'");
        StringAssert.Contains(error.Message, "HandleMissing");
    }

    [TestMethod]
    public void MultiTaskModelTrainsBothHeadsWhenOneLabelIsMissingOnHalfTheRows()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = DiamondRows.Value;
        var options = DiamondOptions(epochs: 10);
        options.CategoricalColumnNames = [nameof(DiamondRow.Color), nameof(DiamondRow.Clarity)];
        options.Labels = [new TabularLabel(nameof(DiamondRow.Price), TabularTaskKind.Regression), new TabularLabel(nameof(DiamondRow.Cut), TabularTaskKind.Multiclass)];
        var rows = Every(train, 6000).Select((r, i) => new DiamondRow
        {
            Carat = r.Carat, Cut = r.Cut, Color = r.Color, Clarity = r.Clarity, Depth = r.Depth, Table = r.Table,
            Price = i % 2 == 0 ? float.NaN : r.Price, X = r.X, Y = r.Y, Z = r.Z,
        });
        var result = ml.Transforms.DeepVariants.TabularNetwork(options).Train(Load(ml, rows));
        var scored = result.Model.Transform(Load(ml, Every(test, 2000)));
        var price = ml.Regression.Evaluate(scored, nameof(DiamondRow.Price), "Score.Price");
        var truth = Every(test, 2000).Select(r => r.Cut).ToArray();
        double cutAccuracy = PredictedClasses.Accuracy(scored, "PredictedLabel.Cut", truth);
        double majority = truth.GroupBy(t => t).Max(g => g.Count()) / (double)truth.Length;
        TestContext.WriteLine($"price (half the rows labelled): R² {price.RSquared:F4}; cut accuracy {cutAccuracy:P2} (majority class {majority:P2})");
        Assert.IsGreaterThan(0.93, price.RSquared);
        Assert.IsGreaterThan(majority + 0.1, cutAccuracy, "The cut head learned beyond the majority class.");
    }

    [TestMethod]
    public void BadTabularInputsAreRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var data = Load(ml, Every(DiamondRows.Value.Train, 400));
        Exception Fit(Action<TabularNetworkOptions> change)
        {
            var options = DiamondOptions(epochs: 1);
            change(options);
            return Assert.Throws<Exception>(() => ml.Transforms.DeepVariants.TabularNetwork(options).Fit(data));
        }
        void Says(Exception e, params string[] parts)
        {
            foreach (string part in parts)
                StringAssert.Contains(e.Message, part);
        }
        Says(Fit(o => { o.LabelColumnName = nameof(DiamondRow.Cut); o.CategoricalColumnNames = [nameof(DiamondRow.Color)]; }), "'Cut'", "Single or Double");
        Says(Fit(o => { o.LabelColumnName = nameof(DiamondRow.Price); o.Task = TabularTaskKind.Binary; }), "binary", "0 or 1");
        Says(Fit(o => { o.LabelColumnName = nameof(DiamondRow.Cut); o.Task = TabularTaskKind.Binary; o.CategoricalColumnNames = [nameof(DiamondRow.Color)]; }), "'Cut'", "Boolean");
        Says(Fit(o => o.MaxCategories = 7), "'Clarity'", "8 categories", "MaxCategories");
        Says(Fit(o => { o.NumericColumnNames = [nameof(DiamondRow.Carat), nameof(DiamondRow.Color)]; o.CategoricalColumnNames = [nameof(DiamondRow.Cut)]; }), "'Color'", "list a text or key column in CategoricalColumnNames");
        Says(Fit(o => { o.NumericColumnNames = [nameof(DiamondRow.Depth)]; o.CategoricalColumnNames = [nameof(DiamondRow.Carat)]; }), "'Carat'", "key or text");
        Says(Fit(o => o.NumericColumnNames = ["Weight"]), "'Weight'");
        Says(Fit(o => o.CategoricalColumnNames = [nameof(DiamondRow.Cut), nameof(DiamondRow.Price)]), "'Price'", "label");
        Says(Fit(o => o.Labels = [new TabularLabel(nameof(DiamondRow.Price), TabularTaskKind.Regression), new TabularLabel(nameof(DiamondRow.Price), TabularTaskKind.Regression)]), "'Price'", "Name");
        Says(Fit(o => o.Width = 0), "Width");
        Says(Fit(o => o.Dropout = 1), "Dropout");
        Says(Fit(o => { o.NumericColumnNames = []; o.CategoricalColumnNames = []; }), "at least one input");
        // The same checks in GetOutputSchema, before any data is read.
        var options = DiamondOptions();
        options.LabelColumnName = nameof(DiamondRow.Cut);
        options.CategoricalColumnNames = [nameof(DiamondRow.Color)];
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.TabularNetwork(options).GetOutputSchema(MLNetInternalsTests.ToSchemaShape(data.Schema)));
    }

    [TestMethod]
    public void ParameterCountsFromTheOptionsMatchTheBuiltNetworks()
    {
        TabularNetworkOptions Options(Action<TabularNetworkOptions> change)
        {
            var o = new TabularNetworkOptions { Width = 24, Depth = 3 };
            change(o);
            return o;
        }
        var configurations = new Dictionary<string, TabularNetworkOptions>
        {
            ["residual, batch norm"] = Options(_ => { }),
            ["residual, no norm"] = Options(o => o.Normalization = TabularNormalization.None),
            ["plain, layer norm"] = Options(o => { o.Residual = false; o.Normalization = TabularNormalization.Layer; }),
            ["plain, one layer"] = Options(o => { o.Residual = false; o.Depth = 1; }),
            ["fixed embeddings"] = Options(o => o.EmbeddingSize = 3),
            ["image and table"] = Options(o => { o.ImageColumnName = "Pixels"; o.ImageHeight = 10; o.ImageWidth = 9; o.ImageChannels = 3; }),
            ["image only"] = Options(o => { o.ImageColumnName = "Pixels"; o.ImageHeight = 8; o.ImageWidth = 8; o.NumericColumnNames = []; }),
            ["series only"] = Options(o => { o.SeriesColumnName = "Series"; o.SeriesLength = 12; o.SeriesChannels = 2; o.NumericColumnNames = []; }),
            ["three streams, gated"] = Options(o =>
            {
                o.ImageColumnName = "Pixels"; o.ImageHeight = 8; o.ImageWidth = 12; o.SeriesColumnName = "Series"; o.SeriesLength = 9; o.Fusion = StreamFusion.GatedSum;
            }),
        };
        foreach (var (name, o) in configurations)
        {
            bool table = o.HasTable;
            var plan = new TabularPlan(new float[table ? 4 : 0], new float[table ? 4 : 0], table ? [1, 3] : [], table ? [5, 2] : [],
                table ? [o.EmbeddingFor(5), o.EmbeddingFor(2)] : [],
                [new TabularHead(new TabularLabel("a", TabularTaskKind.Multiclass), 7), new TabularHead(new TabularLabel("b", TabularTaskKind.Regression), 1)])
            {
                Image = o.ImageColumnName is null ? null : [o.ImageChannels, o.ImageHeight, o.ImageWidth],
                Series = o.SeriesColumnName is null ? null : [o.SeriesChannels, o.SeriesLength],
            };
            Assert.AreEqual(plan.CountParameters(o), o.ParameterCount(table ? 4 : 0, table ? [5, 2] : [], [7, 1], indicatorSlots: table ? 2 : 0), name);
            using var network = new TabularNetwork(plan, o);
            long built = network.parameters().Sum(p => p.numel());
            Assert.AreEqual(built, plan.CountParameters(o), name);
            // The network runs on a batch of its rows: numbers, category codes, pixels.
            using var x = TorchSharp.torch.zeros(3, plan.InputSize);
            using var y = network.call(x);
            CollectionAssert.AreEqual(new long[] { 3, 8 }, y.shape, name);
        }
    }

    /// <summary>A diamond as other code would type it: doubles, an integer, a Boolean, a key made upstream.</summary>
    private sealed class TypedDiamond
    {
        public double Carat { get; set; }
        public int Depth { get; set; }
        public bool Premium { get; set; }
        public string Clarity { get; set; } = "";
        public double Price { get; set; }
    }

    [TestMethod]
    public void ColumnsOfOtherTypesStreamedWithValidationDataTrainTheSame()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = DiamondRows.Value;
        IDataView Typed(IEnumerable<DiamondRow> rows) => ml.Data.LoadFromEnumerable(rows.Select(r => new TypedDiamond
        {
            Carat = r.Carat, Depth = (int)Math.Round(r.Depth), Premium = r.Cut is "Premium" or "Ideal", Clarity = r.Clarity, Price = r.Price,
        }));
        // The categorical column arrives as a key the user's pipeline made, the label as a Double.
        var keyed = ml.Transforms.Conversion.MapValueToKey("ClarityKey", nameof(TypedDiamond.Clarity)).Fit(Typed(Every(train, 4000)));
        var options = new TabularNetworkOptions
        {
            NumericColumnNames = [nameof(TypedDiamond.Carat), nameof(TypedDiamond.Depth), nameof(TypedDiamond.Premium)], CategoricalColumnNames = ["ClarityKey"],
            LabelColumnName = nameof(TypedDiamond.Price), Task = TabularTaskKind.Regression, Epochs = 8, Width = 64, Depth = 2, Seed = 1,
            DataLoading = DataLoadingMode.Streaming, EarlyStoppingPatience = 3,
        };
        var result = ml.Transforms.DeepVariants.TabularNetwork(options)
            .Train(keyed.Transform(Typed(Every(train, 4000))), keyed.Transform(Typed(Every(test, 1000).Take(500))));
        var scored = result.Model.Transform(keyed.Transform(Typed(Every(test, 1000).Skip(500))));
        var prices = scored.GetColumn<double>(nameof(TypedDiamond.Price)).ToArray();
        var predicted = scored.GetColumn<float>("Score").ToArray();
        double mean = prices.Average();
        double r2 = 1 - prices.Zip(predicted, (y, p) => (y - p) * (y - p)).Sum() / prices.Sum(y => (y - mean) * (y - mean));
        TestContext.WriteLine($"doubles, an int, a Boolean and a key, streamed, validated: R² {r2:F4} after {result.History.Epochs.Count} epochs " +
            $"(best {result.History.BestEpoch}, validation loss {result.History.Epochs[^1].ValidationLoss:F4})");
        Assert.IsTrue(result.History.Epochs.All(e => e.ValidationLoss is not null), "validation ran every epoch");
        Assert.IsGreaterThan(0.9, r2);
    }
}

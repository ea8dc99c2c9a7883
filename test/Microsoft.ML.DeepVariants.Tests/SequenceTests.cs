using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Sequences;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class SequenceTests
{
    public TestContext TestContext { get; set; } = null!;

    internal static string Problem(string name, string split) =>
        Path.Combine(AppContext.BaseDirectory, "Data", "timeseries", name, $"{name}_{split}.ts");

    [TestMethod]
    public void TheDefaultsLearnALongUnivariateSeriesThatFiveEpochsWouldNot()
    {
        // GunPoint: 50 training series of 150 steps, 2 classes. With only the channel count set, the classifier takes at
        // least MinimumSteps (300) optimizer steps; the old defaults (5 epochs of one batch: 5 steps) stay at chance.
        var ml = new MLContext(seed: 1);
        var train = TimeSeriesFile.Load(ml, Problem("GunPoint", "TRAIN"));
        var test = TimeSeriesFile.Load(ml, Problem("GunPoint", "TEST"));
        var defaults = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions()).Train(train);
        double accuracy = ml.MulticlassClassification.Evaluate(defaults.Model.Transform(test)).MicroAccuracy;
        var fiveSteps = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions { MinimumSteps = 0 }).Train(train);
        double before = ml.MulticlassClassification.Evaluate(fiveSteps.Model.Transform(test)).MicroAccuracy;

        TestContext.WriteLine($"GunPoint with the defaults: {accuracy:P1} test accuracy after {defaults.History.Epochs.Count} epochs " +
            $"({defaults.History.Epochs[^1].Elapsed.TotalSeconds:F0} s); 5 epochs of 5 steps: {before:P1}, warnings: {string.Join(" | ", fiveSteps.History.Warnings)}");
        Assert.AreEqual(300, defaults.History.Epochs.Count, "one batch an epoch, so 300 epochs make 300 steps");
        // 68.7 % with seed 1 since the sequence families came (the network's initial draws changed; 75 % or more before).
        Assert.IsGreaterThanOrEqualTo(0.65, accuracy, "the defaults leave chance (50%) well behind");
        Assert.IsEmpty(defaults.History.Warnings, string.Join("\n", defaults.History.Warnings));
        Assert.IsNotEmpty(fiveSteps.History.Warnings, "five steps learn next to nothing, and the history says so");
    }

    [TestMethod]
    public void JapaneseVowelsTrainsToNinetyPercentAndPredictsTheSameAfterSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var train = TimeSeriesFile.Load(ml, Problem("JapaneseVowels", "TRAIN"));
        var test = TimeSeriesFile.Load(ml, Problem("JapaneseVowels", "TEST"));
        Assert.AreEqual(0, ((VectorDataViewType)train.Schema["Series"].Type).Size, "unequal lengths give a variable-length column");

        var result = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = 12, Epochs = 30, BatchSize = 32, LearningRate = 3e-3f, Device = TorchDeviceKind.Cpu,
            Architecture = new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 64, Pooling = SequencePooling.Attention },
        }).Train(train);
        var scored = result.Model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);

        TestContext.WriteLine($"JapaneseVowels: {metrics.MicroAccuracy:P2} test accuracy; {result.ParameterCount:N0} parameters; " +
            $"{result.History.Epochs[^1].Elapsed.TotalSeconds:F1} s; losses {result.History.Epochs[0].Loss:F3} -> {result.History.Epochs[^1].Loss:F3}");
        Assert.IsGreaterThanOrEqualTo(0.90, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy:P2}");
        Assert.IsLessThan(result.History.Epochs[0].Loss / 5, result.History.Epochs[^1].Loss, "the loss falls");
        // Training batches hold the longest training series, 26 steps; the saved graph takes series of any length.
        Assert.AreEqual(26, result.MaxLength);
        Assert.IsFalse(result.Model.Any(t => t.GetType().Name.Contains("CustomMapping")), "no padding step: ML.NET feeds the variable-length column as it is");

        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), "vowels.zip");
        ml.Model.Save(result.Model, train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        Assert.IsLessThanOrEqualTo(1e-5f, TestData.MaxAbsDifference(TestData.Scores(scored), TestData.Scores(loaded.Transform(test))));
        CollectionAssert.AreEqual(scored.GetColumn<uint>("PredictedLabel").ToArray(), loaded.Transform(test).GetColumn<uint>("PredictedLabel").ToArray());
    }

    [TestMethod]
    [DataRow(RecurrentCell.Lstm, SequencePooling.Last, false, 1)]
    [DataRow(RecurrentCell.Lstm, SequencePooling.Mean, true, 2)]
    [DataRow(RecurrentCell.Lstm, SequencePooling.Attention, true, 1)]
    [DataRow(RecurrentCell.Gru, SequencePooling.Last, true, 2)]
    [DataRow(RecurrentCell.Gru, SequencePooling.Mean, false, 1)]
    [DataRow(RecurrentCell.Gru, SequencePooling.Attention, false, 2)]
    public void OnnxGraphMatchesTorchSharpOnSeriesOfDifferentLengths(RecurrentCell cell, SequencePooling pooling, bool bidirectional, int layers)
    {
        random.manual_seed(3);
        const int channels = 3, steps = 9, classes = 4;
        using var network = SequenceNetwork.Create(new SequenceArchitecture
        {
            Cell = cell, Pooling = pooling, Bidirectional = bidirectional, Layers = layers, HiddenSize = 5, Dropout = 0.3f,
        }, channels, classes);
        network.eval();
        int[] lengths = [9, 4, 1, 7];
        var batch = randn(lengths.Length, steps, channels);
        for (int row = 0; row < lengths.Length; row++)
            batch[row, TensorIndex.Slice(lengths[row])] = float.NaN;
        network.FitChannelScaling(batch * 2 + 1);
        using var noGrad = no_grad();
        var expected = network.call(batch);

        // The graph is longer than the batch (12 steps): the extra steps are padding too.
        byte[] onnx = network.ExportOnnx("series", 12 * channels, "logits");
        for (int row = 0; row < lengths.Length; row++)
        {
            var padded = full(12 * channels, float.NaN);
            padded.narrow(0, 0, lengths[row] * channels).copy_(batch[row].narrow(0, 0, lengths[row]).reshape(-1));
            float[] actual = OnnxParityTests.RunOnnx(onnx, "series", padded, "logits");
            float[] reference = expected[row].data<float>().ToArray();
            float gap = reference.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsLessThanOrEqualTo(1e-4f, gap, $"row {row} ({lengths[row]} steps): ONNX and TorchSharp differ by {gap}");
        }
    }

    [TestMethod]
    [DataRow(RecurrentCell.Lstm, SequencePooling.Last, true)]
    [DataRow(RecurrentCell.Gru, SequencePooling.Mean, false)]
    [DataRow(RecurrentCell.Lstm, SequencePooling.Attention, true)]
    public void PaddingNeverChangesTheOutput(RecurrentCell cell, SequencePooling pooling, bool bidirectional)
    {
        random.manual_seed(5);
        using var network = SequenceNetwork.Create(new SequenceArchitecture { Cell = cell, Pooling = pooling, Bidirectional = bidirectional, Layers = 2 }, 2, 3);
        network.eval();
        using var noGrad = no_grad();
        var series = randn(1, 6, 2);
        var alone = network.call(series);
        foreach (int padding in new[] { 1, 10, 50 })
        {
            var padded = cat([series, full(1, padding, 2, float.NaN)], 1);
            // In a batch next to a longer series, so the padded steps are really run.
            var batch = cat([padded, randn(1, 6 + padding, 2)], 0);
            float gap = (network.call(batch)[0] - alone[0]).abs().max().item<float>();
            Assert.IsLessThanOrEqualTo(1e-5f, gap, $"{padding} padding steps change the output by {gap}");
        }
    }

    [TestMethod]
    public void PaddingNeverChangesAFittedModelsPrediction()
    {
        var ml = new MLContext(seed: 1);
        var problem = TimeSeriesFile.Read(Problem("JapaneseVowels", "TRAIN"));
        var model = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = 12, Epochs = 2, MinimumSteps = 0, Device = TorchDeviceKind.Cpu, Architecture = new SequenceArchitecture { HiddenSize = 16, Bidirectional = true },
        }).Fit(TimeSeriesFile.ToDataView(ml, problem));

        // The same 20 series, bare and with 3 or 15 NaN steps after them.
        float[][] Scores(int padding)
        {
            var rows = problem.Cases.Take(20).Select(c => new Row { Series = [.. c.Values, .. Enumerable.Repeat(float.NaN, padding * 12)], Label = "1" });
            return TestData.Scores(model.Transform(ml.Data.LoadFromEnumerable(rows)));
        }
        var bare = Scores(0);
        foreach (int padding in new[] { 3, 15 })
            Assert.IsLessThanOrEqualTo(1e-5f, TestData.MaxAbsDifference(bare, Scores(padding)), $"{padding} padding steps");

        // A series longer than any training series (26 steps) is scored too: the graph takes its steps from the input.
        var longest = problem.Cases.MaxBy(c => c.Length)!;
        var longer = ml.Data.LoadFromEnumerable(new[] { new Row { Series = [.. longest.Values, .. longest.Values, .. longest.Values], Label = "1" } });
        float[] score = TestData.Scores(model.Transform(longer))[0];
        Assert.IsTrue(score.All(float.IsFinite), string.Join(", ", score));
        Assert.AreEqual(1, score.Sum(), 1e-4, "a probability for each class");
    }

    [TestMethod]
    public void AFixedLengthColumnWithNanPaddingTrainsAndPredicts()
    {
        var ml = new MLContext(seed: 1);
        var train = TimeSeriesFile.Load(ml, Problem("JapaneseVowels", "TRAIN"), padToLength: 29);
        Assert.AreEqual(29 * 12, ((VectorDataViewType)train.Schema["Series"].Type).Size);
        var result = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = 12, Epochs = 8, BatchSize = 32, LearningRate = 3e-3f, MinimumSteps = 0, Device = TorchDeviceKind.Cpu,
            Architecture = new SequenceArchitecture { Cell = RecurrentCell.Gru, HiddenSize = 16 },
        }).Train(train);
        Assert.AreEqual(29, result.MaxLength);
        var test = TimeSeriesFile.Load(ml, Problem("JapaneseVowels", "TEST"), padToLength: 29);
        var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(test));
        Assert.IsGreaterThan(0.5, metrics.MicroAccuracy, "eight epochs of a small GRU learn the speakers");
        Assert.IsFalse(result.Model.Any(t => t.GetType().Name.Contains("CustomMapping")), "a fixed-length column needs no padding step");
    }

    [TestMethod]
    [DataRow("JapaneseVowels", 12, 270, 370, 9, 7, 29, false)]
    [DataRow("BasicMotions", 6, 40, 40, 4, 100, 100, true)]
    [DataRow("GunPoint", 1, 50, 150, 2, 150, 150, true)]
    [DataRow("ItalyPowerDemand", 1, 67, 1029, 2, 24, 24, true)]
    public void LoaderReadsTheArchiveProblems(string name, int dimensions, int trainCases, int testCases, int classes, int minLength, int maxLength, bool equal)
    {
        var train = TimeSeriesFile.Read(Problem(name, "TRAIN"));
        var test = TimeSeriesFile.Read(Problem(name, "TEST"));
        Assert.AreEqual(name, train.Name);
        Assert.AreEqual(dimensions, train.Dimensions);
        Assert.AreEqual(trainCases, train.Cases.Count);
        Assert.AreEqual(testCases, test.Cases.Count);
        Assert.AreEqual(classes, train.ClassLabels.Count);
        Assert.AreEqual(minLength, Math.Min(train.MinLength, test.MinLength));
        Assert.AreEqual(maxLength, Math.Max(train.MaxLength, test.MaxLength));
        Assert.AreEqual(equal, train.EqualLength);
        Assert.IsTrue(train.Cases.All(c => c.Values.Length == c.Length * dimensions && train.ClassLabels.Contains(c.Label)));

        var ml = new MLContext();
        var view = TimeSeriesFile.Load(ml, Problem(name, "TRAIN"));
        Assert.AreEqual(equal ? maxLength * dimensions : 0, ((VectorDataViewType)view.Schema["Series"].Type).Size);
        Assert.AreEqual((ulong)classes, ((KeyDataViewType)view.Schema["Label"].Type).Count);
        Assert.AreEqual(trainCases, view.GetColumn<float>("Length").Count());
    }

    [TestMethod]
    public void LoaderKeepsTheValuesStepMajor()
    {
        string path = WriteTs("@problemName Tiny\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n7:8:b\n");
        var problem = TimeSeriesFile.Read(path);
        CollectionAssert.AreEqual(new[] { 1f, 4, 2, 5, 3, 6 }, problem.Cases[0].Values);
        Assert.AreEqual(3, problem.Cases[0].Length);
        Assert.AreEqual("b", problem.Cases[1].Label);
    }

    [TestMethod]
    [DataRow("@problemName X\n@classLabel true a b\n1,2:a\n", "line 3", "'@data'")]
    [DataRow("@problemName X\n@dimensions 2\n@classLabel true a b\n@data\n1,2:3,4:a\n1,2:b\n", "line 6", "expected 2 dimension(s) and a class label, found 1")]
    [DataRow("@classLabel true a b\n@data\n1,2,x3:a\n", "line 3", "'x3' is not a finite number")]
    [DataRow("@classLabel true a b\n@data\n1,2,3:a\n1,2,3:c\n", "line 4", "class label 'c' is not one of those '@classLabel' declares (a b)")]
    [DataRow("@dimensions 2\n@classLabel true a b\n@data\n1,2,3:4,5:a\n", "line 4", "dimension 2 has 2 values but dimension 1 has 3")]
    [DataRow("@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n1,2,3:a\n1,2:b\n", "line 6", "'@seriesLength 3', but this case has 2 values")]
    [DataRow("@classLabel true a b\n@data\n1,?,3:a\n", "line 3", "missing values ('?')")]
    [DataRow("@timeStamps true\n@classLabel true a b\n@data\n", "line 1", "'@timeStamps true'")]
    [DataRow("@dimensions two\n@classLabel true a b\n@data\n1:a\n", "line 1", "positive whole number, found 'two'")]
    [DataRow("@classLabel true a b\n@data\n", "", "followed by no cases")]
    public void LoaderRejectsMalformedFilesNamingTheLine(string content, string line, string expected)
    {
        string path = WriteTs(content);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TimeSeriesFile.Read(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, line);
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void BadSeriesInputGetsClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var options = new SequenceClassifierOptions { Channels = 3, Epochs = 1, MinimumSteps = 0, Device = TorchDeviceKind.Cpu };
        IDataView Data(params float[][] series) => ml.Data.LoadFromEnumerable(series.Select((s, i) => new Row { Series = s, Label = i % 2 == 0 ? "a" : "b" }));

        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.SequenceClassifier(options).Fit(Data([1, 2, 3], [1, 2, 3, 4])));
        StringAssert.Contains(e.Message, "Column 'Series' has 4 values at row 1, not a whole number of steps of 3 channels");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.SequenceClassifier(options).Fit(Data([1, 2, 3], [1, float.NaN, 3, 4, 5, 6])));
        StringAssert.Contains(e.Message, "NaN value at row 1, step 1, channel 2, inside the series");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.SequenceClassifier(options).Fit(Data([1, 2, 3], [float.NaN, float.NaN, float.NaN])));
        StringAssert.Contains(e.Message, "empty series");
        options.MaxLength = 1;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.SequenceClassifier(options).Fit(Data([1, 2, 3], [1, 2, 3, 4, 5, 6])));
        StringAssert.Contains(e.Message, "training series of 2 steps, longer than MaxLength (1)");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions { FeatureColumnName = "Label" }).Fit(Data([1])));
        StringAssert.Contains(e.Message, "Schema mismatch for input column 'Label'");
    }

    private string WriteTs(string content)
    {
        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"malformed-{Guid.NewGuid():N}.ts");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    private sealed class Row
    {
        public float[] Series { get; set; } = [];

        public string Label { get; set; } = "";
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Sequences;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>The temporal convolution and Transformer families: ONNX parity, padding invariance, attention, fitting and bad options.</summary>
[TestClass]
public sealed class SequenceFamilyTests
{
    public TestContext TestContext { get; set; } = null!;

    // Small but complete networks of every family and knob that changes the graph.
    private static readonly Dictionary<string, SequenceArchitecture> Families = new()
    {
        ["lstm-attention"] = new() { Layers = 2, HiddenSize = 5, Bidirectional = true, Pooling = SequencePooling.Attention },
        ["fcn"] = new() { Family = SequenceFamily.TemporalConvolution, Filters = 6 },
        ["resnet"] = new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.ResNet, Filters = 4 },
        ["inception"] = new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, Filters = 4, Bottleneck = 3, KernelSize = 8 },
        ["inception-ensemble"] = new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, Depth = 3, Filters = 3, Bottleneck = 2, KernelSize = 6, EnsembleSize = 3 },
        ["transformer-token"] = new() { Family = SequenceFamily.Transformer, Layers = 2, ModelWidth = 8, Heads = 2, Dropout = 0.2f },
        ["transformer-mean-learned"] = new() { Family = SequenceFamily.Transformer, ModelWidth = 6, Heads = 3, FeedForwardSize = 5, Positions = PositionEncoding.Learned, MaxPositions = 5, Pooling = SequencePooling.Mean },
        ["transformer-attention"] = new() { Family = SequenceFamily.Transformer, Layers = 2, ModelWidth = 8, Heads = 4, Pooling = SequencePooling.Attention },
    };

    // A network with trained-looking state: batch-norm running statistics from a few training-mode passes, channel scaling.
    private static SequenceNetwork Network(string name, int channels, int classes, Tensor batch)
    {
        random.manual_seed(7);
        var network = SequenceNetwork.Create(Families[name], channels, classes);
        network.FitChannelScaling(batch * 2 + 1);
        network.train();
        using (no_grad())
            for (int i = 0; i < 3; i++)
                network.call(batch * 2 + 1);
        network.eval();
        return network;
    }

    private static Tensor Batch(int[] lengths, int steps, int channels)
    {
        random.manual_seed(11);
        var batch = randn(lengths.Length, steps, channels);
        for (int row = 0; row < lengths.Length; row++)
            batch[row, TensorIndex.Slice(lengths[row])] = float.NaN;
        return batch;
    }

    [TestMethod]
    [DataRow("lstm-attention")]
    [DataRow("fcn")]
    [DataRow("resnet")]
    [DataRow("inception")]
    [DataRow("inception-ensemble")]
    [DataRow("transformer-token")]
    [DataRow("transformer-mean-learned")]
    [DataRow("transformer-attention")]
    public void OnnxGraphMatchesTorchSharpOnSeriesOfDifferentLengths(string family)
    {
        const int channels = 3, steps = 9, classes = 4;
        int[] lengths = [9, 4, 1, 7];
        var batch = Batch(lengths, steps, channels);
        using var network = Network(family, channels, classes, batch);
        // Batch-norm statistics are buffers, so they move with the network to a device and are kept with the best weights.
        var buffers = network.named_buffers().Select(b => b.name).ToList();
        Assert.AreEqual(family.StartsWith("inception") || family is "fcn" or "resnet", buffers.Any(b => b.EndsWith("running_var")), string.Join(", ", buffers));
        using var noGrad = no_grad();
        var expected = network.call(batch);
        var expectedAttention = network.HasAttention ? network.Attention(batch) : null;

        // The graph is longer than the batch (12 steps): the extra steps are padding too.
        byte[] onnx = network.ExportOnnx("series", 12 * channels, "logits", network.HasAttention ? "attention" : null);
        for (int row = 0; row < lengths.Length; row++)
        {
            var padded = full(12 * channels, float.NaN);
            padded.narrow(0, 0, lengths[row] * channels).copy_(batch[row].narrow(0, 0, lengths[row]).reshape(-1));
            float[] actual = OnnxParityTests.RunOnnx(onnx, "series", padded, "logits");
            float gap = expected[row].data<float>().ToArray().Zip(actual, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsTrue(float.IsFinite(gap) && actual.All(float.IsFinite), $"{family}, row {row}: finite outputs");
            Assert.IsLessThanOrEqualTo(1e-4f, gap, $"{family}, row {row} ({lengths[row]} steps): ONNX and TorchSharp logits differ by {gap}");
            if (expectedAttention is null)
                continue;
            float[] weights = OnnxParityTests.RunOnnx(onnx, "series", padded, "attention");
            Assert.HasCount(12, weights, "one weight per input step");
            float[] reference = [.. expectedAttention[row].data<float>().ToArray(), 0, 0, 0];
            float attentionGap = reference.Zip(weights, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsLessThanOrEqualTo(1e-4f, attentionGap, $"{family}, row {row}: attention differs by {attentionGap}");
            Assert.IsTrue(weights.Skip(lengths[row]).All(w => w == 0), $"{family}, row {row}: padded steps get no attention");
        }
    }

    [TestMethod]
    [DataRow("fcn")]
    [DataRow("resnet")]
    [DataRow("inception")]
    [DataRow("inception-ensemble")]
    [DataRow("transformer-token")]
    [DataRow("transformer-mean-learned")]
    [DataRow("transformer-attention")]
    public void PaddingNeverChangesTheOutput(string family)
    {
        var series = Batch([14], 14, 2);
        // Batch-norm statistics from a batch with padding, so masked statistics are exercised too.
        using var network = Network(family, 2, 3, cat([cat([series, full(1, 6, 2, float.NaN)], 1), randn(1, 20, 2)], 0));
        using var noGrad = no_grad();
        var alone = network.call(series);
        var aloneAttention = network.HasAttention ? network.Attention(series) : null;
        foreach (int padding in new[] { 1, 10, 50 })
        {
            var padded = cat([series, full(1, padding, 2, float.NaN)], 1);
            // In a batch next to a longer series, so the padded steps are really computed.
            var batch = cat([padded, randn(1, 14 + padding, 2)], 0);
            float gap = (network.call(batch)[0] - alone[0]).abs().max().item<float>();
            Assert.IsTrue(float.IsFinite(gap), $"{family}: finite outputs with {padding} padding steps");
            Assert.IsLessThanOrEqualTo(1e-5f, gap, $"{family}: {padding} padding steps change the output by {gap}");
            if (aloneAttention is null)
                continue;
            var attention = network.Attention(batch)[0];
            float attentionGap = (attention.narrow(0, 0, 14) - aloneAttention[0]).abs().max().item<float>();
            Assert.IsLessThanOrEqualTo(1e-5f, attentionGap, $"{family}: {padding} padding steps change the attention by {attentionGap}");
            Assert.AreEqual(0f, attention.narrow(0, 14, padding).abs().max().item<float>(), "padded steps get no attention");
        }
    }

    [TestMethod]
    [DataRow("fcn", 0.93)]
    [DataRow("resnet", 0.93)]
    [DataRow("inception", 0.93)]
    [DataRow("inception-ensemble", 0.93)]
    [DataRow("transformer", 0.90)]
    public void EachFamilyLearnsItalyPowerDemandAndPredictsTheSameAfterSaveAndLoad(string family, double floor)
    {
        // ItalyPowerDemand: 67 training days of 24 hourly loads, 1,029 test days; winter or summer.
        var architecture = family switch
        {
            "fcn" => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Filters = 32 },
            "resnet" => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.ResNet, Filters = 16 },
            "inception" => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, Filters = 8, Depth = 3, KernelSize = 20 },
            "inception-ensemble" => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, Filters = 8, Depth = 3, KernelSize = 20, EnsembleSize = 2 },
            _ => new SequenceArchitecture { Family = SequenceFamily.Transformer, Layers = 2, ModelWidth = 32, Heads = 4 },
        };
        var ml = new MLContext(seed: 1);
        var train = TimeSeriesFile.Load(ml, SequenceTests.Problem("ItalyPowerDemand", "TRAIN"));
        var test = TimeSeriesFile.Load(ml, SequenceTests.Problem("ItalyPowerDemand", "TEST"));
        var result = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Epochs = family == "transformer" ? 80 : 40, BatchSize = 16, LearningRate = family == "transformer" ? 3e-3f : 1e-3f, MinimumSteps = 0, Schedule = LearningRateSchedule.Cosine, Device = TorchDeviceKind.Cpu,
            Architecture = architecture,
        }).Train(train);
        var scored = result.Model.Transform(test);
        double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;

        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"italy-{family}.zip");
        ml.Model.Save(result.Model, train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _).Transform(test);
        float gap = TestData.MaxAbsDifference(TestData.Scores(scored), TestData.Scores(loaded));
        TestContext.WriteLine($"ItalyPowerDemand, {family}: {accuracy:P2} test accuracy, {result.ParameterCount:N0} parameters, " +
            $"{result.History.Epochs[^1].Elapsed.TotalSeconds / result.History.Epochs.Count:F2} s per epoch; saved and loaded scores differ by {gap}");
        Assert.IsGreaterThanOrEqualTo(floor, accuracy, $"{family}: {accuracy:P2}; losses {string.Join(", ", result.History.Epochs.Select(e => e.Loss.ToString("F3")))}");
        Assert.IsLessThanOrEqualTo(1e-5f, gap);
        CollectionAssert.AreEqual(scored.GetColumn<uint>("PredictedLabel").ToArray(), loaded.GetColumn<uint>("PredictedLabel").ToArray());
    }

    [TestMethod]
    [DataRow(SequenceFamily.Transformer)]
    [DataRow(SequenceFamily.Recurrent)]
    public void VariableLengthSeriesGetAnAttentionColumnThatSurvivesSaveAndLoad(SequenceFamily family)
    {
        // JapaneseVowels: 7 to 29 steps of 12 values, a variable-length column; the attention column is as long as each series.
        var ml = new MLContext(seed: 1);
        var problem = TimeSeriesFile.Read(SequenceTests.Problem("JapaneseVowels", "TRAIN"));
        var train = TimeSeriesFile.ToDataView(ml, problem);
        var test = TimeSeriesFile.Load(ml, SequenceTests.Problem("JapaneseVowels", "TEST"));
        var result = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = 12, Epochs = 15, BatchSize = 32, LearningRate = 2e-3f, MinimumSteps = 0, Device = TorchDeviceKind.Cpu, AttentionColumnName = "Attention",
            Architecture = family == SequenceFamily.Transformer
                ? new SequenceArchitecture { Family = SequenceFamily.Transformer, Layers = 2, ModelWidth = 32, Heads = 4 }
                : new SequenceArchitecture { HiddenSize = 32, Pooling = SequencePooling.Attention },
        }).Train(train);
        var scored = result.Model.Transform(test);
        double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        Assert.IsInstanceOfType<VectorDataViewType>(scored.Schema["Attention"].Type);
        Assert.AreEqual(0, ((VectorDataViewType)scored.Schema["Attention"].Type).Size, $"a variable-length input gives a variable-length attention column, not {scored.Schema["Attention"].Type}; losses {string.Join(", ", result.History.Epochs.Select(e => e.Loss.ToString("F3")))}; accuracy {accuracy:P2}");

        var series = scored.GetColumn<float[]>("Series").ToArray();
        var attention = scored.GetColumn<float[]>("Attention").ToArray();
        for (int row = 0; row < series.Length; row++)
        {
            Assert.HasCount(series[row].Length / 12, attention[row], $"row {row}: one weight per step");
            Assert.IsTrue(attention[row].All(w => w >= 0 && w <= 1), $"row {row}: weights are probabilities");
            if (family == SequenceFamily.Recurrent)
                Assert.AreEqual(1, attention[row].Sum(), 1e-4, $"row {row}: attention pooling's weights sum to one");
        }

        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"vowels-attention-{family}.zip");
        ml.Model.Save(result.Model, train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _).Transform(test);
        float gap = TestData.MaxAbsDifference(attention, loaded.GetColumn<float[]>("Attention").ToArray());
        TestContext.WriteLine($"JapaneseVowels, {family} with attention: {accuracy:P2} test accuracy; loaded attention differs by {gap}");
        Assert.IsGreaterThanOrEqualTo(0.85, accuracy, $"{accuracy:P2}");
        Assert.IsLessThanOrEqualTo(1e-5f, gap);
    }

    [TestMethod]
    public void AttentionFindsTheMotifThatDecidesTheClass()
    {
        // 60 steps of two noisy channels; a 6-step motif at a random position decides the class: channel 1 rises to +3 there
        // (where the motif is) while channel 2 holds +2 or -2 (which class). Nothing outside the motif tells the classes apart.
        const int steps = 60, motif = 6;
        var random = new Random(5);
        (float[] Series, string Label, int Start) Make(int i)
        {
            var series = Enumerable.Range(0, 2 * steps).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            int start = random.Next(0, steps - motif + 1);
            bool up = i % 2 == 0;
            for (int t = start; t < start + motif; t++)
            {
                series[2 * t] += 3;
                series[2 * t + 1] = up ? 2 : -2;
            }
            return (series, up ? "up" : "down", start);
        }
        var trainRows = Enumerable.Range(0, 400).Select(Make).ToArray();
        var testRows = Enumerable.Range(0, 100).Select(Make).ToArray();
        var ml = new MLContext(seed: 1);
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(trainRows.Select(r => new Row { Series = r.Series, Label = r.Label })));
        IDataView View(IEnumerable<(float[] Series, string Label, int Start)> rows) =>
            toKey.Transform(ml.Data.LoadFromEnumerable(rows.Select(r => new Row { Series = r.Series, Label = r.Label })));
        var result = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = 2, Epochs = 30, BatchSize = 32, LearningRate = 2e-3f, MinimumSteps = 0, Device = TorchDeviceKind.Cpu, AttentionColumnName = "Attention",
            // One block: the class token must gather the motif itself, so its attention shows where the evidence is.
            Architecture = new SequenceArchitecture { Family = SequenceFamily.Transformer, Layers = 1, ModelWidth = 32, Heads = 4 },
        }).Train(View(trainRows));
        var scored = result.Model.Transform(View(testRows));
        double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        var attention = scored.GetColumn<float[]>("Attention").ToArray();
        // The share of each row's attention on its motif (the class token's weight on itself is left out of the sum).
        double[] onMotif = testRows.Select((r, i) => (double)attention[i].Skip(r.Start).Take(motif).Sum() / attention[i].Sum()).ToArray();
        double mean = onMotif.Average();

        string plot = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), "motif-attention.png");
        AttentionPlot.Write(plot, testRows[0].Series, attention[0], channels: 2);
        TestContext.WriteLine($"Motif test: {accuracy:P1} accuracy; mean share of attention on the motif {mean:P1} (uniform would be {motif / (double)steps:P1}); " +
            $"rows with most of it there: {onMotif.Count(m => m > 0.5)} of {onMotif.Length}; plot {plot}");
        Assert.IsGreaterThanOrEqualTo(0.95, accuracy, $"{accuracy:P1}");
        Assert.IsGreaterThan(0.5, mean, $"the motif holds {motif} of {steps} steps and gets {mean:P1} of the attention");
        Assert.IsGreaterThan(1000, new FileInfo(plot).Length, "a PNG was written");
        CollectionAssert.AreEqual("\x89PNG"u8.ToArray()[..0], Array.Empty<byte>());
    }

    [TestMethod]
    public void BadFamilyOptionsAreRefusedByNameBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var italy = TimeSeriesFile.Load(ml, SequenceTests.Problem("ItalyPowerDemand", "TRAIN"));
        var vowels = TimeSeriesFile.Load(ml, SequenceTests.Problem("JapaneseVowels", "TRAIN"));
        void Refused(SequenceArchitecture architecture, string option, string message, IDataView? data = null, int channels = 1, string? attention = null)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var e = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
            {
                Channels = channels, Epochs = 1, MinimumSteps = 0, Device = TorchDeviceKind.Cpu, Architecture = architecture, AttentionColumnName = attention,
            }).Fit(data ?? italy));
            Assert.AreEqual(option, e.ParamName, e.Message);
            StringAssert.Contains(e.Message, message);
            Assert.IsLessThan(5000, watch.ElapsedMilliseconds, $"{option} is refused before training");
        }
        Refused(new() { Family = SequenceFamily.Transformer, ModelWidth = 30, Heads = 4 }, "Heads", "Heads (4) must divide ModelWidth (30)");
        Refused(new() { Family = SequenceFamily.Transformer, ModelWidth = 9, Heads = 3 }, "ModelWidth", "ModelWidth must be even");
        Refused(new() { Family = SequenceFamily.Transformer, Pooling = SequencePooling.Last }, "Pooling", "a Transformer pools by ClassToken, Mean or Attention");
        Refused(new SequenceArchitecture { Pooling = SequencePooling.ClassToken }, "Pooling", "ClassToken pooling is for Transformers");
        Refused(new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, Pooling = SequencePooling.Attention }, "Pooling", "Temporal convolutions pool by Mean");
        // ItalyPowerDemand's series have 24 steps; InceptionTime's default longest kernel is 40.
        Refused(new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime }, "KernelSize", "kernel of 40 steps is longer than the longest series (column 'Series' holds 24 steps). Set Architecture.KernelSize to at most 24");
        // JapaneseVowels' longest training series has 26 steps, known once the column is read.
        Refused(new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, KernelSize = 30 }, "KernelSize", "kernel of 30 steps is longer than the longest series (26 steps in column 'Series')", vowels, 12);
        Refused(new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, KernelSize = 5 }, "KernelSize", "Fcn keeps its published kernels");
        Refused(new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, EnsembleSize = 11 }, "EnsembleSize", "EnsembleSize must be from 1 to 10");
        Refused(new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, Depth = 0 }, "Depth", "Depth must be from 1 to 30");
        Refused(new() { Family = SequenceFamily.Transformer, Heads = 0 }, "Heads", "Heads must be from 1 to 64");
        Refused(new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution }, "AttentionColumnName", "a TemporalConvolution network with Mean pooling has none", attention: "Attention");
        Refused(new SequenceArchitecture(), "AttentionColumnName", "a Recurrent network with Last pooling has none", attention: "Attention");
        Refused(new() { Family = SequenceFamily.Transformer, ModelWidth = 4096, FeedForwardSize = 65536, Layers = 16 }, "MaxParameters", "trainable parameters, more than MaxParameters");
    }

    private sealed class Row
    {
        public float[] Series { get; set; } = [];

        public string Label { get; set; } = "";
    }
}

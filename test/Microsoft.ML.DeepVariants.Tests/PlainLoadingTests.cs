using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Sequences;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// Every saved DeepVariants model loads and predicts in an application that references only ML.NET, its ONNX transformer,
/// ONNX Runtime and ImageAnalytics (PlainMLNet.Host), on rows that have no label column.
/// </summary>
[TestClass]
public sealed class PlainLoadingTests
{
    public TestContext TestContext { get; set; } = null!;

    private string Folder => Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), "plain-loading");

    [TestMethod]
    public void ACnnFittedOnTextLabelsPredictsUnlabelledRowsInPlainMLNet()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 },
        }).Fit(TestData.Train(ml, 300));   // the text Label is keyed inside the fit
        var rows = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 40).Select(r => r.Features).ToList();
        Compare(ml, model, "cnn", TestData.Train(ml, 1).Schema, rows, "Features:R4:0-783", "Score");
    }

    [TestMethod]
    public void AnAutoencoderPredictsInPlainMLNet()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Train(ml, 300);
        var model = ml.Transforms.DeepVariants.DenoisingAutoencoder(new DenoisingAutoencoderOptions
        {
            CodeSize = 16, Epochs = 1, NoiseStandardDeviation = 0.2f, InputMinimum = 0, InputMaximum = 1, Device = TorchDeviceKind.Cpu,
        }).Fit(train);
        var rows = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 40).Select(r => r.Features).ToList();
        Compare(ml, model, "autoencoder", train.Schema, rows, "Features:R4:0-783", "Denoised");
        Compare(ml, model, "autoencoder-score", train.Schema, rows, "Features:R4:0-783", "Score");
    }

    [TestMethod]
    public void AVariableLengthSequenceModelPredictsInPlainMLNetWithoutRegisteringAnything()
    {
        var ml = new MLContext(seed: 1);
        var train = TimeSeriesFile.Load(ml, Path.Combine(AppContext.BaseDirectory, "Data", "timeseries", "JapaneseVowels", "JapaneseVowels_TRAIN.ts"));
        var model = ml.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = 12, Epochs = 2, BatchSize = 32, MinimumSteps = 0, Device = TorchDeviceKind.Cpu, Architecture = new SequenceArchitecture { HiddenSize = 16 },
        }).Fit(train);
        var test = TimeSeriesFile.Read(Path.Combine(AppContext.BaseDirectory, "Data", "timeseries", "JapaneseVowels", "JapaneseVowels_TEST.ts"));
        var rows = test.Cases.Take(40).Select(c => c.Values).ToList();
        Assert.IsGreaterThan(1, rows.Select(r => r.Length).Distinct().Count(), "series of several lengths");
        Compare(ml, model, "sequence", train.Schema, rows, "Series:R4:0-*", "Score");
    }

    [TestMethod]
    public void AGcnModelPredictsItsNodesInPlainMLNet()
    {
        var ml = new MLContext(seed: 1);
        var (nodes, edges) = Cora.Load(ml, Path.Combine(AppContext.BaseDirectory, "Data", "cora"));
        var model = ml.Transforms.DeepVariants.GcnNodeClassifier(edges, new Graphs.GcnOptions { Epochs = 20, Device = TorchDeviceKind.Cpu })
            .Fit(nodes);
        var ids = Enumerable.Range(0, 40).Select(i => new[] { (float)(i * 61) }).ToList();
        Compare(ml, model, "gcn", nodes.Schema, ids, "NodeId:I4:0", "Score");
    }

    [TestMethod]
    public void APretrainedClassifierPredictsInPlainMLNet()
    {
        var ml = new MLContext(seed: 1);
        var images = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 60);
        var train = ml.Data.LoadFromEnumerable(images.Select(i => new PixelRow { Pixels = Rgb32(i.Features), Label = i.Label }));
        var backbone = PretrainedBackboneOptions.ResNet18();
        backbone.ImageHeight = backbone.ImageWidth = 32;
        var model = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
        {
            Backbone = backbone, Training = BackboneTraining.Frozen, Epochs = 2, BatchSize = 20, Device = TorchDeviceKind.Cpu,
        }).Fit(train);
        var rows = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 20).Select(i => Rgb32(i.Features)).ToList();
        Compare(ml, model, "pretrained", train.Schema, rows, "Pixels:R4:0-3071", "Score");
    }

    [TestMethod]
    public void OnlyThePipelinesOwnMapValueToKeyNeedsTheLabelToPredict()
    {
        // What a new user met: a model whose chain starts with MapValueToKey("Label") refuses rows without a label. The
        // refusal comes from ML.NET's ValueToKeyMappingTransformer; the DeepVariants steps after it predict without one.
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
            {
                ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 },
            }))
            .Fit(TestData.Train(ml, 200));
        var unlabelled = ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 5).Select(r => new FeaturesOnly { Features = r.Features }));
        var refused = Assert.Throws<Exception>(() => model.Transform(unlabelled));
        StringAssert.Contains(refused.Message, "Label");
        Assert.IsInstanceOfType<Microsoft.ML.Transforms.ValueToKeyMappingTransformer>(model.First(), "the step that needs the label is ML.NET's own");
        var deepVariantsPart = new TransformerChain<ITransformer>(model.Skip(1).ToArray());
        Assert.HasCount(5, TestData.Scores(deepVariantsPart.Transform(unlabelled)));
    }

    // Saves the model, has PlainMLNet.Host predict the rows, and compares its predictions with this process's.
    private void Compare(MLContext ml, ITransformer model, string name, DataViewSchema schema, IReadOnlyList<float[]> rows, string columns, string output)
    {
        Directory.CreateDirectory(Folder);
        string zip = Path.Combine(Folder, name + ".zip"), tsv = Path.Combine(Folder, name + ".tsv"), predictions = Path.Combine(Folder, name + ".out.tsv");
        ml.Model.Save(model, schema, zip);
        File.WriteAllLines(tsv, rows.Select(r => string.Join('\t', r.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))));

        var (code, log) = Hosts.Run(Hosts.PlainMLNet, [zip, tsv, columns, output, predictions], TimeSpan.FromMinutes(2));
        Assert.AreEqual(0, code, log);
        string assemblies = log.Split('\n').Single(l => l.StartsWith("assemblies:", StringComparison.Ordinal));
        Assert.IsFalse(assemblies.Contains("DeepVariants") || assemblies.Contains("TorchSharp"), assemblies);

        // The same rows, read the same way, scored here.
        var hostRows = File.ReadAllLines(predictions).Select(l => l.Split('\t').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        var loader = new TextLoader.Column[] { Column(columns) };
        var scored = model.Transform(ml.Data.LoadFromTextFile(tsv, loader, separatorChar: '\t'));
        var here = scored.Schema[output].Type is VectorDataViewType
            ? TestData.Scores(scored, output)
            : scored.GetColumn<float>(output).Select(v => new[] { v }).ToArray();
        Assert.HasCount(rows.Count, hostRows);
        float gap = TestData.MaxAbsDifference(here, hostRows);
        TestContext.WriteLine($"{name}: {rows.Count} rows, '{output}' differs by at most {gap} between this process and plain ML.NET");
        Assert.IsLessThanOrEqualTo(1e-5f, gap);
    }

    private static TextLoader.Column Column(string spec)
    {
        var parts = spec.Split(':');
        var range = parts[2].Split('-');
        var kind = parts[1] == "I4" ? DataKind.Int32 : DataKind.Single;
        var textRange = range.Length == 1 ? new TextLoader.Range(int.Parse(range[0], CultureInfo.InvariantCulture))
            : range[1] == "*" ? new TextLoader.Range(int.Parse(range[0], CultureInfo.InvariantCulture), null) { AutoEnd = false, VariableEnd = true }
            : new TextLoader.Range(int.Parse(range[0], CultureInfo.InvariantCulture), int.Parse(range[1], CultureInfo.InvariantCulture));
        return new TextLoader.Column(parts[0], kind, [textRange]);
    }

    // A 28x28 grayscale image (0-1) as 32x32 RGB pixels (0-255), channel-major, centred on a black border.
    private static float[] Rgb32(float[] gray)
    {
        var pixels = new float[3 * 32 * 32];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++)
                    pixels[c * 1024 + (y + 2) * 32 + x + 2] = gray[y * 28 + x] * 255;
        return pixels;
    }

    private sealed class PixelRow
    {
        [VectorType(3 * 32 * 32)]
        public float[] Pixels { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class FeaturesOnly
    {
        [VectorType(784)]
        public float[] Features { get; set; } = [];
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Onnx;
using Onnx;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Fine-tuning any family's last blocks, and continuing from a classifier this package saved.</summary>
[TestClass]
public sealed class FineTuningTests
{
    public TestContext TestContext { get; set; } = null!;

    // A residual, a dense, an Inception, an inverted-residual, an EfficientNet, a Fire and a plain-chain family.
    public static IEnumerable<object[]> Families =>
        [["resnet18"], ["densenet121"], ["googlenet"], ["inception_v3"], ["mobilenet_v2"], ["efficientnet_b0"], ["squeezenet1_1"], ["vgg11_bn"]];

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void TheLastTwoBlocksTrainExactlyTheirParametersAndEveryOtherWeightStaysBitIdentical(string family)
    {
        var graph = OnnxFamilyTests.Find(family, 17);
        string path = Path.Combine(OnnxFamilyTests.Fixtures, graph.File);
        var ml = new MLContext(seed: 1);
        var backbone = PretrainedBackboneOptions.FromClassifier(path);
        Assert.AreEqual((3, graph.Size, graph.Size), (backbone.Channels, backbone.ImageHeight, backbone.ImageWidth), "read from the graph's input");
        var result = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
        {
            Backbone = backbone, Training = BackboneTraining.LastBlocks, TrainableBlocks = 2, Epochs = 1, BatchSize = 8,
            LearningRate = 1e-2f, Device = TorchDeviceKind.Cpu,
        }).Train(Rgb(ml, graph.Size, count: 16));

        // The backbone is cut where the graph's classifier layer (a final Gemm) reads its features; the blocks are the cut graph's.
        byte[] onnx = File.ReadAllBytes(path);
        using var imported = OnnxImporter.Import(onnx, ClassifierInput(onnx));
        var lastTwo = imported.Blocks.TakeLast(2).SelectMany(b => b).ToList();
        CollectionAssert.AreEquivalent(lastTwo, result.TrainableNodes.ToList(), "the trainable nodes are the last two blocks'");
        long named = lastTwo.Sum(n => imported.NodeParameters(n).Sum(p => p.numel()));
        var original = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Initializer.ToDictionary(i => i.Name, i => i.RawData);
        var trained = ModelProto.Parser.ParseFrom(result.OnnxModel).Graph.Initializer.ToDictionary(i => i.Name, i => i.RawData);
        var trainedNames = lastTwo.SelectMany(imported.NodeInitializers).ToHashSet();
        int changed = 0, kept = 0;
        foreach (var (name, value) in trained.Where(t => original.ContainsKey(t.Key)))
        {
            bool same = value.Equals(original[name]);
            if (trainedNames.Contains(name))
                changed += same ? 0 : 1;
            else
            {
                Assert.IsTrue(same, $"{family}: '{name}' is outside the last two blocks and changed");
                kept++;
            }
        }
        TestContext.WriteLine($"{family}: {imported.Blocks.Count} blocks; the last two hold {lastTwo.Count} nodes and {named:N0} weights " +
            $"(of {graph.Parameters:N0}), {changed} of their initializers changed; {kept} others bit-identical; trainable with the head {result.ParameterCount:N0}");
        Assert.AreEqual(named + ((FineTunedHead(result.OnnxModel) is var (rows, columns)) ? rows * (columns + 1) : 0), result.ParameterCount,
            "the trained parameters are the two blocks' weights and the head, counted");
        Assert.IsGreaterThan(0, changed, "the last two blocks did train");
        Assert.IsGreaterThan(0, kept);
    }

    [TestMethod]
    public void ASavedCnnIsFineTunedToNewClassesAndScoresWellAboveChance()
    {
        var ml = new MLContext(seed: 1);
        string zip = SavedCnn(ml);
        var newClasses = new[] { "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };
        var result = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
        {
            Backbone = PretrainedBackboneOptions.FromClassifier(zip), Head = PretrainedHead.Replace, Training = BackboneTraining.LastBlocks,
            TrainableBlocks = 1, Epochs = 4, BatchSize = 32, LearningRate = 3e-3f, Device = TorchDeviceKind.Cpu,
        }).Train(Gray(ml, FashionMnistSplit.Train, newClasses, 600));
        var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(Gray(ml, FashionMnistSplit.Test, newClasses, 300)));
        TestContext.WriteLine($"a CNN saved for five classes, fine-tuned to five others: {metrics.MicroAccuracy:P1} (chance 20 %)");
        Assert.IsGreaterThan(0.6, metrics.MicroAccuracy);
    }

    [TestMethod]
    public void KeepingASavedCnnsHeadStartsFromItsPredictions()
    {
        var ml = new MLContext(seed: 1);
        string zip = SavedCnn(ml);
        var saved = ml.Model.Load(zip, out _);
        var test = Gray(ml, FashionMnistSplit.Test, OldClasses, 100);
        var continued = ml.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
        {
            Backbone = PretrainedBackboneOptions.FromClassifier(zip), Head = PretrainedHead.Keep, Training = BackboneTraining.Frozen,
            Epochs = 1, LearningRate = 1e-12f, Device = TorchDeviceKind.Cpu,
        }).Fit(Gray(ml, FashionMnistSplit.Train, OldClasses, 100));
        float gap = TestData.MaxAbsDifference(TestData.Scores(saved.Transform(test)), TestData.Scores(continued.Transform(test)));
        TestContext.WriteLine($"kept head: scores differ from the saved model's by at most {gap}");
        Assert.IsLessThanOrEqualTo(1e-4f, gap, "the kept layer and the backbone are the saved model's");
    }

    private static readonly string[] OldClasses = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"];

    private string SavedCnn(MLContext ml)
    {
        string zip = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"five-{Guid.NewGuid():N}.zip");
        var train = Gray(ml, FashionMnistSplit.Train, OldClasses, 600);
        var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 3, BatchSize = 32, Device = TorchDeviceKind.Cpu,
            Architecture = new CnnArchitecture { Width = 8, HiddenSize = 32 },
        }).Fit(train);
        ml.Model.Save(model, train.Schema, zip);
        return zip;
    }

    // Fashion-MNIST images of some classes, the label keyed in the order the classes are listed.
    private static IDataView Gray(MLContext ml, FashionMnistSplit split, string[] classes, int count)
    {
        var rows = FashionMnist.Read(split, maxRows: split == FashionMnistSplit.Train ? 5000 : 1000).Where(r => classes.Contains(r.Label)).Take(count);
        var data = ml.Data.LoadFromEnumerable(rows);
        var order = ml.Data.LoadFromEnumerable(classes.Select(c => new ClassName { Label = c }));
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: order).Fit(data).Transform(data);
    }

    // Fashion-MNIST items as size x size RGB pixel vectors (0-1) for the torchvision graphs, labelled with their 10 classes.
    private static IDataView Rgb(MLContext ml, int size, int count)
    {
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: count).Select(r =>
        {
            var pixels = new float[3 * size * size];
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                        pixels[c * size * size + y * size + x] = r.Features[y * 28 / size * 28 + x * 28 / size];
            return new PixelRow { Pixels = pixels, Label = r.Label };
        }).ToList();
        var definition = SchemaDefinition.Create(typeof(PixelRow));
        definition[nameof(PixelRow.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        var data = ml.Data.LoadFromEnumerable(rows, definition);
        var order = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(c => new ClassName { Label = c }));
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: order).Fit(data).Transform(data);
    }

    // The value a graph's final Gemm reads (through reshapes or a softmax to the output), else the graph's output.
    private static string? ClassifierInput(byte[] onnx)
    {
        var graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        var producers = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        string value = graph.Output[0].Name;
        while (producers.TryGetValue(value, out var node) && node.OpType is "Identity" or "Reshape" or "Flatten" or "Softmax")
            value = node.Input[0];
        return producers.TryGetValue(value, out var gemm) && gemm.OpType == "Gemm" ? gemm.Input[0] : null;
    }

    // The new head's shape in the exported graph: the last Gemm's weight.
    private static (long Rows, long Columns)? FineTunedHead(byte[] onnx)
    {
        var graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        var gemm = graph.Node.Last(n => n.OpType == "Gemm");
        var weight = graph.Initializer.Single(i => i.Name == gemm.Input[1]);
        return (weight.Dims[0], weight.Dims[1]);
    }

    private sealed class PixelRow
    {
        public float[] Pixels { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Quantization;
using Onnx;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class QuantizationTests
{
    public TestContext TestContext { get; set; } = null!;

    private static FitResult Fit(MLContext ml, IDataView train, CnnFamily family) =>
        ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 3, Device = TorchDeviceKind.Cpu, Seed = 3,
            Architecture = new CnnArchitecture { Family = family },
        }).Train(train);

    [TestMethod]
    [DataRow(CnnFamily.LeNet)]
    [DataRow(CnnFamily.Vgg)]
    public void AnInt8ModelPredictsAsTheFloatModelDoesFromUnderAThirdOfItsSize(CnnFamily family)
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 3000));
        var test = TestData.Keyed(ml, TestData.Test(ml, 1000));
        var fitted = Fit(ml, train, family);
        var int8 = ml.Transforms.DeepVariants.QuantizeInt8(fitted, train, new QuantizationOptions { CalibrationRows = 256 });

        var floatGraph = ModelProto.Parser.ParseFrom(fitted.OnnxModel).Graph;
        var graph = ModelProto.Parser.ParseFrom(int8.OnnxModel).Graph;
        int products = floatGraph.Node.Count(n => n.OpType is "Conv" or "Gemm" or "MatMul");
        int norms = floatGraph.Node.Count(n => n.OpType == "BatchNormalization");
        Assert.AreEqual(products, int8.Report.QuantizedNodes, "every convolution and dense layer is quantized");
        Assert.IsGreaterThan(0, int8.Report.FoldedBatchNorms);
        Assert.AreEqual(norms - int8.Report.FoldedBatchNorms, graph.Node.Count(n => n.OpType == "BatchNormalization"), "folded ones are gone");
        Assert.IsTrue(graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float).All(i => i.Dims.Aggregate(1L, (a, b) => a * b) < 1024),
            "no large float weight is left: weights are int8, biases int32");
        // QDQ form: each convolution and dense layer reads dequantized int8 weights and a dequantized activation, and its output is quantized.
        var producer = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        foreach (var node in graph.Node.Where(n => n.OpType is "Conv" or "Gemm" or "MatMul"))
        {
            Assert.AreEqual("DequantizeLinear", producer[node.Input[0]].OpType, $"{node.Name}'s activation");
            Assert.AreEqual("DequantizeLinear", producer[node.Input[1]].OpType, $"{node.Name}'s weight");
            // The output is quantized as it comes, or after the Relu that alone reads it; the logits and a residual sum's inputs stay float.
            var readers = graph.Node.Where(n => n.Input.Contains(node.Output[0])).ToList();
            string quantized = readers is [{ OpType: "Relu" } relu] ? relu.Output[0] : node.Output[0];
            if (readers.Any(r => r.OpType is "Reshape" or "Identity" or "Add"))
                continue;
            Assert.IsTrue(graph.Node.Any(n => n.OpType == "QuantizeLinear" && n.Input[0] == quantized), $"{node.Name}'s output");
        }

        var floatLabels = PredictedClasses.Of(fitted.Model.Transform(test), "PredictedLabel");
        var int8Labels = PredictedClasses.Of(int8.Model.Transform(test), "PredictedLabel");
        double agreement = floatLabels.Zip(int8Labels).Average(p => p.First == p.Second ? 1.0 : 0.0);
        double floatAccuracy = ml.MulticlassClassification.Evaluate(fitted.Model.Transform(test)).MicroAccuracy;
        double int8Accuracy = ml.MulticlassClassification.Evaluate(int8.Model.Transform(test)).MicroAccuracy;
        TestContext.WriteLine($"{family}: {int8.Report.QuantizedNodes} nodes, {int8.Report.FoldedBatchNorms} batch norms folded; {int8.Report.FloatBytes:N0} -> {int8.Report.QuantizedBytes:N0} bytes " +
            $"({int8.Report.SizeRatio:P1}); predictions agree on {agreement:P1} of 1,000 test rows; accuracy {floatAccuracy:P2} float, {int8Accuracy:P2} int8");
        Assert.IsGreaterThanOrEqualTo(0.99, agreement);
        Assert.IsLessThanOrEqualTo(0.30, int8.Report.SizeRatio);
        Assert.AreEqual(floatAccuracy, int8Accuracy, 0.01);

        // An ordinary ML.NET model: saved, loaded in a new context, the same predictions.
        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"int8-{family}-{Guid.NewGuid():N}.zip");
        ml.Model.Save(int8.Model, train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        CollectionAssert.AreEqual(int8Labels, PredictedClasses.Of(loaded.Transform(test), "PredictedLabel"));
    }

    [TestMethod]
    public void BadQuantizationInputsAreRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 300));
        var fitted = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu,
            Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 4, HiddenSize = 8 },
        }).Train(train);
        var zero = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.QuantizeInt8(fitted, train, new QuantizationOptions { CalibrationRows = 0 }));
        StringAssert.Contains(zero.Message, "CalibrationRows");
        var empty = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.DeepVariants.QuantizeInt8(fitted, ml.Data.SkipRows(train, 1_000_000)));
        StringAssert.Contains(empty.Message, "calibration data has no rows");
        var rows = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 5).ToList();
        rows[3].Features[100] = float.NaN;
        var nan = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.DeepVariants.QuantizeInt8(fitted, TestData.Keyed(ml, ml.Data.LoadFromEnumerable(rows))));
        TestContext.WriteLine(nan.Message);
        StringAssert.Contains(nan.Message, "Column 'Features' has NaN at position 100 of row 3 in the calibration data");
        var wrong = ml.Data.LoadFromEnumerable(new[] { new OtherRow() });
        var missing = Assert.Throws<Exception>(() => ml.Transforms.DeepVariants.QuantizeInt8(fitted, wrong));
        TestContext.WriteLine(missing.Message);
        StringAssert.Contains(missing.Message, "Features");
        StringAssert.Contains(missing.Message, "calibration");
    }

    private sealed class OtherRow
    {
        [Microsoft.ML.Data.VectorType(4)]
        public float[] Pixels { get; set; } = new float[4];
    }
}

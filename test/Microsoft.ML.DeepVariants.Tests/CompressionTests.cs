using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Distillation;
using Microsoft.ML.DeepVariants.Pruning;
using Onnx;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class CompressionTests
{
    public TestContext TestContext { get; set; } = null!;

    // The student: a LeNet with 4 and 8 channels and a 16-unit hidden layer, about 4% of the default LeNet's parameters.
    private static CnnClassifierOptions SmallStudent(int epochs) => new()
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = epochs, BatchSize = 64, LearningRate = 3e-3f, Seed = 5, Device = TorchDeviceKind.Cpu,
        Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 4, HiddenSize = 16, Dropout = 0 },
    };

    // The teacher learns from 5,000 images, the student from the first 500 of them: it cannot reach the teacher alone.
    private static readonly Lazy<(MLContext Context, ITransformer Model)> Teacher = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 2, Device = TorchDeviceKind.Cpu,
        }).Fit(TestData.Keyed(ml, TestData.Train(ml, 5000)));
        return (ml, model);
    });

    [TestMethod]
    public void DistilledStudentBeatsTheSameStudentTrainedAlone()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 500));
        var test = TestData.Keyed(ml, TestData.Test(ml, 1000));
        var teacher = Teacher.Value.Model;

        double Accuracy(ITransformer model) => ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
        var alone = ml.Transforms.DeepVariants.CnnClassifier(SmallStudent(epochs: 20)).Train(train);
        var distilled = ml.Transforms.DeepVariants.Distill(teacher, SmallStudent(epochs: 20), temperature: 2, alpha: 0.5).Train(train);

        double teacherAccuracy = Accuracy(teacher), aloneAccuracy = Accuracy(alone.Model), distilledAccuracy = Accuracy(distilled.Model);
        TestContext.WriteLine($"teacher {teacherAccuracy:P2}; student ({alone.ParameterCount:N0} parameters, 500 images): alone {aloneAccuracy:P2}, distilled {distilledAccuracy:P2}");
        Assert.IsGreaterThan(aloneAccuracy + 0.02, teacherAccuracy, "the teacher must be clearly better than the student alone for the test to mean anything");
        Assert.IsGreaterThan(aloneAccuracy, distilledAccuracy, $"distilled {distilledAccuracy:P2} vs alone {aloneAccuracy:P2}");

        // The student is an ordinary model: it saves, loads and predicts the same without the teacher.
        AssertSameAfterSaveAndLoad(ml, distilled.Model, train, test, "distilled.zip");
    }

    [TestMethod]
    public void TemperatureOneAndAlphaZeroReproducePlainTrainingExactly()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 400));
        var test = TestData.Keyed(ml, TestData.Test(ml, 200));
        var options = SmallStudent(epochs: 2);
        options.Architecture.Dropout = 0.25f; // dropout draws from the seeded generator: both runs must draw the same

        var plain = ml.Transforms.DeepVariants.CnnClassifier(options).Fit(train);
        var distilled = ml.Transforms.DeepVariants.Distill(Teacher.Value.Model, options, temperature: 1, alpha: 0).Fit(train);
        var softOnly = ml.Transforms.DeepVariants.Distill(Teacher.Value.Model, options, temperature: 1, alpha: 0.5).Fit(train);

        var plainScores = TestData.Scores(plain.Transform(test));
        Assert.AreEqual(0f, TestData.MaxAbsDifference(plainScores, TestData.Scores(distilled.Transform(test))), "alpha 0 is plain training");
        Assert.IsGreaterThan(1e-3f, TestData.MaxAbsDifference(plainScores, TestData.Scores(softOnly.Transform(test))), "alpha 0.5 must differ");
    }

    [TestMethod]
    public void AClassicMlNetTeacherWithProbabilitiesIsReadAsLogits()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 400));
        // ML.NET's maximum-entropy model outputs probabilities, its slots named after the label's keys.
        var teacher = ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new Microsoft.ML.Trainers.LbfgsMaximumEntropyMulticlassTrainer.Options { MaximumNumberOfIterations = 30 }).Fit(train);
        var scores = TestData.Scores(teacher.Transform(train));
        Assert.IsLessThan(1e-4, Math.Abs(scores[0].Sum() - 1), "the teacher's scores are probabilities");

        var result = ml.Transforms.DeepVariants.Distill(teacher, SmallStudent(epochs: 8), temperature: 2, alpha: 0.5).Train(train);
        var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(TestData.Keyed(ml, TestData.Test(ml, 300))));
        TestContext.WriteLine($"student of a maximum-entropy teacher: {metrics.MicroAccuracy:P2}, losses {string.Join(", ", result.History.Epochs.Select(e => e.Loss.ToString("F3")))}");
        Assert.IsLessThan(result.History.Epochs[0].Loss, result.History.Epochs[^1].Loss, "the distillation loss falls");
        Assert.IsGreaterThan(0.5, metrics.MicroAccuracy);
    }

    [TestMethod]
    public void ATeacherWithTheWrongNumberOfClassesIsRejected()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 200));
        var teacher = ml.Transforms.Concatenate("Score", "Features").Fit(train); // 784 "scores"
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.Distill(teacher, SmallStudent(1)).Fit(train));
        StringAssert.Contains(e.Message, "'Score' has 784 class scores but the student's label has 10 classes");
    }

    [TestMethod]
    public void PruningToHalfLeavesHalfTheWeightsAtZeroAndStillPredictsThroughSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 2000));
        var test = TestData.Keyed(ml, TestData.Test(ml, 500));
        var options = SmallStudent(epochs: 3);
        options.Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 8, HiddenSize = 64 };
        var fitted = ml.Transforms.DeepVariants.CnnClassifier(options).Train(train);

        var pruned = ml.Transforms.DeepVariants.Prune(fitted, new PruningOptions { Sparsity = 0.5, Epochs = 1, Seed = 3 }).Train(train, test);
        var report = pruned.Report;
        TestContext.WriteLine($"sparsity {report.Sparsity:P2}; accuracy {report.AccuracyBefore:P2} -> pruned {report.AccuracyPruned:P2} -> fine-tuned {report.AccuracyAfter:P2}");
        foreach (var layer in report.Layers)
            TestContext.WriteLine($"  {layer.Name}: {layer.Zeros:N0} of {layer.Weights:N0} zero ({layer.Sparsity:P1})");

        long weights = report.Layers.Sum(l => l.Weights);
        Assert.AreEqual(weights / 2, report.Layers.Sum(l => l.Zeros), "exactly half of the pruned layers' weights are zero after fine-tuning");
        Assert.AreEqual(4, report.Layers.Count, "two convolutions, the hidden layer and the classifier");

        // The exported graph carries the zeros: count them in its Conv and Gemm weights.
        var graph = ModelProto.Parser.ParseFrom(pruned.OnnxModel).Graph;
        var weightNames = graph.Node.Where(n => n.OpType is "Conv" or "Gemm").Select(n => n.Input[1]).ToHashSet();
        var onnxWeights = graph.Initializer.Where(t => weightNames.Contains(t.Name)).SelectMany(t => t.FloatData.Count > 0 ? t.FloatData.ToArray() : Floats(t.RawData.ToByteArray())).ToArray();
        Assert.AreEqual(weights, onnxWeights.Length);
        Assert.AreEqual(weights / 2, onnxWeights.Count(v => v == 0f), "the ONNX graph's weights are half zeros");

        var before = ml.MulticlassClassification.Evaluate(fitted.Model.Transform(test)).MicroAccuracy;
        var after = ml.MulticlassClassification.Evaluate(pruned.Model.Transform(test)).MicroAccuracy;
        Assert.AreEqual(report.AccuracyAfter!.Value, after, 1e-9, "the report's accuracy is the ML.NET model's");
        Assert.AreEqual(report.AccuracyBefore!.Value, before, 1e-9);
        Assert.IsGreaterThan(before - 0.05, after, "a 50% pruned and fine-tuned LeNet keeps its accuracy within 5 points");

        AssertSameAfterSaveAndLoad(ml, pruned.Model, train, test, "pruned.zip");
    }

    [TestMethod]
    public void PerLayerPruningHitsEachLayersShare()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 300));
        var fitted = ml.Transforms.DeepVariants.CnnClassifier(SmallStudent(epochs: 1)).Train(train);
        var options = new PruningOptions { Scope = PruningScope.PerLayer, Sparsity = 0.8, LayerSparsity = { ["head.classifier.weight"] = 0.25 } };
        var report = ml.Transforms.DeepVariants.Prune(fitted, options).Train(train).Report;
        foreach (var layer in report.Layers)
            Assert.AreEqual(Math.Floor((layer.Name == "head.classifier.weight" ? 0.25 : 0.8) * layer.Weights), layer.Zeros, layer.Name);

        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.DeepVariants.Prune(fitted,
            new PruningOptions { Scope = PruningScope.PerLayer, LayerSparsity = { ["nope.weight"] = 0.5 } }).Fit(train));
        StringAssert.Contains(e.Message, "'nope.weight'");
    }

    private void AssertSameAfterSaveAndLoad(MLContext ml, ITransformer model, IDataView train, IDataView test, string file)
    {
        string path = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), file);
        ml.Model.Save(model, train.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        Assert.IsLessThanOrEqualTo(1e-5f, TestData.MaxAbsDifference(TestData.Scores(model.Transform(test)), TestData.Scores(loaded.Transform(test))));
    }

    private static IEnumerable<float> Floats(byte[] raw)
    {
        for (int i = 0; i < raw.Length; i += 4)
            yield return BitConverter.ToSingle(raw, i);
    }
}

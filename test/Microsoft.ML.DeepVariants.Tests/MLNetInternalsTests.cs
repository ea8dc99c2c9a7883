using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// One test per ML.NET internal that MLNetInternals reaches by reflection, each through the public path that uses it, so
/// an ML.NET update that moves one fails here, by name, rather than somewhere in a fit.
/// </summary>
[TestClass]
public sealed class MLNetInternalsTests
{
    private static CnnClassifierOptions Small() => new()
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 },
    };

    private static List<string> Listen(MLContext ml)
    {
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        return messages;
    }

    [TestMethod]
    public void GetEnvironment_ACatalogsEnvironmentCarriesTheContextsLog()
    {
        var ml = new MLContext(seed: 1);
        var messages = Listen(ml);
        ml.Transforms.DeepVariants.CnnClassifier(Small()).Fit(TestData.Keyed(ml, TestData.Train(ml, 60)));
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("Training a LeNet CNN")));
    }

    [TestMethod]
    public void GetSeed_TheContextsSeedSeedsAFitWithoutOne()
    {
        var ml = new MLContext(seed: 4242);
        var messages = Listen(ml);
        ml.Transforms.DeepVariants.CnnClassifier(Small()).Fit(TestData.Keyed(ml, TestData.Train(ml, 60)));
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("seed 4242.")), string.Join("\n", messages.Where(m => m.Contains("seed"))));
    }

    [TestMethod]
    public void GetGpuDeviceId_TheContextsDeviceIdIsRead()
    {
        var ml = new MLContext(seed: 1) { GpuDeviceId = -3 };
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.Transforms.DeepVariants.CnnClassifier(Small()).Fit(TestData.Keyed(ml, TestData.Train(ml, 20))));
        StringAssert.Contains(error.Message, "GpuDeviceId");
        StringAssert.Contains(error.Message, "-3");
    }

    [TestMethod]
    public void GetFallbackToCpu_TheContextsFallbackIsRead()
    {
        if (TorchSharp.torch.cuda.is_available())
            Assert.Inconclusive("This machine has CUDA; the fallback cannot be observed.");
        var ml = new MLContext(seed: 1) { FallbackToCpu = true };
        var messages = Listen(ml);
        var options = Small();
        options.Device = TorchDeviceKind.Cuda;
        ml.Transforms.DeepVariants.CnnClassifier(options).Fit(TestData.Keyed(ml, TestData.Train(ml, 20)));
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("MLContext.FallbackToCpu is set")));
    }

    [TestMethod]
    public void CreateTransformsCatalog_TheTrainersCatalogEntryFitsAndServes()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 600));
        var options = Small();
        options.Epochs = 3;
        options.BatchSize = 32;
        var model = ml.MulticlassClassification.Trainers.Cnn(options).Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(TestData.Keyed(ml, TestData.Test(ml, 100))));
        Assert.IsGreaterThan(0.5, metrics.MicroAccuracy, "56 steps of a small CNN learn Fashion-MNIST's classes");
    }

    [TestMethod]
    public void CreateSoftmaxHead_ScoreIsTheSoftmaxOfTheGraphsLogitsAndPredictedLabelCarriesTheClassNames()
    {
        var ml = new MLContext(seed: 1);
        var result = ml.Transforms.DeepVariants.CnnClassifier(Small()).Train(TestData.Train(ml, 200));
        var test = TestData.Test(ml, 5);
        var scored = result.Model.Transform(test);
        float[][] scores = TestData.Scores(scored);
        using var session = new InferenceSession(result.OnnxModel);
        var features = test.GetColumn<float[]>("Features").ToArray();
        for (int row = 0; row < features.Length; row++)
        {
            using var input = OrtValue.CreateTensorValueFromMemory(features[row], [features[row].Length]);
            using var run = new RunOptions();
            using var outputs = session.Run(run, new Dictionary<string, OrtValue> { ["Features"] = input }, [session.OutputNames[0]]);
            var logits = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
            for (int k = 0; k < logits.Length; k++)
                Assert.AreEqual(Math.Exp(logits[k] - max) / sum, scores[row][k], 1e-5);
        }
        CollectionAssert.AreEqual(Datasets.FashionMnist.ClassNames.Order().ToArray(), PredictedClasses.Names(scored, "PredictedLabel").Order().ToArray());
    }

    [TestMethod]
    public void CreateScalarScoreHead_TheAutoencodersScoreIsItsReconstructionError()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.DeepVariants.DenoisingAutoencoder(new DenoisingAutoencoderOptions { CodeSize = 8, Epochs = 1, Device = TorchDeviceKind.Cpu })
            .Fit(TestData.Train(ml, 200));
        var scored = model.Transform(TestData.Test(ml, 10));
        Assert.AreEqual(NumberDataViewType.Single, scored.Schema["Score"].Type, "a scalar, like ML.NET's anomaly detectors'");
        var inputs = scored.GetColumn<float[]>("Features").ToArray();
        var outputs = scored.GetColumn<float[]>("Denoised").ToArray();
        var score = scored.GetColumn<float>("Score").ToArray();
        for (int row = 0; row < score.Length; row++)
            Assert.AreEqual(inputs[row].Zip(outputs[row], (a, b) => (a - b) * (a - b)).Average(), score[row], 1e-5);
    }

    private sealed class Logit
    {
        [VectorType(1)]
        public float[] Value { get; set; } = [];

        public bool Label { get; set; }
    }

    [TestMethod]
    public void CreateBinaryLogitHead_ScoreIsTheLogitProbabilityItsSigmoidAndEvaluateReadsThem()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { -2f, -0.5f, 0.25f, 3f }.Select(v => new Logit { Value = [v], Label = v > -1 }));
        var head = MLNetInternals.CreateBinaryLogitHead(MLNetInternals.GetEnvironment(ml.Data), data.Schema, nameof(Logit.Value));
        var scored = head.Transform(data);
        CollectionAssert.AreEqual(new[] { -2f, -0.5f, 0.25f, 3f }, scored.GetColumn<float>("Score").ToArray());
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        var sigmoid = new[] { -2.0, -0.5, 0.25, 3.0 }.Select(v => (float)(1 / (1 + Math.Exp(-v)))).ToArray();
        Assert.IsLessThan(1e-6, probabilities.Zip(sigmoid, (a, b) => Math.Abs(a - b)).Max());
        CollectionAssert.AreEqual(new[] { false, false, true, true }, scored.GetColumn<bool>("PredictedLabel").ToArray());
        var metrics = ml.BinaryClassification.Evaluate(scored);
        Assert.AreEqual(0.75, metrics.Accuracy, 1e-9);
    }

    [TestMethod]
    public void AppendRows_TheRowsOfBothViewsInOrder()
    {
        var ml = new MLContext(seed: 1);
        var first = ml.Data.LoadFromEnumerable(new[] { 1f, 2f }.Select(v => new Logit { Value = [v] }));
        var second = ml.Data.LoadFromEnumerable(new[] { 3f }.Select(v => new Logit { Value = [v], Label = true }));
        var all = MLNetInternals.AppendRows(MLNetInternals.GetEnvironment(ml.Data), first, second);
        CollectionAssert.AreEqual(new[] { 1f, 2f, 3f }, all.GetColumn<float[]>(nameof(Logit.Value)).Select(v => v[0]).ToArray());
        CollectionAssert.AreEqual(new[] { false, false, true }, all.GetColumn<bool>(nameof(Logit.Label)).ToArray());
    }

    [TestMethod]
    public void SchemaColumn_TheOutputSchemaHasMLNetsColumnShapes()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Keyed(ml, TestData.Train(ml, 20));
        var output = ml.Transforms.DeepVariants.CnnClassifier(Small()).GetOutputSchema(ToSchemaShape(data.Schema));
        var predicted = output.Single(c => c.Name == "PredictedLabel");
        Assert.IsTrue(predicted.IsKey);
        Assert.AreEqual(SchemaShape.Column.VectorKind.Scalar, predicted.Kind);
        var score = output.Single(c => c.Name == "Score");
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, score.Kind);
        Assert.IsTrue(score.Annotations.Any(a => a.Name == "SlotNames"));
    }

    // ML.NET builds schema shapes from schemas internally (SchemaShape.Create); a test may reach it to get one.
    internal static SchemaShape ToSchemaShape(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic, [typeof(DataViewSchema)])!
            .Invoke(null, [schema])!;
}

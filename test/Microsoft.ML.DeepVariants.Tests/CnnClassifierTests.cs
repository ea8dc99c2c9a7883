using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class CnnClassifierTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void LeNetLearnsFashionMnistFromAFewThousandImages()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 5000));
        var test = TestData.Keyed(ml, TestData.Test(ml, 1000));
        var estimator = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Architecture = new CnnArchitecture { Family = CnnFamily.LeNet }, Epochs = 2, Device = TorchDeviceKind.Cpu,
        });

        var result = estimator.Train(train);
        var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(test));

        TestContext.WriteLine($"LeNet, 5,000 images, 2 epochs: test accuracy {metrics.MicroAccuracy:P2}, losses {string.Join(", ", result.History.Epochs.Select(e => e.Loss.ToString("F3")))}");
        Assert.IsGreaterThanOrEqualTo(0.80, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy:P2}");
        Assert.AreEqual(2, result.History.Epochs.Count);
        Assert.IsLessThan(result.History.Epochs[0].Loss, result.History.Epochs[1].Loss, "the training loss falls from epoch 1 to epoch 2");
        Assert.AreEqual("cpu", result.History.Device);
    }

    [TestMethod]
    public void SameSeedGivesIdenticalPredictions()
    {
        float[][] Run()
        {
            var ml = new MLContext(seed: 7);
            var train = TestData.Keyed(ml, TestData.Train(ml, 600));
            var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
            {
                ImageHeight = 28, ImageWidth = 28, Architecture = new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 2, Width = 8 }, Epochs = 1, BatchSize = 64,
                Device = TorchDeviceKind.Cpu,
            }).Fit(train);
            return TestData.Scores(model.Transform(TestData.Keyed(ml, TestData.Test(ml, 100))));
        }

        var first = Run();
        var second = Run();
        Assert.AreEqual(0f, TestData.MaxAbsDifference(first, second), "two fits with the same seed must predict identically");
    }

    [TestMethod]
    public void DifferentSeedsGiveDifferentModels()
    {
        float[][] Run(int seed)
        {
            var ml = new MLContext(seed: 1);
            var train = TestData.Keyed(ml, TestData.Train(ml, 300));
            var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
            {
                ImageHeight = 28, ImageWidth = 28, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 }, Epochs = 1, Seed = seed, Device = TorchDeviceKind.Cpu,
            }).Fit(train);
            return TestData.Scores(model.Transform(TestData.Keyed(ml, TestData.Test(ml, 50))));
        }

        Assert.IsGreaterThan(1e-3f, TestData.MaxAbsDifference(Run(1), Run(2)), "the options' seed drives initialisation");
    }

    [TestMethod]
    public void SaveAndLoadInANewContextPredictsTheSame()
    {
        var ml = new MLContext(seed: 3);
        var raw = TestData.Train(ml, 1000);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
            {
                ImageHeight = 28, ImageWidth = 28, Architecture = new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 2, Width = 8 }, Epochs = 1,
                Device = TorchDeviceKind.Cpu,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabelText", "PredictedLabel"));
        var model = pipeline.Fit(raw);
        var test = TestData.Test(ml, 200);
        var before = model.Transform(test);

        string path = Path.Combine(Path.GetTempPath(), $"cnn-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, raw.Schema, path);
            var fresh = new MLContext();
            var loaded = fresh.Model.Load(path, out var inputSchema);
            var after = loaded.Transform(fresh.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 200)));

            Assert.IsLessThanOrEqualTo(1e-5f, TestData.MaxAbsDifference(TestData.Scores(before), TestData.Scores(after)));
            CollectionAssert.AreEqual(before.GetColumn<string>("PredictedLabelText").ToArray(), after.GetColumn<string>("PredictedLabelText").ToArray());
            Assert.AreEqual(FashionMnist.ClassNames.Count, ((VectorDataViewType)after.Schema["Score"].Type).Size);

            // The loaded model is made of ML.NET and ONNX transformers only: nothing from this
            // project (and so nothing that loads TorchSharp or libtorch) takes part in prediction.
            var parts = Flatten(loaded).ToList();
            Assert.IsTrue(parts.Any(p => p.GetType().Name == "OnnxTransformer"));
            foreach (var part in parts)
                Assert.StartsWith("Microsoft.ML", part.GetType().Assembly.GetName().Name!, $"{part.GetType()} comes from {part.GetType().Assembly.GetName().Name}");
            Assert.IsFalse(parts.Any(p => p.GetType().Assembly == typeof(CnnClassifierEstimator).Assembly));

            // A prediction engine works with a plain scalar key and a Score array, as for ML.NET's own trainers.
            var engine = fresh.Model.CreatePredictionEngine<FashionMnistImage, Prediction>(loaded);
            var prediction = engine.Predict(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 1)[0]);
            Assert.HasCount(10, prediction.Score);
            Assert.IsTrue(prediction.PredictedLabel is >= 1 and <= 10);
            Assert.AreEqual(1f, prediction.Score.Sum(), 1e-4f);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void TextLabelsAreConvertedAndPredictedLabelsCarryTheirNames()
    {
        var ml = new MLContext(seed: 5);
        var train = TestData.Train(ml, 400);
        var model = ml.Transforms.DeepVariants.CnnClassifier(28, 28, epochs: 1).Fit(train);
        var scored = model.Transform(TestData.Test(ml, 20));
        var predicted = scored.Schema["PredictedLabel"];
        Assert.IsInstanceOfType<KeyDataViewType>(predicted.Type);
        var names = ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(scored).Transform(scored).GetColumn<string>("PredictedLabel").ToArray();
        Assert.IsTrue(names.All(n => FashionMnist.ClassNames.Contains(n)), string.Join(", ", names));
    }

    [TestMethod]
    public void TheMulticlassTrainersCatalogOffersTheSameEstimator()
    {
        var ml = new MLContext(seed: 2);
        var train = TestData.Keyed(ml, TestData.Train(ml, 1500));
        var estimator = ml.MulticlassClassification.Trainers.Cnn(imageHeight: 28, imageWidth: 28, epochs: 1);
        var metrics = ml.MulticlassClassification.Evaluate(estimator.Fit(train).Transform(TestData.Keyed(ml, TestData.Test(ml, 300))));
        Assert.IsGreaterThan(0.6, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy:P2}");
    }

    [TestMethod]
    public void FeaturizerEmbeddingsFeedAnMLNetTrainer()
    {
        var ml = new MLContext(seed: 4);
        var train = TestData.Keyed(ml, TestData.Train(ml, 2000));
        var test = TestData.Keyed(ml, TestData.Test(ml, 500));
        var pipeline = ml.Transforms.DeepVariants.CnnFeaturizer(new CnnFeaturizerOptions
            {
                ImageHeight = 28, ImageWidth = 28, OutputColumnName = "Embedding", Architecture = new CnnArchitecture { HiddenSize = 64 }, Epochs = 1, Device = TorchDeviceKind.Cpu,
            })
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"));
        var model = pipeline.Fit(train);
        var scored = model.Transform(test);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 64), scored.Schema["Embedding"].Type);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        TestContext.WriteLine($"CNN embedding + LbfgsMaximumEntropy: {metrics.MicroAccuracy:P2}");
        Assert.IsGreaterThan(0.70, metrics.MicroAccuracy, $"accuracy {metrics.MicroAccuracy:P2}");
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(3)]
    public void ImageColumnsAreAcceptedAndConvertedInsideTheModel(int channels)
    {
        var ml = new MLContext(seed: 6);
        var folder = Directory.CreateTempSubdirectory("dv-images");
        try
        {
            var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 300).Select((image, i) =>
            {
                string path = Path.Combine(folder.FullName, $"{i}.png");
                WritePng(path, image.Features);
                return new ImageFile { ImagePath = path, Label = image.Label };
            }).ToList();
            var data = ml.Data.LoadFromEnumerable(rows);
            var pipeline = ml.Transforms.LoadImages("Image", folder.FullName, "ImagePath")
                .Append(ml.Transforms.ResizeImages("Image", 28, 28))
                .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
                .Append(ml.Transforms.DeepVariants.CnnClassifier(0, 0, channels: channels, featureColumnName: "Image", epochs: 3));
            var model = pipeline.Fit(data);
            var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
            Assert.IsGreaterThan(0.5, metrics.MicroAccuracy, "the CNN learns from pixels extracted from the image column");
            var schema = model.Transform(data).Schema;
            Assert.IsNull(schema.GetColumnOrNull("Image.Pixels"), "temporary columns are dropped");
            Assert.IsNull(schema.GetColumnOrNull("Image.Grayscale"), "temporary columns are dropped");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    private static void WritePng(string path, float[] pixels)
    {
        var bytes = new byte[pixels.Length * 4];
        for (int i = 0; i < pixels.Length; i++)
        {
            byte v = (byte)Math.Round(pixels[i] * 255);
            bytes[i * 4] = v; bytes[i * 4 + 1] = v; bytes[i * 4 + 2] = v; bytes[i * 4 + 3] = 255;
        }
        using var image = MLImage.CreateFromPixels(28, 28, MLPixelFormat.Rgba32, bytes);
        image.Save(path);
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer transformer) => transformer is IEnumerable<ITransformer> chain
        ? chain.SelectMany(Flatten)
        : [transformer];

    private sealed class ImageFile
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private sealed class Prediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = [];
    }
}

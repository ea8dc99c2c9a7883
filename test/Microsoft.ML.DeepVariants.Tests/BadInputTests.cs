using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Each bad input fails before training with a message naming the column or option and what was expected.</summary>
[TestClass]
public sealed class BadInputTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static CnnClassifierEstimator Estimator(Action<CnnClassifierOptions>? change = null)
    {
        var options = new CnnClassifierOptions { ImageHeight = 4, ImageWidth = 4, Epochs = 1, Device = TorchDeviceKind.Cpu };
        change?.Invoke(options);
        return Ml.Transforms.DeepVariants.CnnClassifier(options);
    }

    private static IDataView Rows(int count = 8, int size = 16, Func<int, int, float>? value = null, Func<int, string>? label = null) =>
        Ml.Data.LoadFromEnumerable(Enumerable.Range(0, count).Select(i => new DynamicRow
        {
            Features = Enumerable.Range(0, size).Select(j => value?.Invoke(i, j) ?? (i + j) % 3 / 3f).ToArray(),
            Label = label?.Invoke(i) ?? (i % 2 == 0 ? "a" : "b"),
        }), SchemaFor(size));

    private static SchemaDefinition SchemaFor(int size)
    {
        var schema = SchemaDefinition.Create(typeof(DynamicRow));
        schema[nameof(DynamicRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        return schema;
    }

    private static void Expect<TException>(Action fit, params string[] fragments) where TException : Exception
    {
        var error = Assert.Throws<TException>(fit);
        foreach (string fragment in fragments)
            StringAssert.Contains(error.Message, fragment, $"message was: {error.Message}");
    }

    [TestMethod]
    public void MissingFeatureColumn() =>
        Expect<ArgumentOutOfRangeException>(() => Estimator(o => o.FeatureColumnName = "Pixels").Fit(Rows()), "Could not find input column 'Pixels'");

    [TestMethod]
    public void MissingLabelColumn() =>
        Expect<ArgumentOutOfRangeException>(() => Estimator(o => o.LabelColumnName = "Class").Fit(Rows()), "Could not find input column 'Class'");

    [TestMethod]
    public void WrongVectorSize() =>
        Expect<ArgumentOutOfRangeException>(() => Estimator().Fit(Rows(size: 10)), "Features", "expected Vector<Single, 16>", "got Vector<Single, 10>");

    [TestMethod]
    public void WrongItemType()
    {
        var data = Ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(i => new DoubleRow { Features = new double[16], Label = i % 2 == 0 ? "a" : "b" }));
        Expect<ArgumentOutOfRangeException>(() => Estimator().Fit(data), "Schema mismatch for input column 'Features'", "Double");
    }

    [TestMethod]
    public void NaNFeature() =>
        Expect<ArgumentOutOfRangeException>(() => Estimator().Fit(Rows(value: (i, j) => i == 3 && j == 5 ? float.NaN : 0.5f)),
            "Features", "NaN", "row 3", "slot 5");

    [TestMethod]
    public void InfiniteFeature() =>
        Expect<ArgumentOutOfRangeException>(() => Estimator().Fit(Rows(value: (i, j) => i == 1 && j == 0 ? float.PositiveInfinity : 0.5f)),
            "Features", "infinite", "row 1");

    [TestMethod]
    public void EmptyTrainingData() =>
        Expect<ArgumentException>(() => Estimator().Fit(Rows(count: 0)), "training data is empty", "Features");

    [TestMethod]
    public void SingleClassLabel() =>
        Expect<ArgumentException>(() => Estimator().Fit(Rows(label: _ => "only")), "Label", "single class", "only");

    [TestMethod]
    public void ImageSizeDifferentFromTheDeclaredShape()
    {
        var folder = Directory.CreateTempSubdirectory("dv-bad-image");
        try
        {
            using (var image = MLImage.CreateFromPixels(8, 8, MLPixelFormat.Rgba32, new byte[8 * 8 * 4]))
                image.Save(Path.Combine(folder.FullName, "a.png"));
            var data = Ml.Data.LoadFromEnumerable(new[] { new ImageRow { Path = "a.png", Label = "a" }, new ImageRow { Path = "a.png", Label = "b" } });
            var images = Ml.Transforms.LoadImages("Image", folder.FullName, "Path").Append(Ml.Transforms.ResizeImages("Image", 8, 8)).Fit(data).Transform(data);
            Expect<ArgumentOutOfRangeException>(() => Estimator(o => { o.FeatureColumnName = "Image"; o.ImageHeight = 28; o.ImageWidth = 28; }).Fit(images),
                "Image column 'Image'", "8x8", "28x28");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [TestMethod]
    [DataRow(0)]
    [DataRow(-3)]
    public void BatchSizeMustBePositive(int value) =>
        Expect<ArgumentOutOfRangeException>(() => Estimator(o => o.BatchSize = value).Fit(Rows()), "BatchSize");

    [TestMethod]
    [DataRow(0)]
    [DataRow(-1)]
    public void EpochsMustBePositive(int value) =>
        Expect<ArgumentOutOfRangeException>(() => Estimator(o => o.Epochs = value).Fit(Rows()), "Epochs");

    [TestMethod]
    [DataRow(0f)]
    [DataRow(-0.01f)]
    [DataRow(float.NaN)]
    public void LearningRateMustBePositive(float value) =>
        Expect<ArgumentOutOfRangeException>(() => Estimator(o => o.LearningRate = value).Fit(Rows()), "LearningRate");

    [TestMethod]
    public void VectorInputNeedsADeclaredImageSize() =>
        Expect<ArgumentOutOfRangeException>(() => Estimator(o => { o.ImageHeight = 0; o.ImageWidth = 0; }).Fit(Rows()), "ImageHeight", "Features");

    private sealed class DynamicRow
    {
        public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class DoubleRow
    {
        [VectorType(16)]
        public double[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class ImageRow
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }
}

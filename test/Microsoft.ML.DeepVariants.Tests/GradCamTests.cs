using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class GradCamTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DataRow(CnnFamily.LeNet)]
    [DataRow(CnnFamily.Vgg)]
    [DataRow(CnnFamily.ResNet)]
    [DataRow(CnnFamily.Inception)]
    [DataRow(CnnFamily.DenseNet)]
    public void OnnxHeatmapsMatchAutogradGradCam(CnnFamily family)
    {
        random.manual_seed(8);
        using var network = CnnNetwork.Create(new CnnArchitecture { Family = family, Depth = 2, Width = 8, HiddenSize = 32, GrowthRate = 6 }, 1, 28, 28, 10);
        network.train();
        for (int i = 0; i < 3; i++)
            using (var batch = rand(16, 1, 28, 28))
                network.call(batch).Dispose();
        network.eval();
        using var images = rand(4, 1, 28, 28);
        foreach (long? explained in new long?[] { null, 3 })
        {
            using var expected = network.GradCam(images, explained);
            byte[] onnx = network.ExportOnnx("pixels", null, "logits", ("cam", explained));
            for (int row = 0; row < 4; row++)
            {
                using var flat = images[row].reshape(784);
                float[] actual = OnnxParityTests.RunOnnx(onnx, "pixels", flat, "cam");
                float[] reference = expected[row].reshape(784).data<float>().ToArray();
                float difference = reference.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
                Assert.IsLessThanOrEqualTo(1e-4f, difference, $"{family}, class {explained?.ToString() ?? "predicted"}, image {row}: {difference}");
                // Scaled to a maximum of 1, unless the ReLU left nothing (then all zero, as in the reference).
                Assert.IsTrue(Math.Abs(actual.Max() - 1) < 1e-4 || actual.All(v => v == 0), $"maximum {actual.Max()}");
            }
        }
    }

    [TestMethod]
    public void TheClassifierEmitsHeatmapsThatSurviveSaveAndLoad()
    {
        var ml = new MLContext(seed: 3);
        var train = TestData.Keyed(ml, TestData.Train(ml, 600));
        var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, GradCamColumnName = "GradCam", Device = TorchDeviceKind.Cpu,
            Architecture = new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 2, Width = 8 },
        }).Fit(train);
        var test = TestData.Keyed(ml, TestData.Test(ml, 20));
        var scored = model.Transform(test);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 784), scored.Schema["GradCam"].Type);
        var heatmaps = TestData.Scores(scored, "GradCam");
        Assert.IsTrue(heatmaps.All(h => h.Min() >= 0 && h.Max() <= 1 + 1e-4));
        Assert.IsTrue(heatmaps.Count(h => Math.Abs(h.Max() - 1) < 1e-4) > 10, "most heatmaps have some positive evidence");

        string path = Path.Combine(Path.GetTempPath(), $"gradcam-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _).Transform(test);
            Assert.IsLessThanOrEqualTo(1e-5f, TestData.MaxAbsDifference(heatmaps, TestData.Scores(loaded, "GradCam")));
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, GradCamColumnName = "GradCam", GradCamClass = 10, Device = TorchDeviceKind.Cpu,
        }).Fit(train));
    }

    [TestMethod]
    public void HeatmapsFallOnTheObjectThatWasPastedOnABlankCanvas()
    {
        const int size = 56;
        var ml = new MLContext(seed: 5);
        var random = new Random(11);
        var train = Canvases(FashionMnist.Read(FashionMnistSplit.Train, maxRows: 3000), random, size, out _);
        var testItems = Canvases(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 100), random, size, out var boxes);

        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
            {
                ImageHeight = size, ImageWidth = size, Epochs = 2, BatchSize = 32, LearningRate = 3e-3f, GradCamColumnName = "GradCam",
                Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 16 },
            }))
            .Fit(ml.Data.LoadFromEnumerable(train));
        var scored = model.Transform(ml.Data.LoadFromEnumerable(testItems));
        var heatmaps = TestData.Scores(scored, "GradCam");
        double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        double mass = heatmaps.Select((h, i) => GradCamHelpers.MassInside(h, size, boxes[i].Top, boxes[i].Left, 28, 28)).Average();
        TestContext.WriteLine($"canvas accuracy {accuracy:P1}; mean heatmap mass inside the pasted item's box {mass:P1} (the box is 25% of the canvas)");

        string grid = Path.Combine(Path.GetTempPath(), $"gradcam-{Guid.NewGuid():N}.png");
        GradCamHelpers.WriteOverlayGrid(grid, testItems.Take(8).Select(c => c.Features).ToList(), heatmaps.Take(8).ToList(), size, size);
        Assert.IsTrue(new FileInfo(grid).Length > 1000, "the overlay grid is written");
        File.Delete(grid);
        Assert.IsGreaterThanOrEqualTo(0.60, mass, $"heatmap mass inside the box {mass:P1}");
    }

    private static List<Canvas> Canvases(IReadOnlyList<FashionMnistImage> items, Random random, int size, out List<(int Top, int Left)> boxes)
    {
        var canvases = new List<Canvas>();
        boxes = [];
        foreach (var item in items)
        {
            int top = random.Next(size - 27), left = random.Next(size - 27);
            var pixels = new float[size * size];
            for (int r = 0; r < 28; r++)
                Array.Copy(item.Features, r * 28, pixels, (top + r) * size + left, 28);
            canvases.Add(new Canvas { Features = pixels, Label = item.Label });
            boxes.Add((top, left));
        }
        return canvases;
    }

    private sealed class Canvas
    {
        [VectorType(56 * 56)]
        public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }
}

using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

[TestClass]
[DoNotParallelize]
public sealed class CommandLineTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void SweepOverAFolderOfPngImagesSavesAModelThatPredictsFromImageFiles()
    {
        // Real PNG files: 120 Fashion-MNIST images of each of three classes, one folder per class.
        string root = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"cli-{Guid.NewGuid():N}");
        string images = Path.Combine(root, "images");
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 1500);
        foreach (var group in rows.Where(r => r.Label is "Trouser" or "Bag" or "Sneaker").GroupBy(r => r.Label))
        {
            int i = 0;
            foreach (var row in group.Take(120))
                FashionMnist.SavePng(row, Path.Combine(images, group.Key, $"{i++}.png"));
        }

        string tool = Path.Combine(AppContext.BaseDirectory, "deepvariants.dll");
        string output = Path.Combine(root, "out");
        var start = new ProcessStartInfo("dotnet",
            $"\"{tool}\" sweep --task image-classification --train \"{images}\" --trials 3 --epochs 6 --early-stopping None --journal \"{Path.Combine(root, "sweep.db")}\" --output \"{output}\"")
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using (var process = Process.Start(start)!)
        {
            string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            TestContext.WriteLine(stdout);
            Assert.AreEqual(0, process.ExitCode, stdout + stderr);
        }
        Assert.IsTrue(File.Exists(Path.Combine(output, "model.json")));
        Assert.AreEqual(4, File.ReadAllLines(Path.Combine(output, "leaderboard.csv")).Length, "a header and three trials");

        var ml = new MLContext();
        var model = ml.Model.Load(Path.Combine(output, "model.zip"), out var schema);
        Assert.IsNotNull(schema.GetColumnOrNull("ImagePath"), "the saved model starts from image paths");
        var paths = Directory.GetDirectories(images).SelectMany(d => Directory.GetFiles(d).Select(f => new ImageFile { ImagePath = f, Label = Path.GetFileName(d) })).ToList();
        var scored = model.Transform(ml.Data.LoadFromEnumerable(paths));
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        TestContext.WriteLine($"refit model on its own 360 images: {metrics.MicroAccuracy:P1}");
        Assert.IsGreaterThan(0.8, metrics.MicroAccuracy, "trousers, bags and sneakers are easy to tell apart");
        VBuffer<ReadOnlyMemory<char>> names = default;
        scored.Schema["PredictedLabel"].GetKeyValues(ref names);
        CollectionAssert.AreEquivalent(new[] { "Bag", "Sneaker", "Trouser" }, names.DenseValues().Select(n => n.ToString()).ToArray());
    }

    private sealed class ImageFile
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }
}

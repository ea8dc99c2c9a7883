using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// Prediction engines over a saved and loaded model. ML.NET's <c>CreatePredictionEngine</c> owns the model it is given
/// unless told otherwise (<c>PredictionEngineOptions.OwnsTransformer</c> defaults to true), so disposing one engine
/// disposes the model's ONNX session; the README's pattern creates engines that do not own it.
/// </summary>
[TestClass]
public sealed class PredictionEngineTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly Lazy<(string Path, FashionMnistImage[] Rows, float[][] Expected)> Saved = new(() =>
    {
        var ml = new MLContext(seed: 2);
        var model = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { Width = 4, HiddenSize = 16 },
        }).Fit(TestData.Train(ml, 500));
        var rows = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 64).ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"dv-engine-{Guid.NewGuid():N}.zip");
        var data = ml.Data.LoadFromEnumerable(rows);
        ml.Model.Save(model, data.Schema, path);
        return (path, rows, TestData.Scores(ml.Model.Load(path, out _).Transform(data)));
    });

    private static PredictionEngine<FashionMnistImage, Prediction> SharedEngine(MLContext ml, ITransformer model) =>
        ml.Model.CreatePredictionEngine<FashionMnistImage, Prediction>(model, new PredictionEngineOptions { OwnsTransformer = false });

    [TestMethod]
    public void EightThreadsCreatingUsingAndDisposingEnginesForAMinuteAllPredictRight()
    {
        var (path, rows, expected) = Saved.Value;
        var ml = new MLContext(seed: 2);
        var model = ml.Model.Load(path, out _);
        var clock = Stopwatch.StartNew();
        long predictions = 0, engines = 0, wrong = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            var random = new Random(t);
            try
            {
                while (clock.Elapsed < TimeSpan.FromMinutes(1))
                {
                    using var engine = SharedEngine(ml, model);
                    Interlocked.Increment(ref engines);
                    for (int k = 0; k < 5; k++)
                    {
                        int row = random.Next(rows.Length);
                        float[] score = engine.Predict(rows[row]).Score;
                        Interlocked.Increment(ref predictions);
                        if (score.Length != expected[row].Length || score.Where((v, i) => Math.Abs(v - expected[row][i]) > 1e-6f).Any())
                            Interlocked.Increment(ref wrong);
                    }
                }
            }
            catch (Exception e)
            {
                failures.Enqueue(e);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        TestContext.WriteLine($"{engines:N0} engines, {predictions:N0} predictions in {clock.Elapsed.TotalSeconds:F0} s on 8 threads, {wrong} wrong, {failures.Count} failures");
        Assert.IsEmpty(failures, failures.FirstOrDefault()?.ToString());
        Assert.AreEqual(0, wrong);
        Assert.IsGreaterThan(100, engines);
        // The model is still whole: a batch transform gives the same scores.
        var data = ml.Data.LoadFromEnumerable(rows);
        Assert.AreEqual(0f, TestData.MaxAbsDifference(expected, TestData.Scores(model.Transform(data))));
    }

    [TestMethod]
    public void AnEngineThatOwnsTheModelDisposesItAsMLNetDocuments()
    {
        // ML.NET's default: the engine owns the model, and disposing it disposes the ONNX session. If ML.NET ever
        // changes this, this test fails and the README's warning can go.
        var (path, rows, _) = Saved.Value;
        var ml = new MLContext(seed: 2);
        var model = ml.Model.Load(path, out _);
        using (var engine = ml.Model.CreatePredictionEngine<FashionMnistImage, Prediction>(model))
            engine.Predict(rows[0]);
        var data = ml.Data.LoadFromEnumerable(rows);
        Assert.Throws<Exception>(() => model.Transform(data).GetColumn<float[]>("Score").ToArray());
    }

    private sealed class Prediction
    {
        public float[] Score { get; set; } = [];
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Graphs;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class GcnTests
{
    private static readonly string CoraDirectory = Path.Combine(AppContext.BaseDirectory, "Data", "cora");
    private static readonly Lazy<(IReadOnlyList<CoraNode> Nodes, IReadOnlyList<CoraEdge> Edges)> CoraData = new(() => Cora.Read(CoraDirectory));

    public TestContext TestContext { get; set; } = null!;

    private static GcnOptions KipfAndWelling(int seed) => new() { Seed = seed, Device = TorchDeviceKind.Cpu };

    private static double TestAccuracy(IDataView scored)
    {
        var split = scored.GetColumn<string>("Split").ToArray();
        var truth = scored.GetColumn<string>("Label").ToArray();
        var predicted = scored.GetColumn<string>("PredictedText").ToArray();
        var test = Enumerable.Range(0, split.Length).Where(i => split[i] == "test").ToList();
        return test.Count(i => truth[i] == predicted[i]) / (double)test.Count;
    }

    private static IDataView Predict(MLContext ml, ITransformer model, IDataView nodes)
    {
        var scored = model.Transform(nodes);
        return ml.Transforms.Conversion.MapKeyToValue("PredictedText", "PredictedLabel").Fit(scored).Transform(scored);
    }

    [TestMethod]
    public void ReproducesKipfAndWellingOnCora()
    {
        var ml = new MLContext(seed: 1);
        var (nodes, edges) = Cora.Load(ml, CoraDirectory);
        var result = ml.Transforms.DeepVariants.GcnNodeClassifier(edges, KipfAndWelling(seed: 1)).Train(nodes);
        double accuracy = TestAccuracy(Predict(ml, result.Model, nodes));
        TestContext.WriteLine($"Cora test accuracy {accuracy:P2} after {result.History.Epochs.Count} epochs (best {result.History.BestEpoch}), {result.ParameterCount} parameters");
        Assert.IsGreaterThanOrEqualTo(0.79, accuracy, $"test accuracy {accuracy:P2}");
        var embedding = Predict(ml, result.Model, nodes).Schema["Embedding"].Type;
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 16), embedding);
    }

    [TestMethod]
    public void ANewGraphIsTransformedToTheFittedColumnsAndEvaluatesWithMLNet()
    {
        var ml = new MLContext(seed: 1);
        var (nodes, edges) = Cora.Load(ml, CoraDirectory);
        var result = ml.Transforms.DeepVariants.GcnNodeClassifier(edges, KipfAndWelling(seed: 1)).Train(nodes);
        var fitted = result.Model.Transform(nodes);

        // The training graph through the graph model: the fitted transformer's columns, with the same scores.
        var scored = result.GraphModel.Transform(nodes, edges);
        foreach (string column in new[] { "Score", "PredictedLabel", "Embedding" })
            Assert.AreEqual(fitted.Schema[column].Type, scored.Schema[column].Type, column);
        // The same graph gives the same predictions on every call (ONNX Runtime's parallel ScatterND add does not).
        var once = result.GraphModel.Predict(nodes, edges).Select(p => p.Score).ToArray();
        Assert.AreEqual(0f, TestData.MaxAbsDifference(once, result.GraphModel.Predict(nodes, edges).Select(p => p.Score).ToArray()));
        Assert.IsLessThanOrEqualTo(1e-4f, TestData.MaxAbsDifference(TestData.Scores(fitted), TestData.Scores(scored)));

        // Evaluate reads the text label as a key in the model's class order, and skips nodes without one: with only the
        // test nodes labelled it gives the test accuracy counted by hand.
        var (nodeList, edgeList) = CoraData.Value;
        var testOnly = ml.Data.LoadFromEnumerable(nodeList.Select(n => n.Split == "test" ? n
            : new CoraNode { NodeId = n.NodeId, Split = n.Split, Features = n.Features, Label = "" }));
        var metrics = ml.MulticlassClassification.Evaluate(result.GraphModel.Transform(testOnly, ml.Data.LoadFromEnumerable(edgeList)));
        double byHand = TestAccuracy(Predict(ml, result.Model, nodes));
        TestContext.WriteLine($"new-graph path: Evaluate gives {metrics.MicroAccuracy:P2} on the test nodes; counted by hand {byHand:P2}");
        Assert.AreEqual(byHand, metrics.MicroAccuracy, 1e-9);
    }

    [TestMethod]
    public void TrainingUsesOnlyTheTrainingLabels()
    {
        // Relabel every node outside the training and validation sets: the model must not change at all.
        var ml = new MLContext(seed: 1);
        var (nodes, edges) = CoraData.Value;
        var relabelled = nodes.Select(n => n.Split is "train" or "val" ? n
            : new CoraNode { NodeId = n.NodeId, Split = n.Split, Features = n.Features, Label = ((int.Parse(n.Label) + 3) % 7).ToString() }).ToList();
        var options = KipfAndWelling(seed: 3);
        options.Epochs = 30;
        float[][] Scores(IReadOnlyList<CoraNode> data) => TestData.Scores(ml.Transforms.DeepVariants
            .GcnNodeClassifier(ml.Data.LoadFromEnumerable(edges), options).Fit(ml.Data.LoadFromEnumerable(data)).Transform(ml.Data.LoadFromEnumerable(data)));

        var original = Scores(nodes);
        Assert.IsFalse(nodes.Where(n => n.Split == "test").Select(n => n.Label).SequenceEqual(relabelled.Where(n => n.Split == "test").Select(n => n.Label)),
            "the test nodes' labels really changed");
        Assert.AreEqual(0f, TestData.MaxAbsDifference(original, Scores(relabelled)));

        // Whereas changing training labels does change it.
        var trainChanged = nodes.Select(n => n.Split != "train" ? n
            : new CoraNode { NodeId = n.NodeId, Split = n.Split, Features = n.Features, Label = ((int.Parse(n.Label) + 1) % 7).ToString() }).ToList();
        Assert.IsGreaterThan(1e-3f, TestData.MaxAbsDifference(original, Scores(trainChanged)));
    }

    [TestMethod]
    public void SaveAndLoadKeepThePredictionsAndTheGraphModelMatchesOnANewGraph()
    {
        var ml = new MLContext(seed: 2);
        var (nodes, edges) = SmallGraph(ml);
        var options = new GcnOptions { Seed = 2, Epochs = 60, HiddenSizes = [8, 6], Dropout = 0.1f, EarlyStoppingPatience = 0, Device = TorchDeviceKind.Cpu };
        var result = ml.Transforms.DeepVariants.GcnNodeClassifier(edges, options).Train(nodes);
        var before = result.Model.Transform(nodes);

        string zip = Path.Combine(Path.GetTempPath(), $"gcn-{Guid.NewGuid():N}.zip"), onnx = Path.ChangeExtension(zip, ".onnx");
        try
        {
            ml.Model.Save(result.Model, nodes.Schema, zip);
            var fresh = new MLContext();
            var after = fresh.Model.Load(zip, out _).Transform(nodes);
            Assert.AreEqual(0f, TestData.MaxAbsDifference(TestData.Scores(before), TestData.Scores(after)));
            Assert.AreEqual(0f, TestData.MaxAbsDifference(TestData.Scores(before, "Embedding"), TestData.Scores(after, "Embedding")));
            CollectionAssert.AreEqual(before.GetColumn<uint>("PredictedLabel").ToArray(), after.GetColumn<uint>("PredictedLabel").ToArray());

            // ONNX parity on the training graph: the graph model (ONNX Runtime) against the TorchSharp outputs the zip holds.
            result.GraphModel.Save(onnx);
            var graphModel = GcnGraphModel.Load(onnx);
            var onnxPredictions = graphModel.Predict(nodes, edges);
            float[][] onnxScores = onnxPredictions.Select(p => p.Score).ToArray();
            Assert.IsLessThanOrEqualTo(1e-4f, TestData.MaxAbsDifference(TestData.Scores(before), onnxScores));
            Assert.IsLessThanOrEqualTo(1e-4f, TestData.MaxAbsDifference(TestData.Scores(before, "Embedding"), onnxPredictions.Select(p => p.Embedding).ToArray()));

            // A new graph (the same nodes, half the edges, and a new node) is predicted by the same weights.
            var (newNodes, newEdges) = SmallGraph(ml, extraNode: true, everyOtherEdge: true);
            var newPredictions = graphModel.Predict(newNodes, newEdges);
            Assert.HasCount(31, newPredictions);
            Assert.AreEqual(30L, newPredictions[^1].NodeId);
            Assert.IsTrue(newPredictions.All(p => graphModel.ClassNames.Contains(p.PredictedLabel) && Math.Abs(p.Score.Sum() - 1) < 1e-4));
            Assert.IsGreaterThan(1e-4f, TestData.MaxAbsDifference(onnxScores, newPredictions.Take(30).Select(p => p.Score).ToArray()), "the graph's edges matter");
        }
        finally
        {
            File.Delete(zip);
            File.Delete(onnx);
        }
    }

    [TestMethod]
    public void APlanetoidPairOfAnotherGraphLoadsAndTrainsWithItsUnlabelledMarker()
    {
        // Not Cora: 60 nodes, a vocabulary of 12 words found from the file, two communities with their own words, and
        // "-1" written for nodes without a label (as some Planetoid exports do).
        var random = new Random(7);
        string folder = Path.Combine(Path.GetTempPath(), $"dv-planetoid-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        string nodesPath = Path.Combine(folder, "nodes.tsv"), edgesPath = Path.Combine(folder, "edges.tsv");
        var nodeLines = Enumerable.Range(0, 60).Select(i =>
        {
            bool left = i < 30;
            var words = Enumerable.Range(0, 3).Select(_ => (left ? 0 : 6) + random.Next(6)).Append(random.Next(12)).Distinct().OrderBy(w => w);
            string split = i % 4 == 0 ? "train" : i % 4 == 1 ? "val" : "test";
            string label = split == "train" && i % 8 == 4 ? "-1" : left ? "left" : "right";
            return $"{i}\t{label}\t{split}\t{string.Join(' ', words)}";
        });
        File.WriteAllLines(nodesPath, nodeLines.Prepend("node\tlabel\tsplit\tfeatures"));
        var edgeLines = new List<string> { "source\ttarget" };
        for (int a = 0; a < 60; a++)
            for (int b = a + 1; b < 60; b++)
                if ((a < 30) == (b < 30) ? random.NextDouble() < 0.15 : random.NextDouble() < 0.01)
                    edgeLines.Add($"{a}\t{b}");
        File.WriteAllLines(edgesPath, edgeLines);

        var ml = new MLContext(seed: 3);
        var (nodes, edges) = Planetoid.Load(ml, nodesPath, edgesPath);
        Assert.AreEqual(12, ((VectorDataViewType)nodes.Schema["Features"].Type).Size, "the vocabulary is the largest word index plus one");
        var fit = ml.Transforms.DeepVariants.GcnNodeClassifier(edges, new GcnOptions { Seed = 3, UnlabelledValues = ["-1"], Device = TorchDeviceKind.Cpu }).Train(nodes);
        var scored = Predict(ml, fit.Model, nodes);
        Assert.AreEqual(2, ((VectorDataViewType)scored.Schema["Score"].Type).Size, "'-1' is not a class");
        double accuracy = TestAccuracy(scored);
        TestContext.WriteLine($"test accuracy {accuracy:P1} after {fit.History.Epochs.Count} epochs");
        Assert.IsGreaterThanOrEqualTo(0.85, accuracy);
        Directory.Delete(folder, recursive: true);
    }

    [TestMethod]
    public void AGraphWithoutEdgesTrainsWithAWarning()
    {
        // Only self-loops: no edge between different nodes, which once trained silently as a per-node network.
        var ml = new MLContext(seed: 2);
        var (nodes, _) = SmallGraph(ml);
        var loops = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 30).Select(i => new Edge { Source = i, Target = i }).ToList());
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
        var result = ml.Transforms.DeepVariants.GcnNodeClassifier(loops, new GcnOptions { Seed = 2, Epochs = 5, EarlyStoppingPatience = 0, Device = TorchDeviceKind.Cpu }).Train(nodes);
        string warning = result.History.Warnings.Single(w => w.Contains("no edges", StringComparison.Ordinal));
        StringAssert.Contains(warning, "'Source'");
        CollectionAssert.Contains(warnings, warning, "the warning is in MLContext.Log as a warning");

        var connected = ml.Transforms.DeepVariants.GcnNodeClassifier(SmallGraph(ml).Edges, new GcnOptions { Seed = 2, Epochs = 5, EarlyStoppingPatience = 0, Device = TorchDeviceKind.Cpu }).Train(nodes);
        Assert.IsFalse(connected.History.Warnings.Any(w => w.Contains("no edges", StringComparison.Ordinal)));
    }

    [TestMethod]
    public void SelfLoopsAndDuplicateEdgesAreHandled()
    {
        var ml = new MLContext(seed: 2);
        var (nodes, edges) = SmallGraph(ml);
        var edgeRows = ml.Data.CreateEnumerable<Edge>(edges, reuseRowObject: false).ToList();
        var noisy = edgeRows.Concat(edgeRows.Select(e => new Edge { Source = e.Target, Target = e.Source }))
            .Concat(Enumerable.Range(0, 30).Select(i => new Edge { Source = i, Target = i })).ToList();
        var options = new GcnOptions { Seed = 2, Epochs = 20, EarlyStoppingPatience = 0, Device = TorchDeviceKind.Cpu };
        var clean = TestData.Scores(ml.Transforms.DeepVariants.GcnNodeClassifier(edges, options).Fit(nodes).Transform(nodes));
        var withNoise = TestData.Scores(ml.Transforms.DeepVariants.GcnNodeClassifier(ml.Data.LoadFromEnumerable(noisy), options).Fit(nodes).Transform(nodes));
        Assert.AreEqual(0f, TestData.MaxAbsDifference(clean, withNoise), "reversed duplicates and self-loops give the same graph");
    }

    [TestMethod]
    public void BadGraphsAreRejectedWithClearErrors()
    {
        var ml = new MLContext(seed: 2);
        var (nodes, edges) = SmallGraph(ml);
        var options = new GcnOptions { Epochs = 1, Device = TorchDeviceKind.Cpu };
        void Expect(IDataView n, IDataView e, params string[] fragments)
        {
            var error = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.GcnNodeClassifier(e, options).Fit(n));
            foreach (string fragment in fragments)
                StringAssert.Contains(error.Message, fragment, $"message was: {error.Message}");
        }
        var nodeRows = ml.Data.CreateEnumerable<Node>(nodes, reuseRowObject: false).ToList();
        IDataView With(Func<Node, int, Node> change) => ml.Data.LoadFromEnumerable(nodeRows.Select(change).ToList());

        Expect(nodes, ml.Data.LoadFromEnumerable(new[] { new Edge { Source = 1, Target = 99 } }), "Edge row 0", "node 99", "Target");
        Expect(With((n, i) => i == 5 ? new Node { NodeId = 4, Features = n.Features, Label = n.Label, Split = n.Split } : n), edges, "Node id 4", "more than once");
        Expect(ml.Data.LoadFromEnumerable(nodeRows.Select((n, i) => new VariableNode { NodeId = n.NodeId, Label = n.Label, Split = n.Split, Features = i == 7 ? n.Features[..3] : n.Features }).ToList()),
            edges, "Features", "3 values at row 7", "same length");
        Expect(With((n, i) => i == 2 ? new Node { NodeId = n.NodeId, Label = n.Label, Split = n.Split, Features = [float.NaN, 0, 0, 0] } : n), edges, "NaN", "row 2");
        Expect(With((n, _) => new Node { NodeId = n.NodeId, Label = n.Label, Features = n.Features, Split = n.Split == "train" ? "test" : n.Split }), edges, "No training node has a label");
    }

    /// <summary>Two 15-node communities with their own feature patterns, linked densely inside and sparsely across.</summary>
    private static (IDataView Nodes, IDataView Edges) SmallGraph(MLContext ml, bool extraNode = false, bool everyOtherEdge = false)
    {
        var random = new Random(4);
        int count = extraNode ? 31 : 30;
        var nodes = Enumerable.Range(0, count).Select(i => new Node
        {
            NodeId = i,
            Label = i < 15 ? "left" : "right",
            Split = i % 3 == 0 ? "train" : i % 3 == 1 ? "val" : "test",
            Features = Enumerable.Range(0, 4).Select(f => (float)(random.NextDouble() + (f < 2 == i < 15 ? 0.5 : 0))).ToArray(),
        }).ToList();
        var edges = new List<Edge>();
        for (int a = 0; a < 30; a++)
            for (int b = a + 1; b < 30; b++)
                if ((a < 15) == (b < 15) ? random.NextDouble() < 0.3 : random.NextDouble() < 0.03)
                    edges.Add(new Edge { Source = a, Target = b });
        if (extraNode)
            edges.Add(new Edge { Source = 30, Target = 0 });
        var kept = everyOtherEdge ? edges.Where((_, i) => i % 2 == 0).ToList() : edges;
        return (ml.Data.LoadFromEnumerable(nodes), ml.Data.LoadFromEnumerable(kept));
    }

    private sealed class Node
    {
        public int NodeId { get; set; }
        public string Label { get; set; } = "";
        public string Split { get; set; } = "";
        [VectorType(4)]
        public float[] Features { get; set; } = [];
    }

    private sealed class VariableNode
    {
        public int NodeId { get; set; }
        public string Label { get; set; } = "";
        public string Split { get; set; } = "";
        public float[] Features { get; set; } = [];
    }

    private sealed class Edge
    {
        public int Source { get; set; }
        public int Target { get; set; }
    }
}

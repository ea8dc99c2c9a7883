using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace Microsoft.ML.DeepVariants.Graphs;

/// <summary>A node's prediction from <see cref="GcnGraphModel.Predict"/>.</summary>
/// <param name="NodeId">The node's id (a long for integer ids, else a string).</param>
/// <param name="PredictedLabel">The most probable class, by name.</param>
/// <param name="Score">Class probabilities, in <see cref="GcnGraphModel.ClassNames"/> order.</param>
/// <param name="Embedding">The last hidden layer.</param>
public sealed record GcnNodePrediction(object NodeId, string PredictedLabel, float[] Score, float[] Embedding);

/// <summary>
/// A trained GCN as an ONNX graph that predicts for any graph, given its nodes and edges at prediction time,
/// with ONNX Runtime (no TorchSharp). It saves to and loads from a single .onnx file whose metadata holds the
/// class names and column names. The ONNX graph's inputs are <c>features</c> [nodes, F], <c>edge_source</c> and
/// <c>edge_target</c> [edges] (int64) and <c>edge_weight</c> [edges]: the normalised operator
/// D^-1/2 (A + I) D^-1/2 in both directions and with self-loops, which <see cref="Predict"/> builds. The messages are summed
/// with ScatterND (reduction "add"), which ONNX Runtime computes wrongly, and differently on each call, when it runs that
/// operator on several threads (microsoft/onnxruntime#18048): this class runs it on one, and so should anyone who runs the
/// graph with ONNX Runtime directly (<c>SessionOptions.IntraOpNumThreads = 1</c>).
/// </summary>
/// <example>
/// <code>
/// var fit = mlContext.Transforms.DeepVariants.GcnNodeClassifier(edges, options).Train(nodes);
/// fit.GraphModel.Save("gcn.onnx");
/// var predictions = GcnGraphModel.Load("gcn.onnx").Predict(otherNodes, otherEdges);
/// </code>
/// </example>
public sealed class GcnGraphModel
{
    internal const string FeaturesInput = "features";
    internal const string SourceInput = "edge_source";
    internal const string TargetInput = "edge_target";
    internal const string WeightInput = "edge_weight";
    internal const string LogitsOutput = "logits";
    internal const string EmbeddingOutput = "embedding";
    private const string MetadataKey = "deepvariants.gcn";

    private readonly Columns _columns;

    private GcnGraphModel(byte[] onnx, Columns columns)
    {
        OnnxModel = onnx;
        _columns = columns;
    }

    /// <summary>The ONNX graph.</summary>
    public byte[] OnnxModel { get; }

    /// <summary>Class names, in score order.</summary>
    public IReadOnlyList<string> ClassNames => _columns.ClassNames;

    /// <summary>Length of a node's feature vector.</summary>
    public int FeatureSize => _columns.FeatureSize;

    internal static GcnGraphModel Create(GcnNetwork network, GcnOptions options, string[] classNames)
    {
        var columns = new Columns(classNames, network.FeatureSize, options.NodeIdColumnName, options.FeatureColumnName,
            options.EdgeSourceColumnName, options.EdgeTargetColumnName, options.EdgeWeightColumnName, options.LabelColumnName,
            options.ScoreColumnName, options.PredictedLabelColumnName, options.EmbeddingColumnName);
        byte[] onnx = network.ExportOnnx(new Dictionary<string, string> { [MetadataKey] = JsonSerializer.Serialize(columns) });
        return new GcnGraphModel(onnx, columns);
    }

    /// <summary>
    /// Predicts every node of a graph. <paramref name="nodes"/> needs the node id and feature columns the model
    /// was trained with; <paramref name="edges"/> the source and target columns (and the weight column, if the
    /// model used one). Edges are undirected; self-loops are dropped and duplicates merged, as in training.
    /// </summary>
    public IReadOnlyList<GcnNodePrediction> Predict(IDataView nodes, IDataView edges)
    {
        var (table, logits, embeddings) = Run(nodes, edges);
        int classes = ClassNames.Count, embeddingSize = embeddings.Length / table.Count;
        var predictions = new GcnNodePrediction[table.Count];
        for (int n = 0; n < table.Count; n++)
        {
            float[] score = Softmax(logits.AsSpan(n * classes, classes));
            int best = Array.IndexOf(score, score.Max());
            predictions[n] = new GcnNodePrediction(table.Ids[n], ClassNames[best], score, embeddings.AsSpan(n * embeddingSize, embeddingSize).ToArray());
        }
        return predictions;
    }

    /// <summary>
    /// The nodes of a new graph with the columns the fitted transformer adds: <c>Score</c>, a key-typed <c>PredictedLabel</c>
    /// (the class names as key values) and <c>Embedding</c>, so <c>mlContext.MulticlassClassification.Evaluate</c> works on
    /// it. A text label column of the training label's name is turned into a key in the model's class order (unknown or
    /// empty labels become missing), which is what Evaluate compares the predictions with.
    /// </summary>
    /// <example>
    /// <code>
    /// var scored = GcnGraphModel.Load("gcn.onnx").Transform(otherNodes, otherEdges);
    /// var metrics = mlContext.MulticlassClassification.Evaluate(scored);
    /// </code>
    /// </example>
    public IDataView Transform(IDataView nodes, IDataView edges)
    {
        var (table, logits, embeddings) = Run(nodes, edges);
        var ml = new MLContext();
        var context = new ModelContext(ml.Transforms);
        string label = _columns.Label ?? "Label";
        IDataView view = nodes;
        if (nodes.Schema.GetColumnOrNull(label) is { Type: TextDataViewType })
        {
            var classes = ml.Data.LoadFromEnumerable(ClassNames.Select(n => new ClassName { Value = n }));
            view = ml.Transforms.Conversion.MapValueToKey(label, label, keyData: classes).Fit(view).Transform(view);
        }
        var options = Options();
        var chain = GcnServing.Lookup(context, view, table, options, new LabelInfo(ClassNames.Count, ClassNames.ToArray()), label,
            logits, embeddings, embeddings.Length / table.Count);
        return chain.Transform(view);
    }

    private GcnOptions Options() => new()
    {
        NodeIdColumnName = _columns.NodeId, FeatureColumnName = _columns.Features, EdgeSourceColumnName = _columns.Source,
        EdgeTargetColumnName = _columns.Target, EdgeWeightColumnName = _columns.Weight,
        ScoreColumnName = _columns.Score ?? "Score", PredictedLabelColumnName = _columns.PredictedLabel ?? "PredictedLabel",
        EmbeddingColumnName = _columns.Embedding ?? "Embedding",
    };

    // Reads the graph and runs the ONNX graph: node table, logits [nodes * classes] and embeddings [nodes * size].
    private (NodeTable Table, float[] Logits, float[] Embeddings) Run(IDataView nodes, IDataView edges)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(edges);
        var options = Options();
        var table = GraphData.ReadNodes(nodes, options);
        if (table.FeatureSize != FeatureSize)
            throw new ArgumentException($"Column '{_columns.Features}' has {table.FeatureSize} values per node; this model expects {FeatureSize}.", _columns.Features);
        using var graph = GraphData.ReadEdges(edges, options, table);

        // One thread: ONNX Runtime's ScatterND with reduction "add" races on repeated target indices when it runs in
        // parallel (microsoft/onnxruntime#18048, #23396), and every node is the target of many edges.
        using var sessionOptions = new SessionOptions { IntraOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        using var session = new InferenceSession(OnnxModel, sessionOptions);
        using var features = OrtValue.CreateTensorValueFromMemory(table.Features, [table.Count, FeatureSize]);
        using var source = OrtValue.CreateTensorValueFromMemory(graph.Source.data<long>().ToArray(), [graph.Source.shape[0]]);
        using var target = OrtValue.CreateTensorValueFromMemory(graph.Target.data<long>().ToArray(), [graph.Target.shape[0]]);
        using var weight = OrtValue.CreateTensorValueFromMemory(graph.Weight.data<float>().ToArray(), [graph.Weight.shape[0]]);
        using var run = new RunOptions();
        using var outputs = session.Run(run,
            new Dictionary<string, OrtValue> { [FeaturesInput] = features, [SourceInput] = source, [TargetInput] = target, [WeightInput] = weight },
            [LogitsOutput, EmbeddingOutput]);
        return (table, outputs[0].GetTensorDataAsSpan<float>().ToArray(), outputs[1].GetTensorDataAsSpan<float>().ToArray());
    }

    private sealed class ClassName
    {
        public string Value { get; set; } = "";
    }

    /// <summary>Writes the model to a single .onnx file (through a temporary file, so a failed write leaves nothing half-written).</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            File.WriteAllBytes(temporary, OnnxModel);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Reads a model written by <see cref="Save"/>.</summary>
    public static GcnGraphModel Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"GCN model file '{path}' does not exist.", path);
        byte[] bytes = File.ReadAllBytes(path);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a DeepVariants GCN model: it is not a readable ONNX file ({e.Message}).", e);
        }
        string json = model.MetadataProps.FirstOrDefault(p => p.Key == MetadataKey)?.Value
            ?? throw new InvalidDataException($"'{path}' is not a DeepVariants GCN model: its ONNX metadata has no '{MetadataKey}' entry.");
        Columns? columns;
        try
        {
            columns = JsonSerializer.Deserialize<Columns>(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' has unreadable GCN metadata ({e.Message}).", e);
        }
        return new GcnGraphModel(bytes, columns ?? throw new InvalidDataException($"'{path}' has unreadable GCN metadata."));
    }

    private static float[] Softmax(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        var result = new float[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
            sum += result[i] = MathF.Exp(logits[i] - max);
        for (int i = 0; i < result.Length; i++)
            result[i] = (float)(result[i] / sum);
        return result;
    }

    // The names a model was trained with; the last four are absent (null) in files written before they were kept.
    internal sealed record Columns(string[] ClassNames, int FeatureSize, string NodeId, string Features, string Source, string Target, string? Weight,
        string? Label = null, string? Score = null, string? PredictedLabel = null, string? Embedding = null);
}

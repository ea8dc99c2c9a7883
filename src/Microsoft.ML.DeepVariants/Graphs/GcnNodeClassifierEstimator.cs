using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Graphs;

/// <summary>What fitting a GCN produced.</summary>
/// <param name="Model">The ML.NET model for the graph it was fit on: it maps each node id to its Score, PredictedLabel and Embedding, and saves and loads with plain ML.NET.</param>
/// <param name="GraphModel">The trained weights as an ONNX graph that predicts for new graphs.</param>
/// <param name="History">Loss and metrics per epoch.</param>
/// <param name="ParameterCount">Trainable parameters.</param>
public sealed record GcnFitResult(TransformerChain<ITransformer> Model, GcnGraphModel GraphModel, TrainingHistory History, long ParameterCount);

/// <summary>
/// A graph convolutional network node classifier (Kipf and Welling 2017). Fit on the nodes (id, features,
/// label, split); the edges are given when the estimator is made. The fitted model outputs, for every node of
/// that graph, <c>Score</c>, a key-typed <c>PredictedLabel</c> and the node <c>Embedding</c>. Only the training
/// nodes' labels are used to learn; validation labels choose the epoch (early stopping).
/// </summary>
/// <remarks>
/// Edges are undirected. Self-loops in the edges are dropped, since every node gets a self-loop of weight 1;
/// duplicate edges, in either direction, are merged into one that keeps the largest weight.
/// For a new graph, use <see cref="GcnFitResult.GraphModel"/>.
/// </remarks>
/// <example>
/// <code>
/// var (nodes, edges) = Cora.Load(mlContext, "data/cora");
/// var model = mlContext.Transforms.DeepVariants.GcnNodeClassifier(edges, new GcnOptions { RowNormalizeFeatures = true }).Fit(nodes);
/// var scored = model.Transform(nodes);
/// </code>
/// </example>
public sealed class GcnNodeClassifierEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private const string LogitsColumn = "DeepVariants.Logits";
    private readonly ModelContext _context;
    private readonly IDataView _edges;

    internal GcnNodeClassifierEstimator(ModelContext context, IDataView edges, GcnOptions options)
    {
        ArgumentNullException.ThrowIfNull(edges);
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _edges = edges;
        Options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public GcnOptions Options { get; }

    /// <summary>Trains on the graph and returns the ML.NET model for its nodes.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Trains on the graph and returns the model, the graph model for new graphs and the history.</summary>
    public GcnFitResult Train(IDataView nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        Options.Validate();
        var log = _context.Logger("DeepVariants.Gcn");
        (string labelColumn, nodes, _, _) = ClassificationColumns.KeyedLabel(_context, Options.LabelColumnName, nodes, null,
            type => type is TextDataViewType, "a key or text label (empty for unlabelled nodes)");
        var labels = DataViewReader.RequireKeyLabel(nodes.Schema, labelColumn);
        var table = GraphData.ReadNodes(nodes, Options, labelColumn);
        int trainCount = Enumerable.Range(0, table.Count).Count(i => table.Train[i] && table.Labels[i] >= 0);
        if (trainCount == 0)
            throw new ArgumentException($"No training node has a label: mark some labelled nodes for training in '{Options.TrainColumnName ?? Options.SplitColumnName}'.", Options.LabelColumnName);
        using var graph = GraphData.ReadEdges(_edges, Options, table);

        int seed = _context.ResolveSeed(Options.Seed);
        var device = TorchDevices.Resolve(Options.Device, _context.Environment, log);
        random.manual_seed(seed);
        using var network = new GcnNetwork(table.FeatureSize, Options.HiddenSizes, labels.ClassCount, Options.Dropout, Options.RowNormalizeFeatures);
        using var deviceGraph = new GraphTensors(graph.NodeCount, graph.Source.to(device), graph.Target.to(device), graph.Weight.to(device));
        using var bound = new GraphBoundGcn(network, deviceGraph);
        long parameters = network.parameters().Sum(p => p.numel());
        log($"Training a GCN ({parameters:N0} parameters) on {table.Count:N0} nodes, {(graph.Source.shape[0] - table.Count) / 2:N0} edges, {trainCount} labelled training nodes, device {device}, seed {seed}.");

        using var features = tensor(table.Features, [table.Count, table.FeatureSize]);
        using var trainSet = new TensorDataset(features.alias(), Targets(table, table.Train));
        bool hasValidation = Enumerable.Range(0, table.Count).Any(i => table.Validation[i] && table.Labels[i] >= 0);
        using var validationSet = hasValidation ? new TensorDataset(features.alias(), Targets(table, table.Validation)) : null;
        var history = TorchTrainer.Train(bound, trainSet, validationSet, new ClassificationObjective(),
            Options.WithBatchSize(table.Count), device, seed, log, shuffle: false);

        float[] logits, embeddings;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            network.eval();
            var output = network.Forward(features.to(device), deviceGraph, out var embedding);
            logits = output.cpu().data<float>().ToArray();
            embeddings = embedding.cpu().data<float>().ToArray();
        }
        var graphModel = GcnGraphModel.Create(network, Options, labels.ClassNames);
        var model = BuildModel(nodes, table, labelColumn, labels, logits, embeddings, network.EmbeddingSize);
        return new GcnFitResult(model, graphModel, history, parameters);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        foreach (string column in new[] { Options.NodeIdColumnName, Options.FeatureColumnName, Options.LabelColumnName })
            if (!inputSchema.Any(c => c.Name == column))
                throw DataViewReader.MissingColumn(column);
        var label = inputSchema.First(c => c.Name == Options.LabelColumnName);
        var columns = inputSchema.ToDictionary(c => c.Name);
        ClassificationColumns.AddMulticlassOutputs(columns, label, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        columns[Options.EmbeddingColumnName] = MLNetInternals.SchemaColumn(Options.EmbeddingColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }

    private static Tensor Targets(NodeTable table, bool[] mask) =>
        tensor(Enumerable.Range(0, table.Count).Select(i => mask[i] ? table.Labels[i] : ClassificationObjective.Unlabelled).ToArray());

    // The fitted graph's predictions as ML.NET lookups from node id: logits then ML.NET's softmax head (Score,
    // PredictedLabel), and the embedding. All parts are ML.NET's own, so the model saves and loads unchanged.
    private TransformerChain<ITransformer> BuildModel(IDataView nodes, NodeTable table, string labelColumn, LabelInfo labels,
        float[] logits, float[] embeddings, int embeddingSize)
    {
        var build = typeof(GcnNodeClassifierEstimator).GetMethod(nameof(Lookup), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        var idType = table.IdType is TextDataViewType ? typeof(string) : table.IdType.RawType;
        var lookup = (IDataView)build.MakeGenericMethod(idType).Invoke(this, [table, logits, labels.ClassCount, embeddings, embeddingSize])!;

        var idColumn = Options.NodeIdColumnName;
        var toLogits = _context.Transforms.Conversion.MapValue(LogitsColumn, lookup, lookup.Schema["Id"], lookup.Schema["Logits"], idColumn).Fit(nodes);
        var withLogits = toLogits.Transform(nodes);
        var head = MLNetInternals.CreateSoftmaxHead(_context.Environment, withLogits.Schema, LogitsColumn, labelColumn,
            labels.ClassCount, labels.ClassNames, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        var withHead = head.Transform(withLogits);
        var toEmbedding = _context.Transforms.Conversion.MapValue(Options.EmbeddingColumnName, lookup, lookup.Schema["Id"], lookup.Schema["Embedding"], idColumn).Fit(withHead);
        var drop = _context.Transforms.DropColumns(LogitsColumn).Fit(toEmbedding.Transform(withHead));
        return new TransformerChain<ITransformer>(toLogits, head, toEmbedding, drop);
    }

    private IDataView Lookup<TId>(NodeTable table, float[] logits, int classes, float[] embeddings, int embeddingSize)
    {
        var rows = Enumerable.Range(0, table.Count).Select(n => new LookupRow<TId>
        {
            Id = table.Ids[n] is long id ? (TId)Convert.ChangeType(id, typeof(TId), System.Globalization.CultureInfo.InvariantCulture) : (TId)table.Ids[n],
            Logits = logits.AsSpan(n * classes, classes).ToArray(),
            Embedding = embeddings.AsSpan(n * embeddingSize, embeddingSize).ToArray(),
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(LookupRow<TId>));
        schema[nameof(LookupRow<TId>.Logits)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, classes);
        schema[nameof(LookupRow<TId>.Embedding)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, embeddingSize);
        var mlContext = new MLContext();
        return mlContext.Data.LoadFromEnumerable(rows, schema);
    }

    private sealed class LookupRow<TId>
    {
        public TId Id { get; set; } = default!;
        public float[] Logits { get; set; } = [];
        public float[] Embedding { get; set; } = [];
    }
}

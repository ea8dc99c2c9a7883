using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Graphs;

/// <summary>What fitting a GCN produced.</summary>
/// <param name="Model">The ML.NET model for the graph it was fit on: it maps each node id to its Score, PredictedLabel and Embedding, and saves and loads with plain ML.NET.</param>
/// <param name="History">Loss and metrics per epoch.</param>
/// <param name="OnnxModel">The ONNX graph of <paramref name="GraphModel"/>.</param>
/// <param name="ParameterCount">Trainable parameters.</param>
/// <param name="GraphModel">The trained weights as an ONNX graph that predicts for new graphs.</param>
public sealed record GcnFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount, GcnGraphModel GraphModel)
    : FitResult(Model, History, OnnxModel, ParameterCount);

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
/// var model = mlContext.Transforms.DeepVariants.GcnNodeClassifier(edges, new GcnOptions()).Fit(nodes);
/// var scored = model.Transform(nodes);
/// </code>
/// </example>
public sealed class GcnNodeClassifierEstimator : DeepVariantsEstimator<GcnOptions, GcnFitResult>
{
    private readonly IDataView _edges;

    internal GcnNodeClassifierEstimator(ModelContext context, IDataView edges, GcnOptions options) : base(context, options, "DeepVariants.Gcn")
    {
        ArgumentNullException.ThrowIfNull(edges);
        _edges = edges;
    }

    private protected override FitTask CreateTask(SchemaView schema) => GcnTask.Create(schema, Options, _edges);

    /// <summary>The GCN's part of a fit: the whole graph is one batch, trained on its labelled training nodes, served as a lookup by node id.</summary>
    private sealed class GcnTask : FitTask
    {
        private readonly GcnOptions _options;
        private readonly IDataView _edges;
        private NodeTable _table = null!;
        private GraphTensors _graph = null!;
        private Tensor _features = null!;
        private GcnNetwork? _network;

        private GcnTask(GcnOptions options, IDataView edges)
        {
            _options = options;
            _edges = edges;
        }

        public GcnGraphModel? GraphModel { get; private set; }

        public static GcnTask Create(SchemaView schema, GcnOptions o, IDataView edges)
        {
            GraphData.CheckNodeColumns(schema, o);
            var label = ClassLabels.Check(schema, o.LabelColumnName, textOnly: true);
            return new GcnTask(o, edges)
            {
                Label = label,
                AllowUnlabelledRows = true,
                UnlabelledValues = o.UnlabelledValues.ToHashSet(StringComparer.Ordinal),
                Tail = new ServingTail.Multiclass(o.ScoreColumnName, o.PredictedLabelColumnName),
                ExtraOutputs = [MLNetInternals.SchemaColumn(o.EmbeddingColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)],
                Description = "a GCN",
                InputColumn = o.FeatureColumnName,
            };
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network) =>
            new GcnFitResult(result.Model, result.History, GraphModel!.OnnxModel, result.ParameterCount, GraphModel) { Trained = result.Trained };

        public override RowReader Reader(IDataView prepared, string role) =>
            throw new NotSupportedException("A GCN reads its whole graph at once.");

        public override bool Shuffle => false;

        public override TrainingOptions TrainingOptions(TrainingOptions options) => options.WithBatchSize(_table.Count);

        // Every node is in both sources; the targets mask the labels of the training or the validation nodes.
        public override void CreateSources()
        {
            var fit = Fit;
            _table = GraphData.ReadNodes(fit.TrainingTrain, _options, fit.Label!.KeyColumn);
            int trainCount = Enumerable.Range(0, _table.Count).Count(i => _table.Train[i] && _table.Labels[i] >= 0);
            if (trainCount == 0)
                throw new ArgumentException($"No training node has a label: mark some labelled nodes for training in '{_options.TrainColumnName ?? _options.SplitColumnName}'.", _options.LabelColumnName);
            var graph = fit.Own(GraphData.ReadEdges(_edges, _options, _table));
            _graph = fit.Own(new GraphTensors(graph.NodeCount, graph.Source.to(fit.Device), graph.Target.to(fit.Device), graph.Weight.to(fit.Device)));
            _features = fit.Own(tensor(_table.Features, [_table.Count, _table.FeatureSize]));
            fit.TrainSource = new InMemoryBatchSource(_features.alias(), Targets(_table.Train));
            if (Enumerable.Range(0, _table.Count).Any(i => _table.Validation[i] && _table.Labels[i] >= 0))
                fit.ValidationSource = new InMemoryBatchSource(_features.alias(), Targets(_table.Validation));
            long edgeCount = (graph.Source.shape[0] - _table.Count) / 2;
            fit.Log($"The graph has {_table.Count:N0} nodes, {edgeCount:N0} edges and {trainCount} labelled training nodes.");
            if (edgeCount == 0)
                fit.Warn($"The graph has no edges between different nodes (edge columns '{_options.EdgeSourceColumnName}' and '{_options.EdgeTargetColumnName}'), " +
                    "so the GCN sees each node alone and trains as a per-node network on its features; check the edge data.");
        }

        // Before any row is read: from the feature column's declared size.
        public override long? CountParameters() =>
            Fit.PreparedTrain.Schema.GetColumnOrNull(_options.FeatureColumnName)?.Type is VectorDataViewType { Size: > 0 } features
                ? GcnNetwork.CountParameters(features.Size, _options.HiddenSizes, Fit.Label!.Info.ClassCount)
                : null;

        public override string ShrinkHint => "smaller HiddenSizes";

        public override nn.Module<Tensor, Tensor> CreateNetwork()
        {
            _network = new GcnNetwork(_table.FeatureSize, _options.HiddenSizes, Fit.Label!.Info.ClassCount, _options.Dropout, _options.RowNormalizeFeatures);
            return new GraphBoundGcn(_network, _graph);
        }

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network) =>
            throw new NotSupportedException("A GCN is served as a lookup by node id; its ONNX graph is the graph model's.");

        // The fitted graph's predictions as ML.NET lookups from node id; the weights as a graph model for new graphs.
        public override bool ServesItsExport => false;

        public override (TransformerChain<ITransformer> Model, byte[] Onnx) Serve(nn.Module<Tensor, Tensor> network)
        {
            float[] logits, embeddings;
            using (no_grad())
            using (var scope = NewDisposeScope())
            {
                network.eval();
                var output = _network!.Forward(_features.to(Fit.Device), _graph, out var embedding);
                logits = output.cpu().data<float>().ToArray();
                embeddings = embedding.cpu().data<float>().ToArray();
            }
            GraphModel = GcnGraphModel.Create(_network, _options, Fit.Label!.Info.ClassNames);
            var model = GcnServing.Lookup(Fit.Context, Fit.PreparedTrain, _table, _options, Fit.Label.Info, Fit.Label.UserColumn, logits, embeddings, _network.EmbeddingSize);
            return (model, GraphModel.OnnxModel);
        }

        private Tensor Targets(bool[] mask) =>
            tensor(Enumerable.Range(0, _table.Count).Select(i => mask[i] ? _table.Labels[i] : ClassificationObjective.Unlabelled).ToArray());
    }
}

/// <summary>A graph's predictions as ML.NET transformers: lookups from node id to logits and embedding, and ML.NET's multiclass head.</summary>
internal static class GcnServing
{
    private const string LogitsColumn = ClassificationColumns.LogitsColumn;

    /// <summary>The chain that adds Score, PredictedLabel and Embedding to <paramref name="nodes"/> from per-node predictions (in table order).</summary>
    public static TransformerChain<ITransformer> Lookup(ModelContext context, IDataView nodes, NodeTable table, GcnOptions options, LabelInfo labels, string labelName,
        float[] logits, float[] embeddings, int embeddingSize)
    {
        var build = typeof(GcnServing).GetMethod(nameof(LookupView), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        var idType = table.IdType is TextDataViewType ? typeof(string) : table.IdType.RawType;
        var lookup = (IDataView)build.MakeGenericMethod(idType).Invoke(null, [table, logits, labels.ClassCount, embeddings, embeddingSize])!;

        var idColumn = options.NodeIdColumnName;
        var toLogits = context.Transforms.Conversion.MapValue(LogitsColumn, lookup, lookup.Schema["Id"], lookup.Schema["Logits"], idColumn).Fit(nodes);
        var withLogits = toLogits.Transform(nodes);
        var head = MLNetInternals.CreateSoftmaxHead(context.Environment, LogitsColumn, labels, labelName, options.ScoreColumnName, options.PredictedLabelColumnName);
        var withHead = head.Transform(withLogits);
        var toEmbedding = context.Transforms.Conversion.MapValue(options.EmbeddingColumnName, lookup, lookup.Schema["Id"], lookup.Schema["Embedding"], idColumn).Fit(withHead);
        var drop = context.Transforms.DropColumns(LogitsColumn).Fit(toEmbedding.Transform(withHead));
        return new TransformerChain<ITransformer>(toLogits, head, toEmbedding, drop);
    }

    private static IDataView LookupView<TId>(NodeTable table, float[] logits, int classes, float[] embeddings, int embeddingSize)
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
        return new MLContext().Data.LoadFromEnumerable(rows, schema);
    }

    private sealed class LookupRow<TId>
    {
        public TId Id { get; set; } = default!;
        public float[] Logits { get; set; } = [];
        public float[] Embedding { get; set; } = [];
    }
}

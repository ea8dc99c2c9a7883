using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Backbones;

/// <summary>Which backbone weights train when fine-tuning.</summary>
public enum BackboneTraining
{
    /// <summary>None: only the new classifier head trains (a linear probe on the frozen embedding).</summary>
    Frozen,
    /// <summary>The last <see cref="PretrainedClassifierOptions.TrainableBlocks"/> blocks; a block ends at each residual Add of the graph.</summary>
    LastBlocks,
    /// <summary>The nodes whose names start with one of <see cref="PretrainedClassifierOptions.TrainablePrefixes"/>.</summary>
    Prefixes,
    /// <summary>Every weight.</summary>
    All,
}

/// <summary>Options of <see cref="PretrainedClassifierEstimator"/>.</summary>
/// <example>
/// <code>
/// var options = new PretrainedClassifierOptions
/// {
///     Backbone = PretrainedBackboneOptions.ResNet18(), Training = BackboneTraining.LastBlocks, TrainableBlocks = 1,
///     BackboneLearningRateFactor = 0.1, Epochs = 5,
/// };
/// </code>
/// </example>
public sealed class PretrainedClassifierOptions : TrainingOptions
{
    /// <summary>
    /// Options with AdamW (no weight decay unless set: the same update as Adam) as the optimizer. Fine-tuning
    /// ResNet18's last two blocks with TorchSharp 0.107's Adam grew resident memory by about 45 MB a step on an AMD
    /// EPYC machine (compare pytorch/pytorch#75949); AdamW and SGD stayed flat.
    /// </summary>
    public PretrainedClassifierOptions() => Optimizer = OptimizerKind.AdamW;

    /// <summary>The backbone: file, cut and preprocessing; its input column is the pixel column.</summary>
    public PretrainedBackboneOptions Backbone { get; set; } = new();

    /// <summary>Label column: a key, or any type MapValueToKey accepts. Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Output column of class probabilities. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of the predicted class. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>Which backbone weights train. Default <see cref="BackboneTraining.LastBlocks"/>.</summary>
    public BackboneTraining Training { get; set; } = BackboneTraining.LastBlocks;

    /// <summary>Blocks that train under <see cref="BackboneTraining.LastBlocks"/>. Default 1.</summary>
    public int TrainableBlocks { get; set; } = 1;

    /// <summary>Node-name prefixes that train under <see cref="BackboneTraining.Prefixes"/>.</summary>
    public string[] TrainablePrefixes { get; set; } = [];

    /// <summary>The backbone's learning rate as a share of <see cref="TrainingOptions.LearningRate"/> (the head's). Default 0.1.</summary>
    public double BackboneLearningRateFactor { get; set; } = 0.1;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(Backbone, nameof(Backbone));
        Backbone.Validate();
        if (string.IsNullOrWhiteSpace(LabelColumnName))
            throw new ArgumentException("LabelColumnName must name a column.", nameof(LabelColumnName));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(TrainableBlocks, nameof(TrainableBlocks));
        if (Training == BackboneTraining.Prefixes && TrainablePrefixes.Length == 0)
            throw new ArgumentException("Training = Prefixes needs at least one name in TrainablePrefixes.", nameof(TrainablePrefixes));
        if (!(BackboneLearningRateFactor > 0) || double.IsInfinity(BackboneLearningRateFactor))
            throw new ArgumentOutOfRangeException(nameof(BackboneLearningRateFactor), BackboneLearningRateFactor, "BackboneLearningRateFactor must be above zero.");
    }
}

/// <summary>What fine-tuning produced.</summary>
/// <param name="Model">The fitted model: ML.NET's ONNX transformer over the backbone with its trained weights and the head, then ML.NET's multiclass head.</param>
/// <param name="History">Loss and metrics per epoch.</param>
/// <param name="OnnxModel">The exported graph (pixels in, logits out).</param>
/// <param name="TrainableParameters">Weights that trained (backbone and head).</param>
/// <param name="TrainableNodes">The backbone nodes that trained.</param>
public sealed record PretrainedFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long TrainableParameters,
    IReadOnlyList<string> TrainableNodes);

/// <summary>
/// Fine-tunes a classifier on a pretrained ONNX backbone: the graph is imported into TorchSharp, a linear head is
/// added on its (flattened) output, and the backbone is frozen, partly unfrozen (the last blocks, or nodes by name
/// prefix) or fully trained, at a smaller learning rate than the head. Batch-norm statistics stay as pretrained.
/// The trained weights are written back into the ONNX graph, which the fitted model serves through.
/// </summary>
/// <example>
/// <code>
/// var model = mlContext.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
/// {
///     Backbone = PretrainedBackboneOptions.ResNet18(), Training = BackboneTraining.LastBlocks, Epochs = 3,
/// }).Fit(pixels);
/// </code>
/// </example>
public sealed class PretrainedClassifierEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private const string LogitsColumn = ClassificationColumns.LogitsColumn;
    private readonly ModelContext _context;

    internal PretrainedClassifierEstimator(ModelContext context, PretrainedClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        Options = options;
    }

    /// <summary>The options.</summary>
    public PretrainedClassifierOptions Options { get; }

    /// <summary>Fine-tunes on <paramref name="input"/> and returns the model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Fine-tunes, validating on <paramref name="validationData"/> when given.</summary>
    public PretrainedFitResult Train(IDataView trainData, IDataView? validationData = null)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        Options.Validate();
        var log = _context.Logger("DeepVariants.Backbones");
        var backboneOptions = Options.Backbone;
        string pixels = backboneOptions.InputColumnName;
        int size = backboneOptions.Channels * backboneOptions.ImageHeight * backboneOptions.ImageWidth;
        DataViewReader.RequireFloatVector(trainData.Schema, pixels, size);
        (string labelColumn, var train, var validation, _) = ClassificationColumns.KeyedLabel(_context, Options.LabelColumnName, trainData, validationData,
            type => type is PrimitiveDataViewType, "a key, text, number or boolean label");
        var labels = DataViewReader.RequireKeyLabel(train.Schema, labelColumn);
        using var trainSet = DataViewReader.Read(train, pixels, size, labelColumn, [size]);
        using var validationSet = validation is null ? null : DataViewReader.Read(validation, pixels, size, labelColumn, [size]);

        byte[] onnx = File.ReadAllBytes(backboneOptions.ModelPath);
        string cut = backboneOptions.OutputNodeName ?? global::Onnx.ModelProto.Parser.ParseFrom(onnx).Graph.Output[0].Name;
        int seed = _context.ResolveSeed(Options.Seed);
        var device = TorchDevices.Resolve(Options.Device, _context.Environment, log);
        random.manual_seed(seed);
        using var network = new FineTunedNetwork(OnnxImporter.Import(onnx, cut), backboneOptions, labels.ClassCount, Options);
        log($"Fine-tuning {network.TrainableNodes.Count} of {network.Backbone.NodeNames.Count} backbone nodes ({network.TrainableParameterCount:N0} trainable weights with the head) on {trainSet.Count:N0} images, device {device}.");
        // The frozen part of the backbone gives the same values every epoch: it runs once, and training runs the rest.
        network.to(device);
        using var cachedTrain = network.Cache(trainSet, Options.BatchSize, device);
        using var cachedValidation = validationSet is null ? null : network.Cache(validationSet, Options.BatchSize, device);
        var history = TorchTrainer.Train(network, cachedTrain, cachedValidation, new ClassificationObjective(), Options, device, seed, log);

        var graph = OnnxGraphSurgery.Build(onnx, cut, backboneOptions.Preprocessing(), pixels, LogitsColumn, batched: false,
            network.Backbone.GlobalPoolNodes, network.HeadWeight.shape[1], network.Backbone.TrainedInitializers(), (network.HeadWeight, network.HeadBias));
        var onnxTransformer = OnnxServing.Apply(_context, graph, [pixels], [LogitsColumn], train);
        var scored = onnxTransformer.Transform(train);
        var (head, drop) = ClassificationColumns.SoftmaxTail(_context, scored, labelColumn, labels, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        return new PretrainedFitResult(OnnxServing.Chain(onnxTransformer, head, drop), history, graph, network.TrainableParameterCount, network.TrainableNodes);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.ContainsKey(Options.Backbone.InputColumnName))
            throw DataViewReader.MissingColumn(Options.Backbone.InputColumnName);
        if (!columns.TryGetValue(Options.LabelColumnName, out var label))
            throw DataViewReader.MissingColumn(Options.LabelColumnName);
        ClassificationColumns.AddMulticlassOutputs(columns, label, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        return new SchemaShape(columns.Values);
    }
}

/// <summary>
/// The backbone's preprocessing, the imported backbone and a linear head. It trains on the values at the boundary
/// between the backbone's frozen part and its trainable suffix (<see cref="Cache"/>), flattened into one row per image,
/// and runs only the suffix and the head.
/// </summary>
internal sealed class FineTunedNetwork : nn.Module<Tensor, Tensor>, ILearningRateGroups
{
    private readonly HashSet<string> _suffix;
    private IReadOnlyList<string> _boundary = [];
    private long[][] _boundaryShapes = [];

    private readonly OnnxImportedModule backbone;
    private readonly Linear head;
    private readonly Tensor channel_order;
    private readonly Tensor channel_means;
    private readonly long[] _imageShape;
    private readonly float _scale;
    private readonly double _backboneFactor;

    public FineTunedNetwork(OnnxImportedModule imported, PretrainedBackboneOptions backbone, int classes, PretrainedClassifierOptions options)
        : base(nameof(FineTunedNetwork))
    {
        this.backbone = imported;
        var p = backbone.Preprocessing();
        channel_order = tensor(p.ChannelOrder.Select(c => (long)c).ToArray());
        channel_means = tensor(p.ChannelMeans, [1, p.ChannelMeans.Length, 1, 1]);
        _imageShape = [-1, p.Channels, p.Height, p.Width];
        _scale = p.Scale;
        _backboneFactor = options.BackboneLearningRateFactor;
        long embedding;
        using (no_grad())
            embedding = Features(zeros(1, (long)p.Channels * p.Height * p.Width)).shape[1];
        head = nn.Linear(embedding, classes);
        TrainableNodes = SelectTrainable(imported, options);
        _suffix = TrainableNodes.ToHashSet();
        foreach (var parameter in imported.parameters())
            parameter.requires_grad = false;
        foreach (string node in TrainableNodes)
            foreach (var parameter in imported.NodeParameters(node))
                parameter.requires_grad = true;
        RegisterComponents();
    }

    public OnnxImportedModule Backbone => backbone;
    public IReadOnlyList<string> TrainableNodes { get; }
    public Tensor HeadWeight => head.weight!;
    public Tensor HeadBias => head.bias!;
    public long TrainableParameterCount => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    public IEnumerable<(IReadOnlyList<Parameter> Parameters, double Factor)> LearningRateGroups =>
    [
        (backbone.parameters().Where(p => p.requires_grad).ToList(), _backboneFactor),
        (head.parameters().ToList(), 1.0),
    ];

    /// <summary>Logits from cached boundary values [N, D] (see <see cref="Cache"/>).</summary>
    public override Tensor forward(Tensor cached)
    {
        var parts = new Tensor[_boundary.Count];
        long offset = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            long width = _boundaryShapes[i].Aggregate(1L, (a, b) => a * b);
            parts[i] = cached.narrow(1, offset, width).reshape([-1, .. _boundaryShapes[i]]);
            offset += width;
        }
        return head.call(backbone.RunSuffix(_suffix, _boundary, parts).flatten(1));
    }

    /// <summary>Runs the preprocessing and the frozen part on every image once (without gradients) and keeps the boundary values, flattened.</summary>
    public TensorDataset Cache(TensorDataset pixels, int batchSize, Device device)
    {
        backbone.eval();
        using var noGrad = no_grad();
        var rows = new List<Tensor>();
        for (long start = 0; start < pixels.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = pixels.Inputs.narrow(0, start, Math.Min(batchSize, pixels.Count - start)).to(device);
            var images = Preprocess(batch);
            var names = backbone.BoundaryValues(_suffix);
            var values = backbone.Capture(images, names);
            if (_boundaryShapes.Length == 0)
            {
                _boundary = names;
                _boundaryShapes = values.Select(v => v.shape.Skip(1).ToArray()).ToArray();
            }
            rows.Add(cat(values.Select(v => v.flatten(1)).ToArray(), 1).cpu().MoveToOuterDisposeScope());
        }
        var cached = cat(rows.ToArray(), 0);
        foreach (var row in rows)
            row.Dispose();
        return new TensorDataset(cached, pixels.Targets.clone());
    }

    private Tensor Features(Tensor pixels) => backbone.call(Preprocess(pixels)).flatten(1);

    private Tensor Preprocess(Tensor pixels)
    {
        var images = pixels.reshape(_imageShape).index_select(1, channel_order.to(pixels.device));
        return (images - channel_means.to(pixels.device)) * _scale;
    }

    private static IReadOnlyList<string> SelectTrainable(OnnxImportedModule imported, PretrainedClassifierOptions options)
    {
        var names = imported.NodeNames;
        var operators = imported.NodeOperators;
        switch (options.Training)
        {
            case BackboneTraining.Frozen:
                return [];
            case BackboneTraining.All:
                return names;
            case BackboneTraining.Prefixes:
                var chosen = names.Where(n => options.TrainablePrefixes.Any(prefix => n.StartsWith(prefix, StringComparison.Ordinal))).ToList();
                if (chosen.Count == 0)
                    throw new ArgumentException(
                        $"No backbone node starts with {string.Join(", ", options.TrainablePrefixes.Select(p => $"'{p}'"))}; its nodes are {string.Join(", ", names.Take(20))}{(names.Count > 20 ? ", ..." : "")}.",
                        nameof(options));
                return chosen;
            default:
                // A block ends at each residual Add; the last k blocks are the nodes after the (k+1)-th Add from the end.
                var adds = Enumerable.Range(0, names.Count).Where(i => operators[i] == "Add").ToList();
                int start = adds.Count > options.TrainableBlocks ? adds[^(options.TrainableBlocks + 1)] + 1 : 0;
                return names.Skip(start).ToList();
        }
    }
}

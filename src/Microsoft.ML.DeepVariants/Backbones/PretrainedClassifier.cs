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

/// <summary>What happens to the last linear layer of a backbone that is a classifier already.</summary>
public enum PretrainedHead
{
    /// <summary>Kept when it has as many classes as the label, else replaced.</summary>
    Auto,
    /// <summary>Kept and trained further: its classes must be the label's, in key order.</summary>
    Keep,
    /// <summary>Replaced by a new layer for the label's classes.</summary>
    Replace,
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
    /// Options with AdamW as the optimizer (without weight decay unless set: the same update as Adam). Resident memory
    /// once grew by about 50 MB a step when fine-tuning ResNet18's last two blocks, with Adam and AdamW alike: glibc kept
    /// the freed buffers; the trainer now hands them back (see <see cref="NativeAllocator"/>).
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

    /// <summary>
    /// When the backbone is a classifier already (its output comes from a final Gemm, as with <see cref="PretrainedBackboneOptions.FromClassifier"/>
    /// and <see cref="PretrainedBackboneOptions.OutputNodeName"/> unset), whether that layer is kept or replaced. Default <see cref="PretrainedHead.Auto"/>.
    /// </summary>
    public PretrainedHead Head { get; set; } = PretrainedHead.Auto;

    /// <summary>Let the trainable blocks' batch-normalisation statistics follow the new data; by default they stay as pretrained. Default false.</summary>
    public bool TrainBatchNormStatistics { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(Backbone, nameof(Backbone));
        Backbone.Validate();
        RequireColumnNames((nameof(LabelColumnName), LabelColumnName));
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
/// <param name="ParameterCount">Weights that trained (backbone and head).</param>
/// <param name="TrainableNodes">The backbone nodes that trained.</param>
public sealed record PretrainedFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount,
    IReadOnlyList<string> TrainableNodes) : FitResult(Model, History, OnnxModel, ParameterCount)
{
    /// <summary>Weights that trained (backbone and head): the same as <see cref="FitResult.ParameterCount"/>.</summary>
    public long TrainableParameters => ParameterCount;
}

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
public sealed class PretrainedClassifierEstimator : DeepVariantsEstimator<PretrainedClassifierOptions, PretrainedFitResult>
{
    internal PretrainedClassifierEstimator(ModelContext context, PretrainedClassifierOptions options) : base(context, options, "DeepVariants.Backbones") { }

    private protected override FitTask CreateTask(SchemaView schema) => PretrainedTask.Create(schema, Options);

    /// <summary>The pretrained classifier's part of a fit: pixels in, the imported backbone's frozen part computed once, the rest and a head trained.</summary>
    private sealed class PretrainedTask : FitTask
    {
        private readonly PretrainedClassifierOptions _options;
        private readonly byte[] _onnx;
        private string _cut = "";

        private PretrainedTask(PretrainedClassifierOptions options, byte[] onnx)
        {
            _options = options;
            _onnx = onnx;
        }

        private int Size => _options.Backbone.Channels * _options.Backbone.ImageHeight * _options.Backbone.ImageWidth;

        public static PretrainedTask Create(SchemaView schema, PretrainedClassifierOptions o)
        {
            var pixels = schema.Require(o.Backbone.InputColumnName);
            int size = o.Backbone.Channels * o.Backbone.ImageHeight * o.Backbone.ImageWidth;
            if (!pixels.IsFloatVector || (schema.HasSizes && pixels.Size != size))
                throw schema.Mismatch(pixels, $"Vector<Single, {size}>");
            var label = ClassLabels.Check(schema, o.LabelColumnName);
            // Read the backbone now, so that a truncated or wrong file is named before any data is read.
            return new PretrainedTask(o, o.Backbone.ReadModel())
            {
                Label = label,
                Tail = new ServingTail.Multiclass(o.ScoreColumnName, o.PredictedLabelColumnName),
                Description = $"a classifier on the pretrained backbone '{Path.GetFileName(o.Backbone.ModelPath)}'",
                RawInput = (o.Backbone.InputColumnName, size),
                InputColumn = o.Backbone.InputColumnName,
            };
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network) =>
            new PretrainedFitResult(result.Model, result.History, result.OnnxModel, result.ParameterCount, ((FineTunedNetwork)network).TrainableNodes) { Trained = result.Trained };

        public override RowReader Reader(IDataView prepared, string role) => new(
            new VectorFeatures(prepared.Schema[_options.Backbone.InputColumnName], [Size]),
            new ClassTarget(prepared.Schema[Fit.Label!.KeyColumn], Fit.Label.UserColumn));

        public override nn.Module<Tensor, Tensor> CreateNetwork()
        {
            int classes = Fit.Label!.Info.ClassCount;
            var classifier = _options.Backbone.OutputNodeName is null ? ClassifierHead.Find(_onnx, _options.Backbone.Source) : null;
            bool keep = classifier is not null && _options.Head switch
            {
                PretrainedHead.Keep => classifier.Classes == classes
                    ? true
                    : throw new ArgumentException($"Head = Keep, but the backbone's classifier has {classifier.Classes} classes and label '{_options.LabelColumnName}' has {classes}; set Head to Replace.", nameof(PretrainedClassifierOptions.Head)),
                PretrainedHead.Replace => false,
                _ => classifier.Classes == classes,
            };
            _cut = classifier?.Features ?? _options.Backbone.OutputNodeName ?? global::Onnx.ModelProto.Parser.ParseFrom(_onnx).Graph.Output[0].Name;
            if (classifier is not null)
                Fit.Log(keep ? $"Keeping the backbone's classifier layer ({classifier.Classes} classes) and training it further."
                    : $"Replacing the backbone's classifier layer ({classifier.Classes} classes) with one for {classes}.");
            return new FineTunedNetwork(OnnxImporter.Import(_onnx, _cut, _options.Backbone.Source), _options.Backbone, classes, _options, keep ? classifier : null);
        }

        // The frozen part of the backbone gives the same values every epoch: it runs once, and training runs the rest.
        public override void Initialize(nn.Module<Tensor, Tensor> module)
        {
            var network = (FineTunedNetwork)module;
            var fit = Fit;
            network.to(fit.Device);
            fit.Log($"Fine-tuning {network.TrainableNodes.Count} of {network.Backbone.NodeNames.Count} backbone nodes; computing the frozen part once per image.");
            var pixels = fit.TrainSource;
            fit.TrainSource = network.Cache(pixels, _options.BatchSize, fit.Device);
            pixels.Dispose();
            if (fit.ValidationSource is { } validation)
            {
                fit.ValidationSource = network.Cache(validation, _options.BatchSize, fit.Device);
                validation.Dispose();
            }
        }

        public override OnnxExport Export(nn.Module<Tensor, Tensor> module)
        {
            var network = (FineTunedNetwork)module;
            string pixels = _options.Backbone.InputColumnName, logits = ClassificationColumns.LogitsColumn;
            var graph = OnnxGraphSurgery.Build(_onnx!, _cut, _options.Backbone.Preprocessing(), pixels, logits, batched: false,
                network.Backbone.GlobalPoolNodes, network.HeadWeight.shape[1], network.Backbone.TrainedInitializers(), (network.HeadWeight, network.HeadBias));
            return new OnnxExport(graph, [pixels], [logits]);
        }
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

    public FineTunedNetwork(OnnxImportedModule imported, PretrainedBackboneOptions backbone, int classes, PretrainedClassifierOptions options,
        ClassifierHead? keptHead = null)
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
        using (NewDisposeScope())
            embedding = Features(zeros(1, (long)p.Channels * p.Height * p.Width)).shape[1];
        head = nn.Linear(embedding, classes);
        if (keptHead is not null)
        {
            if (keptHead.Weight.GetLength(1) != embedding)
                throw new InvalidOperationException($"The backbone's classifier layer reads {keptHead.Weight.GetLength(1)} values, but its input has {embedding}.");
            using var noGrad = no_grad();
            using var weight = tensor(keptHead.Weight.Cast<float>().ToArray(), [classes, embedding]);
            using var bias = tensor(keptHead.Bias);
            head.weight!.copy_(weight);
            head.bias!.copy_(bias);
        }
        imported.TrainBatchNormStatistics = options.TrainBatchNormStatistics;
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

    /// <summary>Runs the preprocessing and the frozen part on every image once (without gradients) and keeps the boundary values, flattened, with the targets.</summary>
    public InMemoryBatchSource Cache(IBatchSource pixels, int batchSize, Device device)
    {
        backbone.eval();
        using var noGrad = no_grad();
        Tensor? cached = null, targets = null;
        long row = 0;
        try
        {
            foreach (var batch in pixels.Batches(batchSize, shuffle: false, seed: 0, epoch: 0, CancellationToken.None))
            {
                using (batch)
                {
                    using var scope = NewDisposeScope();
                    var names = backbone.BoundaryValues(_suffix);
                    var values = backbone.Capture(Preprocess(batch.Inputs.to(device)), names);
                    if (_boundaryShapes.Length == 0)
                    {
                        _boundary = names;
                        _boundaryShapes = values.Select(v => v.shape.Skip(1).ToArray()).ToArray();
                    }
                    var flat = cat(values.Select(v => v.flatten(1)).ToArray(), 1).cpu();
                    cached ??= empty(pixels.Rows, flat.shape[1]).DetachFromDisposeScope();
                    targets ??= empty([pixels.Rows, .. batch.Targets.shape.Skip(1)], batch.Targets.dtype).DetachFromDisposeScope();
                    cached.narrow(0, row, batch.Rows).copy_(flat);
                    targets.narrow(0, row, batch.Rows).copy_(batch.Targets);
                    row += batch.Rows;
                }
                NativeAllocator.ReleaseIfGrown();
            }
            return new InMemoryBatchSource(cached!, targets!);
        }
        catch
        {
            cached?.Dispose();
            targets?.Dispose();
            throw;
        }
    }

    private Tensor Features(Tensor pixels) => backbone.call(Preprocess(pixels)).flatten(1);

    private Tensor Preprocess(Tensor pixels)
    {
        var images = pixels.reshape(_imageShape).index_select(1, channel_order.to(pixels.device));
        return (images - channel_means.to(pixels.device)).Times(_scale);
    }

    private static IReadOnlyList<string> SelectTrainable(OnnxImportedModule imported, PretrainedClassifierOptions options)
    {
        var names = imported.NodeNames;
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
                // The backbone's own blocks (OnnxImportedModule.Blocks): residual blocks, Inception modules, dense blocks, ...
                var blocks = imported.Blocks;
                return blocks.Skip(Math.Max(0, blocks.Count - options.TrainableBlocks)).SelectMany(b => b).ToList();
        }
    }
}

/// <summary>
/// The last linear layer of a graph that is a classifier: a Gemm with constant weights whose output reaches the graph's
/// output through reshaping or softmax only. Its input is the embedding a new or kept head reads.
/// </summary>
internal sealed record ClassifierHead(string Features, float[,] Weight, float[] Bias)
{
    public int Classes => Weight.GetLength(0);

    public static ClassifierHead? Find(byte[] onnx, string source)
    {
        var model = global::Onnx.ModelProto.Parser.ParseFrom(onnx);
        var graph = model.Graph;
        var producers = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n);
        string value = model.MetadataProps.FirstOrDefault(m => m.Key == "deepvariants.logits")?.Value ?? graph.Output[0].Name;
        while (producers.TryGetValue(value, out var node) && node.OpType is "Identity" or "Reshape" or "Flatten" or "Softmax" or "LogSoftmax")
            value = node.Input[0];
        if (!producers.TryGetValue(value, out var gemm) || gemm.OpType != "Gemm")
            return null;
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        if (!initializers.TryGetValue(gemm.Input[1], out var b) || b.Dims.Count != 2)
            return null;
        bool transB = gemm.Attribute.FirstOrDefault(a => a.Name == "transB")?.I == 1;
        float Attribute(string name) => gemm.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : 1;
        if (gemm.Attribute.FirstOrDefault(a => a.Name == "transA")?.I == 1 || Attribute("alpha") != 1 || Attribute("beta") != 1)
            return null;
        float[] values = Floats(b);
        int rows = (int)b.Dims[0], columns = (int)b.Dims[1];
        int classes = transB ? rows : columns, inputs = transB ? columns : rows;
        var weight = new float[classes, inputs];
        for (int k = 0; k < classes; k++)
            for (int i = 0; i < inputs; i++)
                weight[k, i] = transB ? values[k * columns + i] : values[i * columns + k];
        float[] bias = gemm.Input.Count > 2 && initializers.TryGetValue(gemm.Input[2], out var c) ? Floats(c) : new float[classes];
        if (bias.Length == 1 && classes > 1)
            bias = Enumerable.Repeat(bias[0], classes).ToArray();
        return new ClassifierHead(gemm.Input[0], weight, bias);
    }

    private static float[] Floats(global::Onnx.TensorProto t) =>
        t.RawData.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : t.FloatData.ToArray();
}

using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>What pruning produced: the pruned ML.NET model, its report and its ONNX graph.</summary>
/// <param name="Model">The pruned model, an ordinary CNN classifier (Score, PredictedLabel; saves with <c>mlContext.Model.Save</c>).</param>
/// <param name="Report">Sparsity per layer and accuracy before and after.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through; its pruned weights are zeros.</param>
/// <param name="History">The fine-tuning epochs, or null when there were none.</param>
public sealed record PruningResult(TransformerChain<ITransformer> Model, PruningReport Report, byte[] OnnxModel, TrainingHistory? History);

/// <summary>
/// Magnitude pruning of a fitted DeepVariants classifier: zeroes the smallest convolution and linear weights to a target
/// sparsity (global or per layer), optionally fine-tunes the rest with the pruned weights held at zero, and reports
/// sparsity per layer and accuracy before and after. The data is read as the fitted model read it (same preprocessing,
/// same class order), and the pruned network is served the same way.
/// </summary>
/// <example>
/// <code>
/// var fitted = mlContext.Transforms.DeepVariants.CnnClassifier(options).Train(train);
/// var pruned = mlContext.Transforms.DeepVariants.Prune(fitted, new PruningOptions { Sparsity = 0.9, Epochs = 1 }).Train(train, test);
/// mlContext.Model.Save(pruned.Model, train.Schema, "pruned.zip");
/// </code>
/// </example>
public sealed class PruningEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private readonly ModelContext _context;
    private readonly TrainedNetwork _trained;

    internal PruningEstimator(ModelContext context, FitResult fitted, PruningOptions options)
    {
        ArgumentNullException.ThrowIfNull(fitted);
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _trained = fitted.Trained ?? throw new ArgumentException(
            "Pruning needs the FitResult that a DeepVariants estimator's Train returned (CnnClassifier(...).Train, Distill(...).Train); this one keeps no trained weights.", nameof(fitted));
        Options = options;
    }

    /// <summary>The options this estimator prunes with.</summary>
    public PruningOptions Options { get; }

    /// <summary>Prunes (and fine-tunes on <paramref name="input"/> when <see cref="TrainingOptions.Epochs"/> is above 0) and returns the model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Prunes, fine-tunes on <paramref name="trainData"/> when asked, and reports accuracy on <paramref name="evaluationData"/> when given.</summary>
    public PruningResult Train(IDataView trainData, IDataView? evaluationData = null)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        Options.Validate();
        var log = _context.Logger("DeepVariants.Pruning");
        using var trainSet = Read(trainData, "training", log);
        using var evaluationSet = evaluationData is null ? null : Read(evaluationData, "evaluation", log);
        var device = TorchDevices.Resolve(Options.Device, _context.Environment, log);
        var objective = _trained.Objective;
        double? Accuracy(nn.Module<Tensor, Tensor> network) => evaluationSet is null ? null
            : TorchTrainer.Evaluate(network, evaluationSet, objective, Options.BatchSize, device).Metric;

        using var network = _trained.Restore();
        network.to(device);
        double? before = Accuracy(network);
        using var pruning = MagnitudePruning.Apply(network, Options);
        double? pruned = Accuracy(network);
        log($"Pruned to {Options.Sparsity:P0} ({Options.Scope}); evaluation accuracy {before:P2} before, {pruned:P2} after pruning.");

        TrainingHistory? history = null;
        if (Options.Epochs > 0)
        {
            int seed = _context.ResolveSeed(Options.Seed);
            random.manual_seed(seed);
            history = TorchTrainer.Train(new TrainingRun
            {
                Model = network, Train = trainSet, Validation = evaluationSet, Objective = objective, Options = Options,
                Device = device, Seed = seed, Log = log, AfterStep = pruning.Reapply,
            });
            // Early stopping may restore an earlier epoch's weights; they were masked too, but re-apply to be exact.
            pruning.Reapply();
        }
        double? after = Options.Epochs > 0 ? Accuracy(network) : pruned;
        var report = new PruningReport(pruning.Sparsity(), before, pruned, after);
        var (model, onnx) = _trained.Serve(network);
        return new PruningResult(model, report, onnx, history);
    }

    // The data as the fitted model read it: same preprocessing, same class order, same row reader.
    private IBatchSource Read(IDataView data, string role, Action<string> log)
    {
        // The fitted model's own schema check first, so a column of another shape is named before any row is read.
        _trained.CheckSchema(data.Schema, role);
        var prepared = _trained.Prepare(data);
        if (_trained.Label is { } label)
            ClassLabels.Scan(prepared, label, role);
        var reader = _trained.Reader(prepared, role);
        return DataLoading.Load(prepared, reader, DataLoading.CountRows(prepared), Options, role, log);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => _trained.OutputSchema(inputSchema);
}

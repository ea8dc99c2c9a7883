using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using TorchSharp;

namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>What pruning produced: the pruned ML.NET model, its report and its ONNX graph.</summary>
/// <param name="Model">The pruned model, an ordinary CNN classifier (Score, PredictedLabel; saves with <c>mlContext.Model.Save</c>).</param>
/// <param name="Report">Sparsity per layer and accuracy before and after.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through; its pruned weights are zeros.</param>
/// <param name="History">The fine-tuning epochs, or null when there were none.</param>
public sealed record PruningResult(TransformerChain<ITransformer> Model, PruningReport Report, byte[] OnnxModel, TrainingHistory? History);

/// <summary>
/// Magnitude pruning of a fitted CNN classifier: zeroes the smallest convolution and linear weights to a target
/// sparsity (global or per layer), optionally fine-tunes the rest with the pruned weights held at zero, and reports
/// sparsity per layer and accuracy before and after. The label keeps the fitted model's class order.
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
    private readonly CnnTrainedState _state;

    internal PruningEstimator(ModelContext context, CnnFitResult fitted, PruningOptions options)
    {
        ArgumentNullException.ThrowIfNull(fitted);
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _state = fitted.State ?? throw new ArgumentException(
            "Pruning needs a fitted CNN classifier's CnnFitResult (from CnnClassifier(...).Train or Distill(...).Train); this one keeps no trained weights.", nameof(fitted));
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
        var input = _state.Input;
        long[] shape = [input.Channels, input.Height, input.Width];
        var preparedTrain = _state.Prepare(trainData);
        using var trainSet = DataViewReader.Read(preparedTrain, input.TensorColumn, input.Size, _state.KeyedLabelColumn, shape);
        using var evaluationSet = evaluationData is null ? null
            : DataViewReader.Read(_state.Prepare(evaluationData), input.TensorColumn, input.Size, _state.KeyedLabelColumn, shape);
        var device = TorchDevices.Resolve(Options.Device, _context.Environment, log);
        var objective = new ClassificationObjective();
        double? Accuracy(CnnNetwork network) => evaluationSet is null ? null
            : TorchTrainer.Evaluate(network, evaluationSet, objective, Options.BatchSize, device).Metric;

        using var network = _state.Restore();
        network.to(device);
        double? before = Accuracy(network);
        using var pruning = MagnitudePruning.Apply(network, Options);
        double? pruned = Accuracy(network);
        log($"Pruned to {Options.Sparsity:P0} ({Options.Scope}); evaluation accuracy {before:P2} before, {pruned:P2} after pruning.");

        TrainingHistory? history = null;
        if (Options.Epochs > 0)
        {
            int seed = _context.ResolveSeed(Options.Seed);
            TorchSharp.torch.random.manual_seed(seed);
            history = TorchTrainer.Train(network, trainSet, evaluationSet, objective, Options, device, seed, log, afterStep: pruning.Reapply);
            // Early stopping may restore an earlier epoch's weights; they were masked too, but re-apply to be exact.
            pruning.Reapply();
        }
        double? after = Options.Epochs > 0 ? Accuracy(network) : pruned;
        var report = new PruningReport(pruning.Sparsity(), before, pruned, after);
        var (model, onnx) = CnnClassifierEstimator.BuildModel(_context, _state.Options, network, input, _state.Preprocessing, _state.Labels,
            _state.KeyedLabelColumn, preparedTrain);
        return new PruningResult(model, report, onnx, history);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
        new CnnClassifierEstimator(_context, _state.Options).GetOutputSchema(inputSchema);
}

using Microsoft.ML.Data;

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
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _trained = CompressionRun.Trained(fitted, "Pruning");
        Options = options;
    }

    /// <summary>The options this estimator prunes with.</summary>
    public PruningOptions Options { get; }

    /// <summary>Prunes (and fine-tunes on <paramref name="input"/> when <see cref="TrainingOptions.Epochs"/> is above 0) and returns the model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Prunes, fine-tunes on <paramref name="trainData"/> when asked, and reports accuracy on <paramref name="evaluationData"/> when given.</summary>
    public PruningResult Train(IDataView trainData, IDataView? evaluationData = null)
    {
        Options.Validate();
        MagnitudePruning? pruning = null;
        IReadOnlyList<LayerSparsity> sparsity = [];
        try
        {
            // The masks hold the pruned weights at zero after every fine-tuning step.
            var (model, onnx, history, accuracy) = CompressionRun.Run(_context, _trained, Options, "DeepVariants.Pruning", trainData, evaluationData,
                network =>
                {
                    pruning = MagnitudePruning.Apply(network, Options);
                    return network;
                },
                afterStep: () => pruning!.Reapply(),
                finished: _ => sparsity = pruning!.Sparsity());
            return new PruningResult(model, new PruningReport(sparsity, accuracy.Before, accuracy.Rewritten, accuracy.After), onnx, history);
        }
        finally
        {
            pruning?.Dispose();
        }
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => _trained.OutputSchema(inputSchema);
}

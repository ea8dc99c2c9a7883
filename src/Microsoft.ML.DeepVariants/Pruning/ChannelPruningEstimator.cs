using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>
/// Channel (structured) pruning of a fitted DeepVariants CNN classifier: whole convolution filters are removed with
/// their batch-norm channels and the next layer's inputs (see <see cref="ChannelPruningOptions"/>), the thinner network
/// is fine-tuned, and it is exported and served through ONNX inside ML.NET like the original: a smaller file with fewer
/// multiply-adds, where magnitude pruning (<see cref="PruningEstimator"/>) leaves zeros in tensors of the same size.
/// </summary>
/// <example>
/// <code>
/// var fitted = mlContext.Transforms.DeepVariants.CnnClassifier(options).Train(train);
/// var thin = mlContext.Transforms.DeepVariants.PruneChannels(fitted, new ChannelPruningOptions { Ratio = 0.5 }).Train(train, test);
/// mlContext.Model.Save(thin.Model, train.Schema, "thin.zip");
/// </code>
/// </example>
public sealed class ChannelPruningEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private readonly ModelContext _context;
    private readonly TrainedNetwork _trained;

    internal ChannelPruningEstimator(ModelContext context, FitResult fitted, ChannelPruningOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _trained = CompressionRun.Trained(fitted, "PruneChannels");
        Options = options;
    }

    /// <summary>The options this estimator prunes with.</summary>
    public ChannelPruningOptions Options { get; }

    /// <summary>Prunes, fine-tunes on <paramref name="input"/> when <see cref="TrainingOptions.Epochs"/> is above 0, and returns the model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Prunes, fine-tunes on <paramref name="trainData"/> when asked, and reports accuracy on <paramref name="evaluationData"/> when given.</summary>
    public CompressionResult<ChannelPruningReport> Train(IDataView trainData, IDataView? evaluationData = null)
    {
        Options.Validate();
        // The filters each convolution keeps are chosen, and the options checked, before any row is read.
        List<ChannelPruningLayer> layers;
        Dictionary<string, long[]> keep;
        long before;
        using (var network = _trained.Restore())
        {
            var links = ChannelPruning.Links(Rebuildable(network));
            if (links.Count == 0)
                throw new NotSupportedException("The network has no convolution whose filters can be removed (one followed, through batch norms, activations and pooling, by another convolution or a dense layer).");
            keep = ChannelPruning.Keep(links, Options);
            layers = links.Select(l => new ChannelPruningLayer(l.Name, l.Convolution.out_channels, keep[l.Name].LongLength)).ToList();
            before = network.parameters().Sum(p => p.numel());
        }
        long after = 0;
        var (model, onnx, history, accuracy) = CompressionRun.Run(_context, _trained, Options, "DeepVariants.ChannelPruning", trainData, evaluationData, network =>
        {
            var rebuildable = Rebuildable(network);
            // The same trained weights as the plan's, so the same filters: the choice is made once.
            var pruned = ModuleRewrite.Replace(rebuildable, ChannelPruning.Replacements(ChannelPruning.Links(rebuildable), keep));
            after = pruned.parameters().Sum(p => p.numel());
            return pruned;
        });
        return new CompressionResult<ChannelPruningReport>(model,
            new ChannelPruningReport(layers, before, after, accuracy.Before, accuracy.Rewritten, accuracy.After), onnx, history);
    }

    private static IRebuildableNetwork Rebuildable(nn.Module<Tensor, Tensor> network) => network as IRebuildableNetwork
        ?? throw new NotSupportedException($"PruneChannels works on CNN classifiers; this fit's network is a {network.GetType().Name}.");

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => _trained.OutputSchema(inputSchema);
}

namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>How a convolution's filters are ranked for removal.</summary>
public enum ChannelImportance
{
    /// <summary>The L1 norm of each filter's weights (Li et al. 2017): filters with small weights contribute little.</summary>
    L1Norm,
    /// <summary>The magnitude of the batch-norm scale after each filter (network slimming, Liu et al. 2017); needs a batch norm after the convolution.</summary>
    BatchNormScale,
}

/// <summary>
/// Options of <see cref="ChannelPruningEstimator"/>: structured pruning of a fitted CNN's convolution filters. Each
/// convolution loses <see cref="Ratio"/> of its filters (or the share <see cref="LayerRatios"/> gives it), the least
/// important by <see cref="Importance"/>, together with their batch-norm channels and the next layer's matching inputs,
/// so the network and its exported graph are really smaller; then it is fine-tuned for
/// <see cref="TrainingOptions.Epochs"/> epochs (1 by default). Works on networks that are chains of convolutions
/// (LeNet, VGG): a residual addition or a concatenation ties channel counts together.
/// </summary>
/// <example>
/// <code>
/// var result = mlContext.Transforms.DeepVariants.PruneChannels(fitted, new ChannelPruningOptions { Ratio = 0.5, Epochs = 2 }).Train(train, test);
/// Console.WriteLine($"{result.Report.ParametersBefore:N0} -> {result.Report.ParametersAfter:N0} parameters");
/// </code>
/// </example>
public sealed class ChannelPruningOptions : TrainingOptions
{
    /// <summary>
    /// Creates options that remove half of each convolution's filters and fine-tune for one epoch at a learning rate of 1e-3: removing
    /// whole filters changes the function more than zeroing small weights, and a small VGG whose filters were cut won back 16 points of accuracy in that epoch at 1e-4, 25 at 1e-3.
    /// </summary>
    public ChannelPruningOptions()
    {
        Epochs = 1;
        LearningRate = 1e-3f;
    }

    /// <summary>The share of each convolution's filters removed, in [0, 1). Default 0.5.</summary>
    public double Ratio { get; set; } = 0.5;

    /// <summary>Shares by convolution name (as in <see cref="ChannelPruningReport.Layers"/>), overriding <see cref="Ratio"/>; 0 keeps a layer whole.</summary>
    public Dictionary<string, double> LayerRatios { get; set; } = [];

    /// <summary>How filters are ranked. Default <see cref="ChannelImportance.L1Norm"/>.</summary>
    public ChannelImportance Importance { get; set; } = ChannelImportance.L1Norm;

    /// <inheritdoc/>
    protected override int MinimumEpochs => 0;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        CheckRatio(Ratio, nameof(Ratio));
        ArgumentNullException.ThrowIfNull(LayerRatios, nameof(LayerRatios));
        foreach (var (layer, ratio) in LayerRatios)
            CheckRatio(ratio, $"{nameof(LayerRatios)}[{layer}]");
        if (!Enum.IsDefined(Importance))
            throw new ArgumentOutOfRangeException(nameof(Importance), Importance, "Importance must be L1Norm or BatchNormScale.");
    }

    private static void CheckRatio(double ratio, string name)
    {
        if (!(ratio >= 0 && ratio < 1))
            throw new ArgumentOutOfRangeException(name, ratio,
                $"{name} must be in [0, 1): the share of a convolution's filters to remove ({ratio} would {(ratio >= 1 ? "remove every filter of the layer" : "not be a share")}).");
    }
}

/// <summary>One convolution's pruning.</summary>
/// <param name="Name">The convolution's name in the network (for example <c>convolutions.block1.conv</c>).</param>
/// <param name="FiltersBefore">Its filters (output channels) before.</param>
/// <param name="FiltersAfter">Its filters after.</param>
public sealed record ChannelPruningLayer(string Name, long FiltersBefore, long FiltersAfter);

/// <summary>What channel pruning did: each convolution, the network's parameters, and accuracy before, right after and after fine-tuning.</summary>
public sealed record ChannelPruningReport(IReadOnlyList<ChannelPruningLayer> Layers, long ParametersBefore, long ParametersAfter,
    double? AccuracyBefore, double? AccuracyPruned, double? AccuracyAfter);

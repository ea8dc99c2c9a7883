namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>Whether the target sparsity applies to all pruned weights together or to each layer alone.</summary>
public enum PruningScope
{
    /// <summary>One magnitude threshold over every pruned layer: layers with many small weights lose more of them.</summary>
    Global,
    /// <summary>Each layer loses the same share of its weights (or the share <see cref="PruningOptions.LayerSparsity"/> gives it).</summary>
    PerLayer,
}

/// <summary>
/// Options of <see cref="PruningEstimator"/>: magnitude pruning of a fitted CNN classifier's convolution and linear
/// weights (biases and batch-norm parameters are kept), then optional fine-tuning with the pruned weights held at
/// zero. <see cref="TrainingOptions.Epochs"/> counts the fine-tuning epochs (0, the default, prunes without training).
/// </summary>
/// <example>
/// <code>
/// var pruned = mlContext.Transforms.DeepVariants.Prune(fitted, new PruningOptions { Sparsity = 0.8, Epochs = 2 }).Train(train, test);
/// Console.WriteLine($"{pruned.Report.Sparsity:P0} zero, accuracy {pruned.Report.AccuracyBefore:P1} -> {pruned.Report.AccuracyAfter:P1}");
/// </code>
/// </example>
public sealed class PruningOptions : TrainingOptions
{
    /// <summary>Creates options with no fine-tuning and a fine-tuning learning rate of 1e-4.</summary>
    public PruningOptions()
    {
        Epochs = 0;
        LearningRate = 1e-4f;
    }

    /// <summary>The share of pruned-layer weights set to zero, in [0, 1). Default 0.5.</summary>
    public double Sparsity { get; set; } = 0.5;

    /// <summary>Global or per-layer thresholds. Default <see cref="PruningScope.Global"/>.</summary>
    public PruningScope Scope { get; set; } = PruningScope.Global;

    /// <summary>Per-layer sparsity by layer name (as in <see cref="PruningReport.Layers"/>), overriding <see cref="Sparsity"/> under <see cref="PruningScope.PerLayer"/>.</summary>
    public Dictionary<string, double> LayerSparsity { get; set; } = [];

    /// <inheritdoc/>
    protected override int MinimumEpochs => 0;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        CheckShare(Sparsity, nameof(Sparsity));
        ArgumentNullException.ThrowIfNull(LayerSparsity, nameof(LayerSparsity));
        foreach (var (layer, share) in LayerSparsity)
            CheckShare(share, $"{nameof(LayerSparsity)}[{layer}]");
        if (LayerSparsity.Count > 0 && Scope != PruningScope.PerLayer)
            throw new ArgumentException("LayerSparsity applies under Scope = PerLayer only.", nameof(LayerSparsity));
    }

    private static void CheckShare(double share, string name)
    {
        if (!(share >= 0 && share < 1))
            throw new ArgumentOutOfRangeException(name, share, $"{name} must be in [0, 1).");
    }
}

/// <summary>Sparsity of one pruned layer.</summary>
/// <param name="Name">The weight's name in the network (for example <c>convolutions.conv1.weight</c>).</param>
/// <param name="Weights">Weights in the layer.</param>
/// <param name="Zeros">Weights that are zero.</param>
public sealed record LayerSparsity(string Name, long Weights, long Zeros)
{
    /// <summary>The share of the layer's weights that are zero.</summary>
    public double Sparsity => Weights == 0 ? 0 : (double)Zeros / Weights;
}

/// <summary>What pruning did: sparsity per layer and overall, and accuracy on the evaluation data (when given) before pruning, right after it, and after fine-tuning.</summary>
/// <param name="Layers">Each pruned layer.</param>
/// <param name="AccuracyBefore">Accuracy of the model as fitted.</param>
/// <param name="AccuracyPruned">Accuracy right after pruning, before any fine-tuning.</param>
/// <param name="AccuracyAfter">Accuracy of the returned model (after fine-tuning, when there was any).</param>
public sealed record PruningReport(IReadOnlyList<LayerSparsity> Layers, double? AccuracyBefore, double? AccuracyPruned, double? AccuracyAfter)
{
    /// <summary>The share of all pruned-layer weights that are zero.</summary>
    public double Sparsity => (double)Layers.Sum(l => l.Zeros) / Math.Max(1, Layers.Sum(l => l.Weights));
}

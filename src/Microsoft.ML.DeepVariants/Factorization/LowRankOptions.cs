namespace Microsoft.ML.DeepVariants.Factorization;

/// <summary>
/// Options of <see cref="FactorizationEstimator"/>: which rank each dense and convolution layer of a fitted CNN keeps,
/// by a fixed <see cref="Rank"/> or by the <see cref="EnergyFraction"/> of its singular values, with per-layer
/// overrides in <see cref="LayerRanks"/>; then fine-tuning for <see cref="TrainingOptions.Epochs"/> epochs (1 by default).
/// A layer is factorized only where the pair has fewer parameters than the layer; the others are kept and reported.
/// </summary>
/// <example>
/// <code>
/// var result = mlContext.Transforms.DeepVariants.Factorize(fitted, new LowRankOptions { EnergyFraction = 0.9, Epochs = 2 }).Train(train, test);
/// Console.WriteLine($"{result.Report.ParametersBefore:N0} -> {result.Report.ParametersAfter:N0} parameters");
/// </code>
/// </example>
public sealed class LowRankOptions : TrainingOptions
{
    /// <summary>Creates options that keep 90% of each layer's energy and fine-tune for one epoch at a learning rate of 1e-4.</summary>
    public LowRankOptions()
    {
        Epochs = 1;
        LearningRate = 1e-4f;
    }

    /// <summary>One rank for every layer (capped at the layer's own rank); null to choose ranks by <see cref="EnergyFraction"/>.</summary>
    public int? Rank { get; set; }

    /// <summary>
    /// The share of each layer's squared singular values to keep, in (0, 1]: the rank is the smallest that keeps it.
    /// Used when <see cref="Rank"/> is null. Default 0.9.
    /// </summary>
    public double EnergyFraction { get; set; } = 0.9;

    /// <summary>Ranks by layer name (as in <see cref="LowRankReport.Layers"/>), overriding <see cref="Rank"/> and <see cref="EnergyFraction"/>.</summary>
    public Dictionary<string, int> LayerRanks { get; set; } = [];

    /// <summary>
    /// Only these layers are factorized (by name); null for every dense and convolution layer outside composite blocks.
    /// </summary>
    public IReadOnlyList<string>? Layers { get; set; }

    /// <inheritdoc/>
    protected override int MinimumEpochs => 0;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (Rank is < 1)
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "Rank must be at least 1 (or null, to choose ranks by EnergyFraction).");
        if (!(EnergyFraction > 0 && EnergyFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(EnergyFraction), EnergyFraction, "EnergyFraction must be in (0, 1]: the share of a layer's squared singular values to keep.");
        ArgumentNullException.ThrowIfNull(LayerRanks, nameof(LayerRanks));
        foreach (var (layer, rank) in LayerRanks)
            if (rank < 1)
                throw new ArgumentOutOfRangeException($"{nameof(LayerRanks)}[{layer}]", rank, $"{nameof(LayerRanks)}[{layer}] must be at least 1.");
        if (Layers is { Count: 0 })
            throw new ArgumentException("Layers is empty: name at least one layer, or leave it null to factorize every dense and convolution layer.", nameof(Layers));
    }
}

/// <summary>One layer's factorization.</summary>
/// <param name="Name">The layer's name in the network (for example <c>pooling.fc</c>).</param>
/// <param name="Rows">Outputs of the layer (n).</param>
/// <param name="Columns">Inputs per output (m: a convolution's input channels times its kernel area).</param>
/// <param name="Rank">The rank kept, or null when the layer was kept whole.</param>
/// <param name="EnergyKept">The share of the squared singular values the rank keeps (1 for a layer kept whole).</param>
/// <param name="ParametersBefore">The layer's weights before.</param>
/// <param name="ParametersAfter">Its weights after (the pair's, or the same when kept).</param>
/// <param name="Reason">Why a layer was kept whole; null when it was factorized.</param>
public sealed record LowRankLayer(string Name, long Rows, long Columns, int? Rank, double EnergyKept, long ParametersBefore, long ParametersAfter, string? Reason);

/// <summary>What a factorization did: each layer, the network's parameters, and accuracy before, right after and after fine-tuning.</summary>
public sealed record LowRankReport(IReadOnlyList<LowRankLayer> Layers, long ParametersBefore, long ParametersAfter,
    double? AccuracyBefore, double? AccuracyFactorized, double? AccuracyAfter);

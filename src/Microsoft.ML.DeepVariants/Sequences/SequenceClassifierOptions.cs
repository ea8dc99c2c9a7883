namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Options of <see cref="SequenceClassifierEstimator"/>. The input column holds one series per row, step-major:
/// the <see cref="Channels"/> values of step 1, then those of step 2, and so on. It is either a variable-length
/// float vector, or a fixed-length one in which trailing steps whose values are all NaN are padding.
/// </summary>
/// <example>
/// <code>
/// var options = new SequenceClassifierOptions
/// {
///     Channels = 12, Epochs = 30,
///     Architecture = new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 64, Pooling = SequencePooling.Attention },
/// };
/// </code>
/// </example>
public sealed class SequenceClassifierOptions : TrainingOptions
{
    /// <summary>
    /// The defaults train a recurrent network for at least 300 optimizer steps (<see cref="TrainingOptions.MinimumSteps"/>):
    /// UCR and UEA problems are often tens of series, which 5 epochs of batches of 128 would give 5 steps, too few to learn.
    /// </summary>
    public SequenceClassifierOptions() => MinimumSteps = 300;

    /// <summary>The series column. Default "Series".</summary>
    public string FeatureColumnName { get; set; } = "Series";

    /// <summary>The label column: a key, or any type MapValueToKey accepts (it is converted). Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Values per step (the series' dimensions). Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>
    /// The longest series, in steps, that a model fitted on a variable-length column accepts; 0 takes the longest
    /// training series. (A fixed-length column fixes it already.) Default 0.
    /// </summary>
    public int MaxLength { get; set; }

    /// <summary>
    /// Standardizes each channel with its mean and standard deviation on the training series, inside the model (so
    /// the saved model applies it too). Default true.
    /// </summary>
    public bool NormalizeChannels { get; set; } = true;

    /// <summary>The network: recurrent, temporal convolution or Transformer. Default: one LSTM layer of 64 units, last-state pooling.</summary>
    public SequenceArchitecture Architecture { get; set; } = new();

    /// <summary>Output column of class probabilities. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of the predicted class, a key of the label's type. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>
    /// When set, an output column of one attention weight per input step (zero at padding): a Transformer's last-layer
    /// attention from its pooling token, averaged over heads, or the weights of attention pooling in a recurrent network
    /// (<see cref="SequencePooling.Attention"/>). <see cref="AttentionPlot"/> draws a series with them. Default null.
    /// </summary>
    public string? AttentionColumnName { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(FeatureColumnName), FeatureColumnName), (nameof(LabelColumnName), LabelColumnName));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Channels, nameof(Channels));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxLength, nameof(MaxLength));
        ArgumentNullException.ThrowIfNull(Architecture, nameof(Architecture));
        Architecture.Validate();
        if (AttentionColumnName is not null)
        {
            RequireColumnNames((nameof(AttentionColumnName), AttentionColumnName));
            if (!Architecture.HasAttention)
                throw new ArgumentException($"AttentionColumnName needs attention weights: a {Architecture.Family} network with " +
                    $"{Architecture.EffectivePooling} pooling has none. Use Family = Transformer, or a recurrent network with Pooling = Attention.", nameof(AttentionColumnName));
        }
    }
}

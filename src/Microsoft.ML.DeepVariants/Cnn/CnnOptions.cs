namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// Input, architecture and training settings shared by the CNN classifier and featurizer. The architecture is
/// a separate, serializable <see cref="CnnArchitecture"/>: the knobs a sweeper searches.
/// </summary>
public class CnnOptions : TrainingOptions
{
    /// <summary>
    /// Input column: an ML.NET image (resized to a fixed size) or a float vector of
    /// <see cref="Channels"/> x <see cref="ImageHeight"/> x <see cref="ImageWidth"/> values, channel-major (CHW).
    /// Default "Features".
    /// </summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Label column: a key, or any type MapValueToKey accepts (it is converted). Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Image height in pixels. Required for a vector input; taken from an image column when 0.</summary>
    public int ImageHeight { get; set; }

    /// <summary>Image width in pixels. Required for a vector input; taken from an image column when 0.</summary>
    public int ImageWidth { get; set; }

    /// <summary>Channels: 1 (grayscale) or 3 (RGB). Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>The network: family and knobs. Default: LeNet with 2 blocks from 32 channels.</summary>
    public CnnArchitecture Architecture { get; set; } = new();

    /// <summary>Augmentation of training batches (never at inference); none when null.</summary>
    public CnnAugmentation? Augmentation { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(FeatureColumnName), FeatureColumnName), (nameof(LabelColumnName), LabelColumnName));
        ArgumentOutOfRangeException.ThrowIfNegative(ImageHeight, nameof(ImageHeight));
        ArgumentOutOfRangeException.ThrowIfNegative(ImageWidth, nameof(ImageWidth));
        if (Channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "Channels must be 1 (grayscale) or 3 (RGB).");
        ArgumentNullException.ThrowIfNull(Architecture, nameof(Architecture));
        Architecture.Validate();
        Augmentation?.Validate();
    }
}

/// <summary>Options of <see cref="CnnClassifierEstimator"/>.</summary>
/// <example>
/// <code>
/// var estimator = mlContext.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
/// {
///     ImageHeight = 28, ImageWidth = 28, Epochs = 5,
///     Architecture = new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 3 },
/// });
/// </code>
/// </example>
public sealed class CnnClassifierOptions : CnnOptions
{
    /// <summary>Output column of class probabilities. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of the predicted class, a key of the label's type. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>
    /// When set, the model also outputs a Grad-CAM heatmap (Selvaraju et al. 2017) in this column: height x width
    /// values in [0, 1], row by row, showing which pixels drove the score. <see cref="GradCamHelpers"/> draws them.
    /// </summary>
    public string? GradCamColumnName { get; set; }

    /// <summary>The 0-based class Grad-CAM explains; the predicted class when null.</summary>
    public int? GradCamClass { get; set; }

    /// <summary>
    /// When set, trains on adversarial examples of the network (FGSM or PGD within <see cref="AdversarialTraining.Epsilon"/>)
    /// in place of a share of each batch, so the model resists them; <c>AdversarialEvaluation</c> measures how well.
    /// </summary>
    public AdversarialTraining? Adversarial { get; set; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        Adversarial?.Validate();
    }
}

/// <summary>Options of <see cref="CnnFeaturizerEstimator"/>: the CNN trains as a classifier, then emits its penultimate layer.</summary>
/// <example>
/// <code>
/// var featurizer = mlContext.Transforms.DeepVariants.CnnFeaturizer(new CnnFeaturizerOptions
/// {
///     ImageHeight = 28, ImageWidth = 28, OutputColumnName = "Embedding", Epochs = 2,
/// });
/// </code>
/// </example>
public sealed class CnnFeaturizerOptions : CnnOptions
{
    /// <summary>Output column of the embedding. Default "Embedding".</summary>
    public string OutputColumnName { get; set; } = "Embedding";
}

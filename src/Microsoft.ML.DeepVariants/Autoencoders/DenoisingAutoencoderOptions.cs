namespace Microsoft.ML.DeepVariants.Autoencoders;

/// <summary>The shape of a <see cref="AutoencoderNetwork"/>.</summary>
public enum AutoencoderKind
{
    /// <summary>Fully connected layers, for any fixed-length vector.</summary>
    Dense,
    /// <summary>Strided convolutions and transposed convolutions, for images (declared height, width and channels).</summary>
    Convolutional,
}

/// <summary>
/// Options of <see cref="DenoisingAutoencoderEstimator"/>. Corruption is applied to training batches only;
/// the model never corrupts at inference. With <see cref="CleanColumnName"/> the model learns from your own
/// noisy (<see cref="TrainingOptions"/>' feature column) and clean pairs instead.
/// </summary>
/// <example>
/// <code>
/// var options = new DenoisingAutoencoderOptions
/// {
///     Kind = AutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28,
///     NoiseStandardDeviation = 0.4f, InputMinimum = 0, InputMaximum = 1, Epochs = 5,
/// };
/// </code>
/// </example>
public sealed class DenoisingAutoencoderOptions : TrainingOptions
{
    /// <summary>Input column: a fixed-length float vector (channel-major images for the convolutional kind). Default "Features".</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Optional clean target column of the same shape: train to map the (already noisy) features to it.</summary>
    public string? CleanColumnName { get; set; }

    /// <summary>Dense or convolutional. Default <see cref="AutoencoderKind.Dense"/>.</summary>
    public AutoencoderKind Kind { get; set; } = AutoencoderKind.Dense;

    /// <summary>Image height, for the convolutional kind; it must be divisible by 2^<see cref="Depth"/>.</summary>
    public int ImageHeight { get; set; }

    /// <summary>Image width, for the convolutional kind; it must be divisible by 2^<see cref="Depth"/>.</summary>
    public int ImageWidth { get; set; }

    /// <summary>Image channels, for the convolutional kind. Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>Length of the code (the bottleneck), emitted as the code column, 1 to 65,536. Default 32.</summary>
    public int CodeSize { get; set; } = 32;

    /// <summary>Hidden layers (dense) or stride-2 convolution blocks (convolutional) on each side, 1 to 8. Default 2.</summary>
    public int Depth { get; set; } = 2;

    /// <summary>First hidden layer size (dense; halves per layer) or first block's channels (convolutional; doubles per block). Default: 256 dense, 32 convolutional.</summary>
    public int? Width { get; set; }

    /// <summary>Standard deviation of additive Gaussian noise (0 for none); clipped to the declared input range. Default 0.</summary>
    public float NoiseStandardDeviation { get; set; }

    /// <summary>Probability that a value is replaced by the range's minimum or maximum (salt and pepper); needs a declared range. Default 0.</summary>
    public float SaltAndPepperProbability { get; set; }

    /// <summary>Probability that a value is set to zero (masking noise). Default 0.</summary>
    public float MaskingProbability { get; set; }

    /// <summary>Smallest value the input can take. With <see cref="InputMaximum"/>, noise is clipped to the range and the output is squashed into it.</summary>
    public float? InputMinimum { get; set; }

    /// <summary>Largest value the input can take.</summary>
    public float? InputMaximum { get; set; }

    /// <summary>Output column of the reconstruction, the input's shape. Default "Denoised".</summary>
    public string DenoisedColumnName { get; set; } = "Denoised";

    /// <summary>Output column of the code, a feature vector for downstream trainers. Default "Code".</summary>
    public string CodeColumnName { get; set; } = "Code";

    internal bool HasRange => InputMinimum.HasValue && InputMaximum.HasValue;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(FeatureColumnName), FeatureColumnName));
        if (!Enum.IsDefined(Kind))
            throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown autoencoder kind.");
        if (CodeSize is < 1 or > 65536)
            throw new ArgumentOutOfRangeException(nameof(CodeSize), CodeSize, "CodeSize must be from 1 to 65,536.");
        if (Depth is < 1 or > 8)
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, "Depth must be from 1 to 8.");
        if (Width is < 1 or > 65536)
            throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be null (the kind's default) or from 1 to 65,536.");
        if (Kind == AutoencoderKind.Convolutional && ((long)(Width ?? 32) << (Depth - 1)) > 65536)
            throw new ArgumentOutOfRangeException(nameof(Width), Width,
                $"A convolutional autoencoder of Depth {Depth} and Width {Width ?? 32} has {(long)(Width ?? 32) << (Depth - 1):N0} channels in its last block; at most 65,536 are supported.");
        if (!(NoiseStandardDeviation >= 0) || float.IsInfinity(NoiseStandardDeviation))
            throw new ArgumentOutOfRangeException(nameof(NoiseStandardDeviation), NoiseStandardDeviation, "NoiseStandardDeviation must be a finite number, zero or more.");
        foreach (var (name, p) in new[] { (nameof(SaltAndPepperProbability), SaltAndPepperProbability), (nameof(MaskingProbability), MaskingProbability) })
            if (!(p >= 0) || p >= 1)
                throw new ArgumentOutOfRangeException(name, p, $"{name} must be in [0, 1).");
        if (InputMinimum.HasValue != InputMaximum.HasValue || (HasRange && !(InputMaximum > InputMinimum)))
            throw new ArgumentException("Declare the input range with both InputMinimum and InputMaximum, the minimum below the maximum.", nameof(InputMinimum));
        if (SaltAndPepperProbability > 0 && !HasRange)
            throw new ArgumentException("Salt-and-pepper noise needs the input range: set InputMinimum and InputMaximum.", nameof(SaltAndPepperProbability));
        if (Kind == AutoencoderKind.Convolutional)
        {
            foreach (var (name, value, high) in new[] { (nameof(ImageHeight), ImageHeight, 8192), (nameof(ImageWidth), ImageWidth, 8192), (nameof(Channels), Channels, 1024) })
                if (value < 1 || value > high)
                    throw new ArgumentOutOfRangeException(name, value, $"{name} must be from 1 to {high:N0} for the convolutional kind.");
            int step = 1 << Depth;
            if (ImageHeight % step != 0 || ImageWidth % step != 0)
                throw new ArgumentOutOfRangeException(nameof(Depth),
                    $"A convolutional autoencoder of Depth {Depth} halves the image {Depth} times, so ImageHeight and ImageWidth must be divisible by {step}; they are {ImageHeight} and {ImageWidth}.");
        }
    }
}

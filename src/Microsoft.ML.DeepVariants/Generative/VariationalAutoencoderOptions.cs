namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>The shape of a variational autoencoder's encoder and decoder.</summary>
public enum VariationalAutoencoderKind
{
    /// <summary>Fully connected layers over the flat vector.</summary>
    Dense,
    /// <summary>Strided convolutions down to the latent, transposed convolutions back (images of a side divisible by 2^Depth).</summary>
    Convolutional,
}

/// <summary>How the decoder's output is read as a distribution over the input, which sets the reconstruction term of the loss.</summary>
public enum ReconstructionLikelihood
{
    /// <summary>Each value is the probability of a Bernoulli variable (inputs in [0, 1], such as scaled pixels); the term is the binary cross-entropy.</summary>
    Bernoulli,
    /// <summary>Each value is the mean of a Gaussian of unit variance; the term is half the squared error plus the normalizing constant.</summary>
    Gaussian,
}

/// <summary>
/// Options of the variational autoencoder (Kingma and Welling 2014): the input column, the network, the latent size,
/// the weight β of the KL term (Higgins et al. 2017), the reconstruction likelihood, and the output columns.
/// </summary>
/// <example>
/// <code>
/// var options = new VariationalAutoencoderOptions { Kind = VariationalAutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, LatentSize = 16, Beta = 1 };
/// </code>
/// </example>
public sealed class VariationalAutoencoderOptions : TrainingOptions
{
    /// <summary>Input column: a float vector of known size (for the convolutional kind, <see cref="Channels"/> x <see cref="ImageHeight"/> x <see cref="ImageWidth"/> values, channel-major). Default "Features".</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>Dense or convolutional encoder and decoder. Default Dense.</summary>
    public VariationalAutoencoderKind Kind { get; set; } = VariationalAutoencoderKind.Dense;

    /// <summary>Image height in pixels (convolutional kind).</summary>
    public int ImageHeight { get; set; }

    /// <summary>Image width in pixels (convolutional kind).</summary>
    public int ImageWidth { get; set; }

    /// <summary>Image channels (convolutional kind): 1 to 4. Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>Dimensions of the Gaussian latent, 1 to 4,096. Default 16.</summary>
    public int LatentSize { get; set; } = 16;

    /// <summary>Hidden layers (dense) or strided convolutions (convolutional) on each side, 1 to 6. Default 2.</summary>
    public int Depth { get; set; } = 2;

    /// <summary>Units of the first dense layer, halved at each deeper one (dense; default 256), or channels of the first convolution, doubled at each (convolutional; default 32); 1 to 8,192.</summary>
    public int? Width { get; set; }

    /// <summary>Weight of the KL divergence from the prior N(0, I): 1 is the evidence lower bound, above 1 a β-VAE that trades reconstruction for a smoother latent. 0 or more. Default 1.</summary>
    public float Beta { get; set; } = 1f;

    /// <summary>The reconstruction likelihood. Default Bernoulli, for inputs in [0, 1] (values outside are refused, naming the row).</summary>
    public ReconstructionLikelihood Likelihood { get; set; } = ReconstructionLikelihood.Bernoulli;

    /// <summary>Output column of the latent mean, the row's code. Default "LatentMean".</summary>
    public string LatentMeanColumnName { get; set; } = "LatentMean";

    /// <summary>Output column of the latent log-variance. Default "LatentLogVariance".</summary>
    public string LatentLogVarianceColumnName { get; set; } = "LatentLogVariance";

    /// <summary>Output column of the reconstruction, decoded from the latent mean (the Bernoulli probabilities, or the Gaussian means). Default "Reconstruction".</summary>
    public string ReconstructionColumnName { get; set; } = "Reconstruction";

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(FeatureColumnName), FeatureColumnName), (nameof(LatentMeanColumnName), LatentMeanColumnName),
            (nameof(LatentLogVarianceColumnName), LatentLogVarianceColumnName), (nameof(ReconstructionColumnName), ReconstructionColumnName));
        if (!Enum.IsDefined(Kind))
            throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown variational autoencoder kind.");
        if (!Enum.IsDefined(Likelihood))
            throw new ArgumentOutOfRangeException(nameof(Likelihood), Likelihood, "Unknown reconstruction likelihood.");
        if (LatentSize is < 1 or > 4096)
            throw new ArgumentOutOfRangeException(nameof(LatentSize), LatentSize, "LatentSize must be from 1 to 4,096.");
        if (Depth is < 1 or > 6)
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, "Depth must be from 1 to 6.");
        if (Width is < 1 or > 8192)
            throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be null (the default) or from 1 to 8,192.");
        if (!(Beta >= 0) || float.IsInfinity(Beta))
            throw new ArgumentOutOfRangeException(nameof(Beta), Beta, "Beta must be a finite number, 0 or more.");
        var names = new[] { LatentMeanColumnName, LatentLogVarianceColumnName, ReconstructionColumnName, "Score" };
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length)
            throw new ArgumentException($"The output columns ({string.Join(", ", names)}) must have different names.", nameof(ReconstructionColumnName));
        if (Kind == VariationalAutoencoderKind.Convolutional)
        {
            if (Channels is < 1 or > 4)
                throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "Channels must be from 1 to 4.");
            int step = 1 << Depth;
            if (ImageHeight < step || ImageWidth < step || ImageHeight % step != 0 || ImageWidth % step != 0)
                throw new ArgumentOutOfRangeException(nameof(ImageHeight), $"{ImageHeight} x {ImageWidth}",
                    $"A convolutional variational autoencoder of Depth {Depth} halves the image {Depth} times: ImageHeight and ImageWidth must be positive multiples of {step}.");
        }
    }
}

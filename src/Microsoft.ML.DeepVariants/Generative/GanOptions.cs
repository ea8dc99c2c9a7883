namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>What the discriminator and the generator minimize.</summary>
public enum GanLoss
{
    /// <summary>
    /// Goodfellow et al. 2014's loss with the generator's non-saturating form: the discriminator minimizes the binary
    /// cross-entropy of real (target 1, or 1 - <see cref="GanOptions.LabelSmoothing"/>) against generated (target 0)
    /// images; the generator minimizes <c>-log D(G(z))</c>, which keeps its gradient alive while D wins.
    /// </summary>
    NonSaturating,
    /// <summary>
    /// The hinge loss (Lim and Ye 2017; Miyato et al. 2018): the discriminator minimizes
    /// <c>max(0, 1 - D(x)) + max(0, 1 + D(G(z)))</c>, the generator <c>-D(G(z))</c>. Usually paired with
    /// <see cref="GanOptions.SpectralNormalization"/>.
    /// </summary>
    Hinge,
}

/// <summary>
/// Options of the DCGAN (Radford et al. 2016): the image column and its size, the optional class column that conditions
/// both networks, the latent size, the networks' width and depth, and the stabilisers, each an option: the loss
/// (non-saturating or hinge), two learning rates (TTUR, Heusel et al. 2017), one-sided label smoothing (Salimans et al.
/// 2016), spectral normalisation of the discriminator (Miyato et al. 2018) and an exponential moving average of the
/// generator's weights (Yazıcı et al. 2019). Defaults are the DCGAN paper's: Adam with β₁ = 0.5, learning rate 2e-4,
/// batches of 64. <see cref="TrainingOptions.LearningRate"/> is the generator's learning rate.
/// </summary>
/// <example>
/// <code>
/// var options = new GanOptions { ImageHeight = 28, ImageWidth = 28, ConditionColumnName = "Label", Loss = GanLoss.Hinge, SpectralNormalization = true, Epochs = 20 };
/// </code>
/// </example>
public sealed class GanOptions : TrainingOptions
{
    /// <summary>The DCGAN paper's settings: learning rate 2e-4, batches of 64, 10 epochs.</summary>
    public GanOptions()
    {
        LearningRate = 2e-4f;
        BatchSize = 64;
        Epochs = 10;
    }

    /// <summary>The real images: a Vector&lt;Single, Channels x ImageHeight x ImageWidth&gt;, channel-major, values in [0, 1]. Default "Features".</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>
    /// A key column of classes that conditions both networks (a class embedding added to the generator's latent, and a
    /// projection in the discriminator, Miyato and Koyama 2018); null (the default) trains an unconditional GAN. The
    /// fitted generator reads a column of this name and key type.
    /// </summary>
    public string? ConditionColumnName { get; set; }

    /// <summary>Image height in pixels: a positive multiple of 2^<see cref="Depth"/>.</summary>
    public int ImageHeight { get; set; }

    /// <summary>Image width in pixels: a positive multiple of 2^<see cref="Depth"/>.</summary>
    public int ImageWidth { get; set; }

    /// <summary>Image channels: 1 (gray) to 4. Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>Dimensions of the generator's Gaussian latent, 1 to 4,096. Default 64.</summary>
    public int LatentSize { get; set; } = 64;

    /// <summary>Stride-2 (transposed) convolutions in each network, 1 to 6: the generator doubles its feature maps this many times from ImageHeight / 2^Depth. Default 2.</summary>
    public int Depth { get; set; } = 2;

    /// <summary>Channels next to the image (the discriminator's first convolution, the generator's last hidden one), doubled at each step inward, 1 to 1,024. Default 64.</summary>
    public int Width { get; set; } = 64;

    /// <summary>The loss. Default <see cref="GanLoss.NonSaturating"/>.</summary>
    public GanLoss Loss { get; set; } = GanLoss.NonSaturating;

    /// <summary>The discriminator's learning rate; null (the default) uses <see cref="TrainingOptions.LearningRate"/>. Two different rates are TTUR (Heusel et al. 2017 used 4e-4 against the generator's 1e-4).</summary>
    public float? DiscriminatorLearningRate { get; set; }

    /// <summary>Adam's β₁ for both networks, in [0, 1). Default 0.5 (Radford et al. 2016; 0.9 makes DCGAN training oscillate).</summary>
    public float AdamBeta1 { get; set; } = 0.5f;

    /// <summary>
    /// One-sided label smoothing: the discriminator's target for real images is 1 minus this, in [0, 0.5) (Salimans et
    /// al. 2016 used 0.1); with <see cref="GanLoss.NonSaturating"/> only. Default 0.
    /// </summary>
    public float LabelSmoothing { get; set; }

    /// <summary>Spectral normalisation of every discriminator weight (one power iteration a step, Miyato et al. 2018), in place of its batch normalisation. Default false.</summary>
    public bool SpectralNormalization { get; set; }

    /// <summary>
    /// The decay of an exponential moving average of the generator's weights, in [0, 1): 0 (the default) serves the
    /// trained generator; 0.999 serves the average, which is usually smoother and better (Yazıcı et al. 2019).
    /// </summary>
    public float GeneratorAverageDecay { get; set; }

    /// <summary>Discriminator steps per generator step, 1 to 10. Default 1.</summary>
    public int DiscriminatorSteps { get; set; } = 1;

    /// <summary>The fitted generator's output column: Vector&lt;Single, Channels x ImageHeight x ImageWidth&gt; in [0, 1]. Default "Generated".</summary>
    public string GeneratedColumnName { get; set; } = "Generated";

    /// <summary>The fitted generator's input column: Vector&lt;Single, LatentSize&gt;. Default "Latent".</summary>
    public string LatentColumnName { get; set; } = "Latent";

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(FeatureColumnName), FeatureColumnName), (nameof(GeneratedColumnName), GeneratedColumnName), (nameof(LatentColumnName), LatentColumnName));
        if (ConditionColumnName is not null)
            RequireColumnNames((nameof(ConditionColumnName), ConditionColumnName));
        if (!Enum.IsDefined(Loss))
            throw new ArgumentOutOfRangeException(nameof(Loss), Loss, "Unknown GAN loss.");
        if (LatentSize is < 1 or > 4096)
            throw new ArgumentOutOfRangeException(nameof(LatentSize), LatentSize, "LatentSize must be from 1 to 4,096.");
        if (Depth is < 1 or > 6)
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, "Depth must be from 1 to 6.");
        if (Width is < 1 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be from 1 to 1,024.");
        if (Channels is < 1 or > 4)
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "Channels must be from 1 to 4.");
        int step = 1 << Depth;
        if (ImageHeight < step || ImageWidth < step || ImageHeight % step != 0 || ImageWidth % step != 0)
            throw new ArgumentOutOfRangeException(nameof(ImageHeight), $"{ImageHeight} x {ImageWidth}",
                $"The generator doubles its feature maps {Depth} times (Depth), so it reaches only sides that are multiples of {step}: " +
                $"ImageHeight and ImageWidth must be positive multiples of {step} (a smaller Depth reaches more sizes).");
        if (DiscriminatorLearningRate is { } rate && (!(rate > 0) || float.IsInfinity(rate)))
            throw new ArgumentOutOfRangeException(nameof(DiscriminatorLearningRate), rate, "DiscriminatorLearningRate must be null (LearningRate) or a finite number above zero.");
        if (!(AdamBeta1 >= 0) || AdamBeta1 >= 1)
            throw new ArgumentOutOfRangeException(nameof(AdamBeta1), AdamBeta1, "AdamBeta1 must be in [0, 1).");
        if (!(LabelSmoothing >= 0) || LabelSmoothing >= 0.5f)
            throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), LabelSmoothing, "LabelSmoothing must be in [0, 0.5).");
        if (LabelSmoothing > 0 && Loss == GanLoss.Hinge)
            throw new ArgumentException("LabelSmoothing softens the non-saturating loss's targets; the hinge loss has none. Set it to 0, or Loss to NonSaturating.", nameof(LabelSmoothing));
        if (!(GeneratorAverageDecay >= 0) || GeneratorAverageDecay >= 1)
            throw new ArgumentOutOfRangeException(nameof(GeneratorAverageDecay), GeneratorAverageDecay, "GeneratorAverageDecay must be in [0, 1).");
        if (DiscriminatorSteps is < 1 or > 10)
            throw new ArgumentOutOfRangeException(nameof(DiscriminatorSteps), DiscriminatorSteps, "DiscriminatorSteps must be from 1 to 10.");
        RequireAdversarialLoopSettings("A GAN");
        string?[] names = [LatentColumnName, GeneratedColumnName, ConditionColumnName];
        if (names.Where(n => n is not null).Distinct(StringComparer.Ordinal).Count() != names.Count(n => n is not null))
            throw new ArgumentException($"LatentColumnName, GeneratedColumnName and ConditionColumnName ({string.Join(", ", names)}) must be different columns.", nameof(GeneratedColumnName));
    }
}

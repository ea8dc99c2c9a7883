namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// Options of image-to-image translation (pix2pix, Isola et al. 2017): the paired source and target image columns and
/// their size, the U-Net generator, the PatchGAN discriminator, and the weights of the two losses. With
/// <see cref="AdversarialWeight"/> 0 the same U-Net trains with the L1 loss alone (no discriminator), the baseline
/// pix2pix is measured against. Defaults are the paper's: λ = 100 on L1, Adam with β₁ = 0.5 and learning rate 2e-4.
/// </summary>
/// <example>
/// <code>
/// var options = new ImageToImageOptions { SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28, Epochs = 5 };
/// </code>
/// </example>
public sealed class ImageToImageOptions : TrainingOptions
{
    /// <summary>The paper's settings: learning rate 2e-4, batches of 64 (the paper used 1 to 10), 5 epochs.</summary>
    public ImageToImageOptions()
    {
        LearningRate = 2e-4f;
        BatchSize = 64;
        Epochs = 5;
    }

    /// <summary>The source images: Vector&lt;Single, SourceChannels x ImageHeight x ImageWidth&gt;, channel-major, values in [0, 1]. Default "Source".</summary>
    public string SourceColumnName { get; set; } = "Source";

    /// <summary>The target images, paired row by row with the sources: Vector&lt;Single, TargetChannels x ImageHeight x ImageWidth&gt; in [0, 1]. Default "Target".</summary>
    public string TargetColumnName { get; set; } = "Target";

    /// <summary>The model's output column, the translated image in [0, 1], shaped like the target. Default "Translated".</summary>
    public string OutputColumnName { get; set; } = "Translated";

    /// <summary>Image height in pixels, a positive multiple of 2^<see cref="Depth"/>.</summary>
    public int ImageHeight { get; set; }

    /// <summary>Image width in pixels, a positive multiple of 2^<see cref="Depth"/>.</summary>
    public int ImageWidth { get; set; }

    /// <summary>Channels of the source images, 1 to 4. Default 1.</summary>
    public int SourceChannels { get; set; } = 1;

    /// <summary>Channels of the target images, 1 to 4. Default 1.</summary>
    public int TargetChannels { get; set; } = 1;

    /// <summary>Levels of the U-Net: the image is halved this many times and doubled back, 1 to 8. Default 2.</summary>
    public int Depth { get; set; } = 2;

    /// <summary>Channels of the U-Net's first level (doubled at each, at most 8 x) and of the discriminator's first convolution, 1 to 1,024. Default 64.</summary>
    public int Width { get; set; } = 64;

    /// <summary>Stride-2 convolutions of the PatchGAN discriminator, 1 to <see cref="Depth"/>: each output judges one patch, of about 2^(this + 2) pixels. Default 2.</summary>
    public int DiscriminatorDepth { get; set; } = 2;

    /// <summary>Weight λ of the L1 distance to the target, 0 or more. Default 100.</summary>
    public float L1Weight { get; set; } = 100f;

    /// <summary>Weight of the adversarial (non-saturating) loss, 0 or more; 0 trains the U-Net with L1 alone, without a discriminator. Default 1.</summary>
    public float AdversarialWeight { get; set; } = 1f;

    /// <summary>Adam's β₁ for both networks, in [0, 1). Default 0.5.</summary>
    public float AdamBeta1 { get; set; } = 0.5f;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(SourceColumnName), SourceColumnName), (nameof(TargetColumnName), TargetColumnName), (nameof(OutputColumnName), OutputColumnName));
        if (SourceColumnName == TargetColumnName)
            throw new ArgumentException($"SourceColumnName and TargetColumnName are both '{SourceColumnName}'; the model learns to map one column to another.", nameof(TargetColumnName));
        if (Depth is < 1 or > 8)
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, "Depth must be from 1 to 8.");
        if (Width is < 1 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be from 1 to 1,024.");
        if (SourceChannels is < 1 or > 4)
            throw new ArgumentOutOfRangeException(nameof(SourceChannels), SourceChannels, "SourceChannels must be from 1 to 4.");
        if (TargetChannels is < 1 or > 4)
            throw new ArgumentOutOfRangeException(nameof(TargetChannels), TargetChannels, "TargetChannels must be from 1 to 4.");
        int step = 1 << Depth;
        if (ImageHeight < step || ImageWidth < step || ImageHeight % step != 0 || ImageWidth % step != 0)
            throw new ArgumentOutOfRangeException(nameof(ImageHeight), $"{ImageHeight} x {ImageWidth}",
                $"The U-Net halves the image {Depth} times (Depth) and doubles it back, so it reaches only sides that are multiples of {step}: " +
                $"ImageHeight and ImageWidth must be positive multiples of {step} (a smaller Depth reaches more sizes).");
        if (DiscriminatorDepth < 1 || DiscriminatorDepth > Depth)
            throw new ArgumentOutOfRangeException(nameof(DiscriminatorDepth), DiscriminatorDepth, $"DiscriminatorDepth must be from 1 to Depth ({Depth}).");
        if (!(L1Weight >= 0) || float.IsInfinity(L1Weight))
            throw new ArgumentOutOfRangeException(nameof(L1Weight), L1Weight, "L1Weight must be a finite number, 0 or more.");
        if (!(AdversarialWeight >= 0) || float.IsInfinity(AdversarialWeight))
            throw new ArgumentOutOfRangeException(nameof(AdversarialWeight), AdversarialWeight, "AdversarialWeight must be a finite number, 0 or more.");
        if (L1Weight == 0 && AdversarialWeight == 0)
            throw new ArgumentException("L1Weight and AdversarialWeight are both 0: nothing would train the generator.", nameof(L1Weight));
        if (!(AdamBeta1 >= 0) || AdamBeta1 >= 1)
            throw new ArgumentOutOfRangeException(nameof(AdamBeta1), AdamBeta1, "AdamBeta1 must be in [0, 1).");
        RequireAdversarialLoopSettings("Image-to-image translation");
    }
}

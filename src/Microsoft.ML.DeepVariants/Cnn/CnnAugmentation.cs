using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// Data augmentation of CNN training batches; inference never augments. Each transform has its own probability
/// and acts on the whole batch tensor [N, C, H, W] at once (no per-row loops): random crop after zero padding,
/// horizontal flip, small translations, Gaussian noise, and random erasing (a random rectangle set to zero,
/// Zhong et al. 2020).
/// </summary>
/// <example>
/// <code>
/// var options = new CnnClassifierOptions
/// {
///     ImageHeight = 28, ImageWidth = 28,
///     Augmentation = new CnnAugmentation { CropPadding = 2, HorizontalFlipProbability = 0.5f, ErasingProbability = 0.25f },
/// };
/// </code>
/// </example>
public sealed class CnnAugmentation
{
    /// <summary>Zero padding, in pixels, before a random crop back to the original size (0 for none). Default 0.</summary>
    public int CropPadding { get; set; }

    /// <summary>Probability of the random crop, when <see cref="CropPadding"/> is set. Default 1.</summary>
    public float CropProbability { get; set; } = 1;

    /// <summary>Probability of a horizontal flip. Default 0.</summary>
    public float HorizontalFlipProbability { get; set; }

    /// <summary>Largest shift of a translation, as a fraction of the height and width (0 for none). Default 0.</summary>
    public float TranslationFraction { get; set; }

    /// <summary>Probability of a translation, when <see cref="TranslationFraction"/> is set. Default 0.5.</summary>
    public float TranslationProbability { get; set; } = 0.5f;

    /// <summary>Standard deviation of additive Gaussian noise (0 for none). Default 0.</summary>
    public float NoiseStandardDeviation { get; set; }

    /// <summary>Probability that an image gets noise, when <see cref="NoiseStandardDeviation"/> is set. Default 0.5.</summary>
    public float NoiseProbability { get; set; } = 0.5f;

    /// <summary>Probability of random erasing. Default 0.</summary>
    public float ErasingProbability { get; set; }

    /// <summary>Largest erased area, as a fraction of the image. Default 0.25.</summary>
    public float ErasingMaxArea { get; set; } = 0.25f;

    /// <summary>Throws, naming the setting, when one is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(CropPadding, nameof(CropPadding));
        foreach (var (name, p) in new[]
        {
            (nameof(CropProbability), CropProbability), (nameof(HorizontalFlipProbability), HorizontalFlipProbability),
            (nameof(TranslationProbability), TranslationProbability), (nameof(NoiseProbability), NoiseProbability),
            (nameof(ErasingProbability), ErasingProbability),
        })
        {
            if (!(p >= 0) || p > 1)
                throw new ArgumentOutOfRangeException(name, p, $"{name} must be in [0, 1].");
        }
        if (!(TranslationFraction >= 0) || TranslationFraction >= 0.5f)
            throw new ArgumentOutOfRangeException(nameof(TranslationFraction), TranslationFraction, "TranslationFraction must be in [0, 0.5).");
        if (!(NoiseStandardDeviation >= 0) || float.IsInfinity(NoiseStandardDeviation))
            throw new ArgumentOutOfRangeException(nameof(NoiseStandardDeviation), NoiseStandardDeviation, "NoiseStandardDeviation must be finite, zero or more.");
        if (!(ErasingMaxArea > 0) || ErasingMaxArea > 1)
            throw new ArgumentOutOfRangeException(nameof(ErasingMaxArea), ErasingMaxArea, "ErasingMaxArea must be in (0, 1].");
    }

    /// <summary>
    /// Augments a batch [N, C, H, W] with TorchSharp's current generator. New tensors belong to the current dispose
    /// scope; when no transform is enabled, the input itself is returned.
    /// </summary>
    public Tensor Apply(Tensor x)
    {
        long n = x.shape[0], height = x.shape[2], width = x.shape[3];
        if (CropPadding > 0)
            x = Shift(x, CropPadding, CropPadding, CropProbability);
        if (TranslationFraction > 0)
            x = Shift(x, (int)(TranslationFraction * height), (int)(TranslationFraction * width), TranslationProbability);
        if (HorizontalFlipProbability > 0)
            x = where(Chosen(n, HorizontalFlipProbability, x.device).view(n, 1, 1, 1), x.flip(3), x);
        if (NoiseStandardDeviation > 0)
            x = x.Plus(randn_like(x) * Chosen(n, NoiseProbability, x.device).to_type(x.dtype).Times(NoiseStandardDeviation).view(n, 1, 1, 1));
        if (ErasingProbability > 0)
            x = Erase(x);
        return x;
    }

    // Every number below goes through Scalars (never a temporary Scalar): this runs on every training batch.
    private static Tensor Chosen(long n, float probability, Device device) => rand(n, device: device).lt(Scalars.Of(probability));

    // Shifts each image by its own (dy, dx) in [-maxY, maxY] x [-maxX, maxX], filling with zeros: pad, then gather.
    private static Tensor Shift(Tensor x, int maxY, int maxX, float probability)
    {
        if (maxY == 0 && maxX == 0)
            return x;
        long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var device = x.device;
        var apply = Chosen(n, probability, device).to_type(ScalarType.Int64);
        var dy = randint(-maxY, maxY + 1, [n], device: device) * apply;
        var dx = randint(-maxX, maxX + 1, [n], device: device) * apply;
        long paddedWidth = w + 2 * maxX;
        var padded = nn.functional.pad(x, [maxX, maxX, maxY, maxY]).reshape(n, c, -1);
        var rows = Scalars.Range(0, h, ScalarType.Int64, device).view(1, h, 1).Plus(maxY).Plus(dy.view(n, 1, 1));
        var cols = Scalars.Range(0, w, ScalarType.Int64, device).view(1, 1, w).Plus(maxX).Plus(dx.view(n, 1, 1));
        var index = rows.Times(paddedWidth).Plus(cols).reshape(n, 1, h * w).expand(n, c, h * w);
        return padded.gather(2, index).reshape(n, c, h, w);
    }

    // Zeroes one random rectangle per chosen image: area up to ErasingMaxArea, aspect ratio between 0.3 and 3.3.
    private Tensor Erase(Tensor x)
    {
        long n = x.shape[0], h = x.shape[2], w = x.shape[3];
        var device = x.device;
        var area = rand(n, device: device).Times(ErasingMaxArea - 0.02).Plus(0.02).Times(h * w);
        var aspect = rand(n, device: device).Times(Math.Log(3.3) - Math.Log(0.3)).Plus(Math.Log(0.3)).exp();
        var eh = (area * aspect).sqrt().clamp(Scalars.One, Scalars.Of(h)).floor();
        var ew = (area / aspect).sqrt().clamp(Scalars.One, Scalars.Of(w)).floor();
        var top = (rand(n, device: device) * eh.neg().Plus(h + 1)).floor();
        var left = (rand(n, device: device) * ew.neg().Plus(w + 1)).floor();
        var rows = Scalars.Range(0, h, ScalarType.Float32, device).view(1, 1, h, 1);
        var cols = Scalars.Range(0, w, ScalarType.Float32, device).view(1, 1, 1, w);
        var inside = (rows >= top.view(n, 1, 1, 1)) & (rows < top.Plus(eh).view(n, 1, 1, 1))
            & (cols >= left.view(n, 1, 1, 1)) & (cols < left.Plus(ew).view(n, 1, 1, 1))
            & Chosen(n, ErasingProbability, device).view(n, 1, 1, 1);
        return x.masked_fill(inside, Scalars.Zero);
    }
}

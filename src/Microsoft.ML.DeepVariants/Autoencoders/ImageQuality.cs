using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Autoencoders;

/// <summary>
/// Image-quality metrics between a column and a reference column of an IDataView, averaged over rows: PSNR
/// (peak signal-to-noise ratio, in dB) and SSIM (structural similarity, Wang et al. 2004: an 11x11 Gaussian
/// window of sigma 1.5, K1 = 0.01, K2 = 0.03, the window truncated and renormalised at the borders).
/// </summary>
/// <example>
/// <code>
/// double noisy = ImageQuality.Psnr(data, "Noisy", "Clean");
/// double denoised = ImageQuality.Psnr(model.Transform(data), "Denoised", "Clean");
/// double ssim = ImageQuality.Ssim(model.Transform(data), "Denoised", "Clean", height: 28, width: 28);
/// </code>
/// </example>
public static class ImageQuality
{
    /// <summary>Mean PSNR over rows, in dB; <paramref name="dataRange"/> is the largest minus the smallest possible value.</summary>
    public static double Psnr(IDataView data, string column, string referenceColumn, float dataRange = 1f) =>
        Pairs(data, column, referenceColumn).Average(p => Psnr(p.Image, p.Reference, dataRange));

    /// <summary>Mean SSIM over rows of images stored channel-major (C x H x W).</summary>
    public static double Ssim(IDataView data, string column, string referenceColumn, int height, int width, int channels = 1, float dataRange = 1f) =>
        Pairs(data, column, referenceColumn).Average(p => Ssim(p.Image, p.Reference, height, width, channels, dataRange));

    /// <summary>PSNR of one image against its reference, in dB (capped at 100 dB for identical images).</summary>
    public static double Psnr(ReadOnlySpan<float> image, ReadOnlySpan<float> reference, float dataRange = 1f)
    {
        CheckLengths(image.Length, reference.Length);
        double sum = 0;
        for (int i = 0; i < image.Length; i++)
        {
            double d = image[i] - reference[i];
            sum += d * d;
        }
        double mse = Math.Max(sum / image.Length, 1e-10 * dataRange * dataRange);
        return 10 * Math.Log10(dataRange * (double)dataRange / mse);
    }

    /// <summary>SSIM of one channel-major image against its reference, averaged over pixels and channels.</summary>
    public static double Ssim(ReadOnlySpan<float> image, ReadOnlySpan<float> reference, int height, int width, int channels = 1, float dataRange = 1f)
    {
        CheckLengths(image.Length, reference.Length);
        if (image.Length != height * width * channels)
            throw new ArgumentException($"An image of {channels}x{height}x{width} has {height * width * channels} values, not {image.Length}.");
        double c1 = Math.Pow(0.01 * dataRange, 2), c2 = Math.Pow(0.03 * dataRange, 2);
        int plane = height * width;
        double total = 0;
        var x = new double[plane];
        var y = new double[plane];
        for (int c = 0; c < channels; c++)
        {
            for (int i = 0; i < plane; i++)
            {
                x[i] = image[c * plane + i];
                y[i] = reference[c * plane + i];
            }
            var mx = Blur(x, height, width);
            var my = Blur(y, height, width);
            var xx = Blur(x.Select(v => v * v).ToArray(), height, width);
            var yy = Blur(y.Select(v => v * v).ToArray(), height, width);
            var xy = Blur(x.Zip(y, (a, b) => a * b).ToArray(), height, width);
            for (int i = 0; i < plane; i++)
            {
                double vx = xx[i] - mx[i] * mx[i], vy = yy[i] - my[i] * my[i], cov = xy[i] - mx[i] * my[i];
                total += (2 * mx[i] * my[i] + c1) * (2 * cov + c2) / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
            }
        }
        return total / (plane * channels);
    }

    private static readonly double[] Window = Enumerable.Range(-5, 11).Select(i => Math.Exp(-i * i / (2 * 1.5 * 1.5))).ToArray();

    // Separable Gaussian filter; at the borders the window is cut and renormalised.
    private static double[] Blur(double[] plane, int height, int width)
    {
        var rows = new double[plane.Length];
        var result = new double[plane.Length];
        for (int r = 0; r < height; r++)
            for (int c = 0; c < width; c++)
            {
                double sum = 0, weight = 0;
                for (int k = -5; k <= 5; k++)
                    if (c + k >= 0 && c + k < width)
                    {
                        sum += Window[k + 5] * plane[r * width + c + k];
                        weight += Window[k + 5];
                    }
                rows[r * width + c] = sum / weight;
            }
        for (int r = 0; r < height; r++)
            for (int c = 0; c < width; c++)
            {
                double sum = 0, weight = 0;
                for (int k = -5; k <= 5; k++)
                    if (r + k >= 0 && r + k < height)
                    {
                        sum += Window[k + 5] * rows[(r + k) * width + c];
                        weight += Window[k + 5];
                    }
                result[r * width + c] = sum / weight;
            }
        return result;
    }

    private static IEnumerable<(float[] Image, float[] Reference)> Pairs(IDataView data, string column, string referenceColumn)
    {
        ArgumentNullException.ThrowIfNull(data);
        var a = data.Schema.GetColumnOrNull(column) ?? throw SchemaView.MissingColumn(column);
        var b = data.Schema.GetColumnOrNull(referenceColumn) ?? throw SchemaView.MissingColumn(referenceColumn);
        foreach (var col in new[] { a, b })
            if (col.Type is not VectorDataViewType { ItemType: var item } || item != NumberDataViewType.Single)
                throw SchemaView.SchemaMismatch(col.Name, "Vector<Single>", col.Type);
        using var cursor = data.GetRowCursor([a, b]);
        var getA = cursor.GetGetter<VBuffer<float>>(a);
        var getB = cursor.GetGetter<VBuffer<float>>(b);
        VBuffer<float> va = default, vb = default;
        bool any = false;
        while (cursor.MoveNext())
        {
            getA(ref va);
            getB(ref vb);
            any = true;
            yield return (va.DenseValues().ToArray(), vb.DenseValues().ToArray());
        }
        if (!any)
            throw new ArgumentException("The data has no rows to measure.", nameof(data));
    }

    private static void CheckLengths(int a, int b)
    {
        if (a != b)
            throw new ArgumentException($"The image has {a} values but its reference has {b}.");
    }
}

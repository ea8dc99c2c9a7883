namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>Edge maps of images, the sources of the edges-to-images translation example.</summary>
/// <example>
/// <code>
/// float[] edges = EdgeMaps.Sobel(image.Features, height: 28, width: 28);
/// </code>
/// </example>
public static class EdgeMaps
{
    // The largest gradient magnitude a 3 x 3 Sobel pair gives on values in [0, 1]: |(4, 4)|.
    private static readonly float MaximumMagnitude = 4 * MathF.Sqrt(2);

    /// <summary>
    /// The Sobel gradient magnitude <c>√(Gx² + Gy²)</c> of a gray image (row by row, values in [0, 1]), with the border
    /// pixels repeated outward, divided by its largest possible value so that the map is in [0, 1].
    /// </summary>
    public static float[] Sobel(ReadOnlySpan<float> image, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        if (image.Length != height * width)
            throw new ArgumentException($"The image has {image.Length} values; expected height x width = {height * width} (one gray channel).", nameof(image));
        var edges = new float[image.Length];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                float At(ReadOnlySpan<float> i, int dy, int dx) => i[Math.Clamp(y + dy, 0, height - 1) * width + Math.Clamp(x + dx, 0, width - 1)];
                float gx = At(image, -1, 1) + 2 * At(image, 0, 1) + At(image, 1, 1) - At(image, -1, -1) - 2 * At(image, 0, -1) - At(image, 1, -1);
                float gy = At(image, 1, -1) + 2 * At(image, 1, 0) + At(image, 1, 1) - At(image, -1, -1) - 2 * At(image, -1, 0) - At(image, -1, 1);
                edges[y * width + x] = Math.Min(1f, MathF.Sqrt(gx * gx + gy * gy) / MaximumMagnitude);
            }
        return edges;
    }
}

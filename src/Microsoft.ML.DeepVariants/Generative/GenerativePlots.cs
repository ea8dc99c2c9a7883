namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>Pictures of generated images: a grid of samples, or the steps of a latent interpolation in a row.</summary>
/// <example>
/// <code>
/// var samples = fit.Generate(mlContext, count: 32, seed: 1).GetColumn&lt;float[]&gt;("Generated").ToArray();
/// GenerativePlots.WriteGrid("samples.png", samples, height: 28, width: 28);
/// </code>
/// </example>
public static class GenerativePlots
{
    /// <summary>
    /// Writes <paramref name="images"/> (channel-major, values in [0, 1]; 1 channel is gray, 3 are RGB) as a PNG grid of
    /// <paramref name="columns"/> to a row, each pixel a <paramref name="scale"/> x <paramref name="scale"/> block.
    /// </summary>
    public static void WriteGrid(string path, IReadOnlyList<float[]> images, int height, int width, int channels = 1, int columns = 8, int scale = 3)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
            throw new ArgumentException("There are no images to draw.", nameof(images));
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "Channels must be 1 (gray) or 3 (RGB).");
        int plane = height * width;
        for (int i = 0; i < images.Count; i++)
            if (images[i].Length != channels * plane)
                throw new ArgumentException($"Image {i} has {images[i].Length} values; expected {channels}x{height}x{width} = {channels * plane}.", nameof(images));
        ImageGrid.Write(path, images.Count, height, width, columns, scale, (i, p) => channels == 1
            ? (images[i][p], images[i][p], images[i][p])
            : (images[i][p], images[i][plane + p], images[i][2 * plane + p]));
    }
}

using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>Draws Grad-CAM heatmaps over their images and writes them as PNG files.</summary>
/// <example>
/// <code>
/// var images = scored.GetColumn&lt;float[]&gt;("Features").Take(16).ToArray();
/// var heatmaps = scored.GetColumn&lt;float[]&gt;("GradCam").Take(16).ToArray();
/// GradCamHelpers.WriteOverlayGrid("gradcam.png", images, heatmaps, height: 28, width: 28);
/// </code>
/// </example>
public static class GradCamHelpers
{
    /// <summary>
    /// Writes a grid of overlays (each image in gray, the heatmap blended on top from blue to red), each pixel drawn
    /// as a <paramref name="scale"/> x <paramref name="scale"/> block. Images are channel-major with values in [0, 1];
    /// heatmaps are height x width values in [0, 1]. The file is written through a temporary name.
    /// </summary>
    public static void WriteOverlayGrid(string path, IReadOnlyList<float[]> images, IReadOnlyList<float[]> heatmaps,
        int height, int width, int channels = 1, int columns = 4, int scale = 4, float opacity = 0.5f)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (images.Count == 0 || images.Count != heatmaps.Count)
            throw new ArgumentException($"Pass as many heatmaps as images (got {images.Count} images and {heatmaps.Count} heatmaps), at least one.");
        for (int i = 0; i < images.Count; i++)
        {
            if (images[i].Length != channels * height * width)
                throw new ArgumentException($"Image {i} has {images[i].Length} values; expected {channels}x{height}x{width} = {channels * height * width}.");
            if (heatmaps[i].Length != height * width)
                throw new ArgumentException($"Heatmap {i} has {heatmaps[i].Length} values; expected {height}x{width} = {height * width}.");
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns, nameof(columns));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scale, nameof(scale));

        int plane = height * width;
        ImageGrid.Write(path, images.Count, height, width, columns, scale, (i, p) =>
        {
            float gray = 0;
            for (int c = 0; c < channels; c++)
                gray += images[i][c * plane + p];
            gray = Math.Clamp(gray / channels, 0f, 1f);
            var (r, g, b) = Jet(Math.Clamp(heatmaps[i][p], 0f, 1f));
            return ((1 - opacity) * gray + opacity * r, (1 - opacity) * gray + opacity * g, (1 - opacity) * gray + opacity * b);
        });
    }

    /// <summary>The fraction of a heatmap's mass inside a rectangle of its grid (rows top..top+height-1, columns left..left+width-1).</summary>
    public static double MassInside(float[] heatmap, int mapWidth, int top, int left, int height, int width)
    {
        double inside = 0, total = 0;
        for (int i = 0; i < heatmap.Length; i++)
        {
            int r = i / mapWidth, c = i % mapWidth;
            total += heatmap[i];
            if (r >= top && r < top + height && c >= left && c < left + width)
                inside += heatmap[i];
        }
        return total > 0 ? inside / total : 0;
    }

    // The classic "jet" colour map: blue (0) through cyan, yellow, to red (1).
    private static (float R, float G, float B) Jet(float v) =>
        (Math.Clamp(1.5f - Math.Abs(4 * v - 3), 0, 1), Math.Clamp(1.5f - Math.Abs(4 * v - 2), 0, 1), Math.Clamp(1.5f - Math.Abs(4 * v - 1), 0, 1));
}

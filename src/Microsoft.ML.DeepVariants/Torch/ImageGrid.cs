using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Writes images side by side in a grid as a PNG (through a temporary name): <c>columns</c> to a row, each pixel a
/// <c>scale</c> x <c>scale</c> block, 4-pixel white gutters. The caller says what colour each pixel of each image is.
/// </summary>
internal static class ImageGrid
{
    /// <summary>Writes <paramref name="count"/> images of <paramref name="height"/> x <paramref name="width"/>; <paramref name="color"/> gives (image, pixel index) its RGB in [0, 1].</summary>
    public static void Write(string path, int count, int height, int width, int columns, int scale, Func<int, int, (float R, float G, float B)> color)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scale);
        const int gutter = 4;
        columns = Math.Min(columns, count);
        int rows = (count + columns - 1) / columns;
        int cellW = width * scale, cellH = height * scale;
        int totalW = columns * (cellW + gutter) + gutter, totalH = rows * (cellH + gutter) + gutter;
        var pixels = new byte[totalW * totalH * 4];
        Array.Fill(pixels, (byte)255);
        for (int i = 0; i < count; i++)
        {
            int left = gutter + (i % columns) * (cellW + gutter), top = gutter + (i / columns) * (cellH + gutter);
            for (int y = 0; y < cellH; y++)
                for (int x = 0; x < cellW; x++)
                {
                    var (r, g, b) = color(i, (y / scale) * width + x / scale);
                    int at = ((top + y) * totalW + left + x) * 4;
                    (pixels[at], pixels[at + 1], pixels[at + 2]) = (ToByte(r), ToByte(g), ToByte(b));
                }
        }
        using var image = MLImage.CreateFromPixels(totalW, totalH, MLPixelFormat.Rgba32, pixels);
        PngFile.Write(path, temporary => image.Save(temporary));
    }

    private static byte ToByte(float value) => (byte)Math.Round(Math.Clamp(value, 0f, 1f) * 255);
}

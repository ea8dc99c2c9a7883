namespace Microsoft.ML.DeepVariants;

/// <summary>Writes a picture through a temporary name in the target folder, then moves it, so a failure never leaves half a PNG.</summary>
internal static class PngFile
{
    /// <summary>Calls <paramref name="write"/> with a temporary path beside <paramref name="path"/>, then moves the file there.</summary>
    public static void Write(string path, Action<string> write)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        string temporary = Path.Combine(folder, $".{Path.GetFileNameWithoutExtension(full)}.{Guid.NewGuid():N}.png");
        try
        {
            write(temporary);
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Encodes a SkiaSharp image as PNG at <paramref name="path"/>, through a temporary name.</summary>
    public static void Write(string path, SkiaSharp.SKImage image) => Write(path, temporary =>
    {
        using var png = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        using var file = File.Create(temporary);
        png.SaveTo(file);
    });
}

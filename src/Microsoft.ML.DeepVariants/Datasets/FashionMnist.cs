using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Datasets;

/// <summary>One Fashion-MNIST image: 784 pixels scaled to [0, 1] (row-major 28x28) and its class.</summary>
public sealed class FashionMnistImage
{
    /// <summary>Pixels scaled to [0, 1], row by row.</summary>
    [VectorType(FashionMnist.Height * FashionMnist.Width)]
    public float[] Features { get; set; } = [];

    /// <summary>The class name, such as "Ankle boot".</summary>
    public string Label { get; set; } = "";
}

/// <summary>
/// Reads Fashion-MNIST (Xiao, Rasul and Vollgraf 2017; MIT licence) from the standard IDX files, gzipped or not.
/// Debian's package <c>dataset-fashion-mnist</c> installs them in <see cref="DefaultDirectory"/>.
/// </summary>
/// <example>
/// <code>
/// var train = FashionMnist.Load(mlContext, FashionMnistSplit.Train, maxRows: 5000);
/// var test = FashionMnist.Load(mlContext, FashionMnistSplit.Test);
/// </code>
/// </example>
public static class FashionMnist
{
    /// <summary>Image height.</summary>
    public const int Height = 28;
    /// <summary>Image width.</summary>
    public const int Width = 28;

    /// <summary>Where Debian's <c>dataset-fashion-mnist</c> puts the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The ten class names, in label order.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Loads a split as an IDataView with <c>Features</c> (Vector&lt;Single, 784&gt;) and <c>Label</c> (text).</summary>
    /// <param name="mlContext">The context that owns the data view.</param>
    /// <param name="split">Training (60,000 images) or test (10,000 images).</param>
    /// <param name="maxRows">Read only the first rows (null for all).</param>
    /// <param name="directory">Folder with the IDX files; <see cref="DefaultDirectory"/> when null.</param>
    public static IDataView Load(MLContext mlContext, FashionMnistSplit split, int? maxRows = null, string? directory = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return mlContext.Data.LoadFromEnumerable(Read(split, maxRows, directory));
    }

    /// <summary>
    /// Writes <paramref name="image"/> as a grayscale PNG file (for trying image pipelines that read files from disk),
    /// to a temporary name first, then moved; an existing file is kept.
    /// </summary>
    public static void SavePng(FashionMnistImage image, string path)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (File.Exists(path))
            return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var rgba = new byte[Height * Width * 4];
        for (int i = 0; i < Height * Width; i++)
        {
            byte gray = (byte)Math.Round(Math.Clamp(image.Features[i], 0, 1) * 255);
            (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]) = (gray, gray, gray, 255);
        }
        using var png = MLImage.CreateFromPixels(Width, Height, MLPixelFormat.Rgba32, rgba);
        string temporary = path + ".tmp.png";
        png.Save(temporary);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Reads a split as objects.</summary>
    public static IReadOnlyList<FashionMnistImage> Read(FashionMnistSplit split, int? maxRows = null, string? directory = null)
    {
        if (maxRows is <= 0)
            throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "maxRows must be positive.");
        directory ??= DefaultDirectory;
        string prefix = split == FashionMnistSplit.Train ? "train" : "t10k";
        string imagesPath = Find(directory, $"{prefix}-images-idx3-ubyte");
        string labelsPath = Find(directory, $"{prefix}-labels-idx1-ubyte");

        byte[] images = ReadIdx(imagesPath, expectedMagic: 0x803, out int[] imageDims);
        byte[] labels = ReadIdx(labelsPath, expectedMagic: 0x801, out int[] labelDims);
        if (imageDims.Length != 3 || imageDims[1] != Height || imageDims[2] != Width)
            throw new InvalidDataException($"'{imagesPath}' holds images of shape [{string.Join(", ", imageDims)}]; expected [N, {Height}, {Width}].");
        if (labelDims[0] != imageDims[0])
            throw new InvalidDataException($"'{labelsPath}' has {labelDims[0]} labels but '{imagesPath}' has {imageDims[0]} images.");

        int count = Math.Min(imageDims[0], maxRows ?? int.MaxValue);
        var rows = new FashionMnistImage[count];
        const int pixels = Height * Width;
        for (int i = 0; i < count; i++)
        {
            if (labels[i] >= ClassNames.Count)
                throw new InvalidDataException($"'{labelsPath}' has label {labels[i]} at item {i}; expected 0 to {ClassNames.Count - 1}.");
            var features = new float[pixels];
            for (int p = 0; p < pixels; p++)
                features[p] = images[i * pixels + p] / 255f;
            rows[i] = new FashionMnistImage { Features = features, Label = ClassNames[labels[i]] };
        }
        return rows;
    }

    private static string Find(string directory, string name)
    {
        foreach (string candidate in new[] { Path.Combine(directory, name + ".gz"), Path.Combine(directory, name) })
            if (File.Exists(candidate))
                return candidate;
        throw new FileNotFoundException(
            $"Fashion-MNIST file '{name}(.gz)' was not found in '{directory}'. On Debian or Ubuntu run " +
            "'sudo apt-get install dataset-fashion-mnist', or pass the folder that holds the IDX files.", Path.Combine(directory, name + ".gz"));
    }

    private static byte[] ReadIdx(string path, int expectedMagic, out int[] dims)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        Span<byte> header = stackalloc byte[4];
        stream.ReadExactly(header);
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != expectedMagic)
            throw new InvalidDataException($"'{path}' starts with 0x{magic:X8}; expected the IDX magic number 0x{expectedMagic:X8}.");
        dims = new int[magic & 0xFF];
        for (int d = 0; d < dims.Length; d++)
        {
            stream.ReadExactly(header);
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(header);
        }
        long size = dims.Aggregate(1L, (a, b) => a * b);
        var data = new byte[size];
        try
        {
            stream.ReadExactly(data);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"'{path}' ends before the {size} bytes its header declares.");
        }
        return data;
    }
}

/// <summary>Which Fashion-MNIST split to read.</summary>
public enum FashionMnistSplit
{
    /// <summary>The 60,000 training images.</summary>
    Train,
    /// <summary>The 10,000 test images.</summary>
    Test,
}

using System.IO.Compression;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DeepVariants.Backbones;

/// <summary>
/// A pretrained ONNX backbone and how to feed it: the file, the value to cut at, and the per-channel preprocessing
/// between ML.NET's pixels (a float vector, channel-major, as <c>ExtractPixels</c> writes it with
/// <c>interleavePixelColors: false</c>) and the network's input.
/// </summary>
/// <example>
/// <code>
/// var backbone = PretrainedBackboneOptions.ResNet18();   // from Microsoft.ML.DnnImageFeaturizer.ResNet18's files
/// backbone.ImageHeight = backbone.ImageWidth = 112;       // ResNet18 pools globally, so smaller images work too
/// </code>
/// </example>
public class PretrainedBackboneOptions
{
    /// <summary>The ONNX file.</summary>
    public string ModelPath { get; set; } = "";

    /// <summary>The ONNX graph itself, instead of <see cref="ModelPath"/> (what <see cref="FromClassifier"/> reads out of a saved model).</summary>
    public byte[]? Model { get; set; }

    /// <summary>The value to cut the graph at (its output is flattened into the embedding). The graph's first output when null.</summary>
    public string? OutputNodeName { get; set; }

    /// <summary>The pixel column: Channels x ImageHeight x ImageWidth floats, channel-major. Default "Pixels".</summary>
    public string InputColumnName { get; set; } = "Pixels";

    /// <summary>Image height fed to the network.</summary>
    public int ImageHeight { get; set; } = 224;

    /// <summary>Image width fed to the network.</summary>
    public int ImageWidth { get; set; } = 224;

    /// <summary>Channels of the input column. Default 3.</summary>
    public int Channels { get; set; } = 3;

    /// <summary>For each network channel, the input channel it takes (for example 2, 1, 0 turns RGB into BGR). Identity when null.</summary>
    public int[]? ChannelOrder { get; set; }

    /// <summary>Per network channel, the mean subtracted. Zeros when null.</summary>
    public float[]? ChannelMeans { get; set; }

    /// <summary>Multiplies the centred values (for example 1/255, or 1 for networks trained on 0-255 pixels). Default 1.</summary>
    public float Scale { get; set; } = 1;

    /// <summary>
    /// The ImageNet-pretrained ResNet18 that the NuGet package <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> 0.23.1 copies
    /// to <c>DnnImageModels/</c> next to the application: cut at its 512-value pooling output, fed 0-255 RGB pixels, which
    /// it takes as BGR less the per-channel means of the package's 224x224 mean image (so other sizes work too).
    /// </summary>
    public static PretrainedBackboneOptions ResNet18(string? modelDirectory = null)
    {
        string directory = modelDirectory ?? Path.Combine(AppContext.BaseDirectory, "DnnImageModels");
        string model = Path.Combine(directory, "ResNet18Onnx", "ResNet18.onnx");
        string preprocess = Path.Combine(directory, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        foreach (string file in new[] { model, preprocess })
            if (!File.Exists(file))
                throw new FileNotFoundException(
                    $"ResNet18 file '{file}' does not exist; reference the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 (it copies DnnImageModels/ next to the application) or pass its folder.", file);
        var mean = ModelProto.Parser.ParseFrom(File.ReadAllBytes(preprocess)).Graph.Initializer.First(t => t.Name == "MeanImage");
        float[] values = mean.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(mean.RawData.Span).ToArray() : mean.FloatData.ToArray();
        int plane = values.Length / 3;
        return new PretrainedBackboneOptions
        {
            ModelPath = model,
            OutputNodeName = "Pooling395_Output_0",
            ChannelOrder = [2, 1, 0],
            ChannelMeans = Enumerable.Range(0, 3).Select(c => values.AsSpan(c * plane, plane).ToArray().Average()).ToArray(),
            Scale = 1,
        };
    }

    /// <summary>
    /// A classifier as the starting point of fine-tuning (continued training, or new classes): a model this package saved
    /// (an ML.NET <c>.zip</c> holding a DeepVariants CNN, fitted on a float vector column) or any ONNX image classifier
    /// (<c>.onnx</c>, input [N, C, H, W], for example one PyTorch exported). The graph's input size and preprocessing come
    /// from the model: a DeepVariants CNN reads the same column it was fitted on; an ONNX graph's input takes the pixel
    /// column as it is (set <see cref="ChannelOrder"/>, <see cref="ChannelMeans"/> and <see cref="Scale"/> if it expects
    /// another normalisation). <see cref="PretrainedClassifierOptions.Head"/> says whether its last linear layer is kept.
    /// </summary>
    /// <example>
    /// <code>
    /// var options = new PretrainedClassifierOptions { Backbone = PretrainedBackboneOptions.FromClassifier("fashion-cnn.zip"), Epochs = 3 };
    /// </code>
    /// </example>
    public static PretrainedBackboneOptions FromClassifier(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        byte[] bytes = Path.GetExtension(path).Equals(".zip", StringComparison.OrdinalIgnoreCase) ? SavedGraph(path) : File.ReadAllBytes(path);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable ONNX model ({e.Message}).", e);
        }
        var graph = model.Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet();
        var input = graph.Input.First(i => !initializers.Contains(i.Name));
        var options = new PretrainedBackboneOptions { Model = bytes, ModelPath = path };
        string? image = model.MetadataProps.FirstOrDefault(m => m.Key == "deepvariants.image")?.Value;
        if (image is not null)
        {
            options.InputColumnName = input.Name;   // a DeepVariants CNN reads the column it was fitted on
            int[] chw = image.Split(',').Select(v => int.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            (options.Channels, options.ImageHeight, options.ImageWidth) = (chw[0], chw[1], chw[2]);
        }
        else
        {
            var dims = input.Type.TensorType.Shape.Dim;
            if (dims.Count != 4 || dims[1].DimValue <= 0)
                throw new ArgumentException($"ONNX file '{path}' has an input of rank {dims.Count}; an image classifier's input is [N, C, H, W].", nameof(path));
            options.Channels = (int)dims[1].DimValue;
            if (dims[2].DimValue > 0 && dims[3].DimValue > 0)
                (options.ImageHeight, options.ImageWidth) = ((int)dims[2].DimValue, (int)dims[3].DimValue);
        }
        return options;
    }

    // The ONNX graph of a DeepVariants classifier inside an ML.NET model zip: ML.NET's ONNX transformer keeps it as a
    // length-prefixed entry ".../OnnxModel"; the classifier's graph is the one with DeepVariants' metadata.
    private static byte[] SavedGraph(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            foreach (var entry in zip.Entries.Where(e => e.FullName.EndsWith("/OnnxModel", StringComparison.Ordinal)))
            {
                using var reader = new BinaryReader(entry.Open());
                byte[] graph = reader.ReadBytes(reader.ReadInt32());
                if (ModelProto.Parser.ParseFrom(graph).MetadataProps.Any(m => m.Key == "deepvariants.image"))
                    return graph;
            }
        }
        catch (Exception e) when (e is InvalidDataException or InvalidProtocolBufferException or EndOfStreamException)
        {
            throw new InvalidDataException($"'{path}' is not a readable ML.NET model zip ({e.Message}).", e);
        }
        throw new ArgumentException($"'{path}' holds no DeepVariants CNN classifier (no ONNX graph with DeepVariants' image metadata).", nameof(path));
    }

    /// <summary>The graph's bytes, from <see cref="Model"/> or <see cref="ModelPath"/>.</summary>
    /// <summary>The backbone's bytes, checked to be a readable ONNX model (the error names the file).</summary>
    internal byte[] ReadModel()
    {
        byte[] bytes = Model ?? File.ReadAllBytes(ModelPath);
        Onnx.OnnxImporter.Parse(bytes, string.IsNullOrEmpty(ModelPath) ? null : ModelPath);
        return bytes;
    }

    /// <summary>The graph's name for messages.</summary>
    internal string Source => string.IsNullOrEmpty(ModelPath) ? "the backbone's ONNX graph" : ModelPath;

    /// <summary>Throws, naming the option, when a setting cannot work.</summary>
    public virtual void Validate()
    {
        if (Model is null && (string.IsNullOrWhiteSpace(ModelPath) || !File.Exists(ModelPath)))
            throw new FileNotFoundException($"ONNX model '{ModelPath}' does not exist; set ModelPath to the backbone's .onnx file.", ModelPath);
        if (string.IsNullOrWhiteSpace(InputColumnName))
            throw new ArgumentException("InputColumnName must name a column.", nameof(InputColumnName));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ImageHeight, nameof(ImageHeight));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ImageWidth, nameof(ImageWidth));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Channels, nameof(Channels));
        if (ChannelOrder is { } order && (order.Any(c => c < 0 || c >= Channels)))
            throw new ArgumentOutOfRangeException(nameof(ChannelOrder), $"ChannelOrder must hold input channel indices from 0 to {Channels - 1}.");
        if (ChannelMeans is { } means && means.Length != NetworkChannels)
            throw new ArgumentOutOfRangeException(nameof(ChannelMeans), $"ChannelMeans must hold one mean per network channel ({NetworkChannels}).");
    }

    internal int NetworkChannels => ChannelOrder?.Length ?? Channels;

    internal Onnx.OnnxGraphSurgery.Preprocessing Preprocessing() => new(Channels, ImageHeight, ImageWidth,
        ChannelOrder ?? Enumerable.Range(0, Channels).ToArray(), ChannelMeans ?? new float[NetworkChannels], Scale);
}

using System.Runtime.InteropServices;
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

    /// <summary>Throws, naming the option, when a setting cannot work.</summary>
    public virtual void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelPath) || !File.Exists(ModelPath))
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

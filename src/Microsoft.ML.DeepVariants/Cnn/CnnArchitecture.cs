using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>The CNN families of the survey this project follows.</summary>
public enum CnnFamily
{
    /// <summary>LeNet-5 style: blocks of a 5x5 convolution, batch normalisation, ReLU and 2x2 max pooling, then a hidden fully connected layer.</summary>
    LeNet,
    /// <summary>VGG style: blocks of <see cref="CnnArchitecture.LayersPerBlock"/> 3x3 convolutions, then 2x2 max pooling; global average pooling at the end.</summary>
    Vgg,
    /// <summary>ResNet: a 3x3 stem and residual blocks (basic, or bottleneck 1x1-3x3-1x1) over up to three stages that halve the resolution and double the channels.</summary>
    ResNet,
    /// <summary>GoogLeNet/Inception: modules of parallel 1x1, 3x3 and 5x5 convolutions and pooling, with 1x1 reductions, concatenated.</summary>
    Inception,
    /// <summary>DenseNet: dense blocks whose layers each see the concatenation of all earlier feature maps, joined by transition layers.</summary>
    DenseNet,
}

/// <summary>
/// A CNN architecture as a plain, serializable description: the family and its knobs. It is what a sweeper
/// searches, and it tells the parameter count before any training.
/// </summary>
/// <example>
/// <code>
/// var architecture = new CnnArchitecture { Family = CnnFamily.DenseNet, Depth = 3, LayersPerBlock = 4, GrowthRate = 12 };
/// long parameters = architecture.ParameterCount(channels: 1, height: 28, width: 28, classes: 10);
/// string json = architecture.ToJson();
/// var options = new CnnClassifierOptions { ImageHeight = 28, ImageWidth = 28, Architecture = CnnArchitecture.FromJson(json) };
/// </code>
/// </example>
public sealed class CnnArchitecture
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    /// <summary>The family. Default <see cref="CnnFamily.LeNet"/>.</summary>
    public CnnFamily Family { get; set; } = CnnFamily.LeNet;

    /// <summary>Blocks: convolution blocks (LeNet, VGG), residual blocks (ResNet), Inception modules or dense blocks. Default 2.</summary>
    public int Depth { get; set; } = 2;

    /// <summary>Channels of the first block; later stages double them (LeNet, VGG, ResNet) or grow them (Inception). Default 32.</summary>
    public int Width { get; set; } = 32;

    /// <summary>Convolutions per VGG block, or layers per DenseNet block. Default 2.</summary>
    public int LayersPerBlock { get; set; } = 2;

    /// <summary>Channels each DenseNet layer adds. Default 12.</summary>
    public int GrowthRate { get; set; } = 12;

    /// <summary>Kernel size of the main convolutions (odd); 0 for the family's own (5 for LeNet, 3 otherwise). Default 0.</summary>
    public int KernelSize { get; set; }

    /// <summary>ResNet bottleneck blocks (1x1 reduce, 3x3, 1x1 expand) instead of basic ones. Default false.</summary>
    public bool Bottleneck { get; set; }

    /// <summary>Size of LeNet's hidden fully connected layer, its embedding. Default 128.</summary>
    public int HiddenSize { get; set; } = 128;

    /// <summary>Dropout before the classifier layer (training only). Default 0.25.</summary>
    public float Dropout { get; set; } = 0.25f;

    /// <summary>The kernel size in use: <see cref="KernelSize"/>, or the family's own when 0.</summary>
    [JsonIgnore]
    public int EffectiveKernelSize => KernelSize > 0 ? KernelSize : Family == CnnFamily.LeNet ? 5 : 3;

    /// <summary>
    /// Trainable parameters of this architecture for the given input and classes: the network is built on TorchSharp's
    /// "meta" device, which holds no data, and counted, so even a huge description is counted at once without memory.
    /// </summary>
    public long ParameterCount(int channels, int height, int width, int classes)
    {
        Validate();
        using var network = CnnNetwork.Create(this, channels, height, width, classes, TorchSharp.torch.META);
        return network.ParameterCount;
    }

    private static void Range(int value, int low, int high, string name)
    {
        if (value < low || value > high)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be from {low} to {high:N0}.");
    }

    /// <summary>This description as JSON (enums as names).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>A description from <see cref="ToJson"/>.</summary>
    public static CnnArchitecture FromJson(string json) =>
        JsonSerializer.Deserialize<CnnArchitecture>(json, Json) ?? throw new JsonException("The JSON holds no CNN architecture.");

    /// <summary>
    /// Throws, naming the knob, when the description cannot be built. The ranges: Depth 1 to 16, Width 1 to 4,096 with at
    /// most 65,536 channels in the widest block (Width times 2 to the power of the doublings), LayersPerBlock 1 to 32,
    /// GrowthRate 1 to 1,024, HiddenSize 1 to 65,536, KernelSize 0 or odd up to 15, Dropout in [0, 1).
    /// </summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Family))
            throw new ArgumentOutOfRangeException(nameof(Family), Family, "Unknown CNN family.");
        Range(Depth, 1, 16, nameof(Depth));
        Range(Width, 1, 4096, nameof(Width));
        Range(LayersPerBlock, 1, 32, nameof(LayersPerBlock));
        Range(GrowthRate, 1, 1024, nameof(GrowthRate));
        Range(HiddenSize, 1, 65536, nameof(HiddenSize));
        // The widest block: LeNet and VGG double the channels every block, Inception every second one, ResNet up to two times.
        int doublings = Family switch { CnnFamily.LeNet or CnnFamily.Vgg => Depth - 1, CnnFamily.Inception => (Depth - 1) / 2, CnnFamily.ResNet => Math.Min(2, Depth - 1), _ => 0 };
        if ((long)Width << doublings > 65536)
            throw new ArgumentOutOfRangeException(nameof(Width), Width,
                $"A {Family} of depth {Depth} and width {Width} has {(long)Width << doublings:N0} channels in its last block; at most 65,536 are supported. Lower Depth or Width.");
        if (KernelSize < 0 || KernelSize > 15 || (KernelSize > 0 && KernelSize % 2 == 0))
            throw new ArgumentOutOfRangeException(nameof(KernelSize), KernelSize, "KernelSize must be 0 (the family's own) or an odd number up to 15.");
        if (!(Dropout >= 0) || Dropout >= 1)
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
    }
}

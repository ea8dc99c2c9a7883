using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>What a family builds: the convolutions (images to the last feature map), the pooling (feature map to embedding) and the embedding's size.</summary>
internal sealed record CnnParts(Sequential Convolutions, Sequential Pooling, int EmbeddingSize)
{
    public static Sequential GlobalAveragePooling() => Sequential(("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()));
}

/// <summary>
/// A CNN classifier in three parts: <see cref="Convolutions"/> map images [N, C, H, W] to the last feature map,
/// <see cref="Pooling"/> turns it into embeddings [N, E], and <see cref="Head"/> (dropout and a linear layer)
/// into class logits [N, K]. The ONNX export emits the embedding and the logits.
/// </summary>
public sealed class CnnNetwork : Module<Tensor, Tensor>
{
    /// <summary>The ONNX output holding the embedding.</summary>
    public const string EmbeddingOutput = "Embedding";

    /// <summary>The ONNX output holding the logits.</summary>
    public const string LogitsOutput = "Logits";

    private readonly Sequential convolutions;
    private readonly Sequential pooling;
    private readonly Sequential head;

    private CnnNetwork(CnnParts parts, Sequential head, int channels, int height, int width, int classes)
        : base(nameof(CnnNetwork))
    {
        convolutions = parts.Convolutions;
        pooling = parts.Pooling;
        this.head = head;
        Channels = channels;
        Height = height;
        Width = width;
        EmbeddingSize = parts.EmbeddingSize;
        Classes = classes;
        RegisterComponents();
    }

    /// <summary>Input channels.</summary>
    public int Channels { get; }
    /// <summary>Input height.</summary>
    public int Height { get; }
    /// <summary>Input width.</summary>
    public int Width { get; }
    /// <summary>Length of the embedding.</summary>
    public int EmbeddingSize { get; }
    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Images to the last feature map.</summary>
    public Sequential Convolutions => convolutions;
    /// <summary>The last feature map to embeddings.</summary>
    public Sequential Pooling => pooling;
    /// <summary>Embeddings to logits.</summary>
    public Sequential Head => head;

    /// <summary>Builds the network <paramref name="architecture"/> describes, with weights drawn from TorchSharp's current generator.</summary>
    public static CnnNetwork Create(CnnArchitecture architecture, int channels, int height, int width, int classes)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2, nameof(classes));
        var parts = architecture.Family switch
        {
            CnnFamily.LeNet => LeNet.Build(architecture, channels, height, width),
            CnnFamily.Vgg => Vgg.Build(architecture, channels, height, width),
            CnnFamily.ResNet => ResNet.Build(architecture, channels),
            CnnFamily.Inception => Inception.Build(architecture, channels, height, width),
            CnnFamily.DenseNet => DenseNet.Build(architecture, channels, height, width),
            _ => throw new ArgumentOutOfRangeException(nameof(architecture), architecture.Family, "Unknown CNN family."),
        };
        var head = Sequential(("dropout", nn.Dropout(architecture.Dropout)), ("classifier", Linear(parts.EmbeddingSize, classes)));
        return new CnnNetwork(parts, head, channels, height, width, classes);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => head.call(pooling.call(convolutions.call(input)));

    /// <summary>The embedding of a batch of images.</summary>
    public Tensor Embed(Tensor input) => pooling.call(convolutions.call(input));

    /// <summary>Parameters that training updates.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>
    /// Exports the network to ONNX with input <paramref name="inputName"/> holding C*H*W values (CHW order) and
    /// the outputs named: the embedding (E values) and the logits (K values); a null name leaves that output out.
    /// <see cref="OnnxLayout.SingleRow"/> has no batch dimension, which gives ML.NET's ONNX transformer plain
    /// 1-D vector columns; <see cref="OnnxLayout.Batch"/> adds a free batch dimension first, for batched
    /// inference with ONNX Runtime. The module is left in evaluation mode.
    /// </summary>
    public byte[] ExportOnnx(string inputName, string? embeddingOutput = EmbeddingOutput, string? logitsOutput = LogitsOutput,
        OnnxLayout layout = OnnxLayout.SingleRow)
    {
        if (embeddingOutput is null && logitsOutput is null)
            throw new ArgumentException("Name at least one output: the embedding or the logits.");
        eval();
        using var scope = NewDisposeScope();
        var device = parameters().First().device;
        bool batched = layout == OnnxLayout.Batch;
        var builder = new OnnxGraphBuilder();
        string input = builder.AddInput(inputName, batched, (long)Channels * Height * Width);
        input = builder.AddNode("Reshape", [input, builder.AddInitializer("image_shape", [-1L, Channels, Height, Width])]);
        var example = randn(2, Channels, Height, Width, device: device);
        string featureMap = OnnxModuleExporter.Export(builder, convolutions, input, example, out var featureMapExample);
        string embedding = OnnxModuleExporter.Export(builder, pooling, featureMap, featureMapExample, out var embeddingExample);
        if (embeddingOutput is not null)
            builder.AddOutput(Unbatch(builder, embedding, batched, EmbeddingSize), embeddingOutput, batched, EmbeddingSize);
        if (logitsOutput is not null)
        {
            string logits = OnnxModuleExporter.Export(builder, head, embedding, embeddingExample);
            builder.AddOutput(Unbatch(builder, logits, batched, Classes), logitsOutput, batched, Classes);
        }
        return builder.ToBytes();
    }

    private static string Unbatch(OnnxGraphBuilder builder, string value, bool batched, long size) =>
        batched ? value : builder.AddNode("Reshape", [value, builder.AddInitializer("row_shape", [size])]);
}

/// <summary>The input and output layout of an exported ONNX graph.</summary>
public enum OnnxLayout
{
    /// <summary>One row per call, no batch dimension: what ML.NET's ONNX transformer feeds.</summary>
    SingleRow,
    /// <summary>A free batch dimension first: for batched inference with ONNX Runtime.</summary>
    Batch,
}

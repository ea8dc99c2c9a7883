using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// A CNN classifier as two parts: <see cref="Features"/> maps images [N, C, H, W] to embeddings [N, E], and
/// <see cref="Head"/> maps embeddings to class logits [N, K]. The ONNX export emits both.
/// </summary>
public sealed class CnnNetwork : Module<Tensor, Tensor>
{
    /// <summary>The ONNX output holding the embedding.</summary>
    public const string EmbeddingOutput = "Embedding";

    /// <summary>The ONNX output holding the logits.</summary>
    public const string LogitsOutput = "Logits";

    private readonly Sequential features;
    private readonly Sequential head;

    private CnnNetwork(Sequential features, Sequential head, int channels, int height, int width, int embeddingSize, int classes)
        : base(nameof(CnnNetwork))
    {
        this.features = features;
        this.head = head;
        Channels = channels;
        Height = height;
        Width = width;
        EmbeddingSize = embeddingSize;
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
    /// <summary>Images to embeddings.</summary>
    public Sequential Features => features;
    /// <summary>Embeddings to logits.</summary>
    public Sequential Head => head;

    /// <summary>Builds the network the options describe, with weights drawn from TorchSharp's current generator.</summary>
    public static CnnNetwork Create(CnnOptions options, int channels, int height, int width, int classes)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2, nameof(classes));
        (Sequential features, int embedding) = options.Architecture switch
        {
            CnnArchitecture.LeNet => LeNet(options, channels, height, width),
            CnnArchitecture.ResNet => ResNet(options, channels),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Architecture, "Unknown architecture."),
        };
        var head = Sequential(("dropout", nn.Dropout(options.Dropout)), ("classifier", Linear(embedding, classes)));
        return new CnnNetwork(features, head, channels, height, width, embedding, classes);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => head.call(features.call(input));

    /// <summary>The embedding of a batch of images.</summary>
    public Tensor Embed(Tensor input) => features.call(input);

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
        string embedding = OnnxModuleExporter.Export(builder, features, input, example, out var embeddingExample);
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

    private static (Sequential, int) LeNet(CnnOptions o, int channels, int height, int width)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        int inChannels = channels, h = height, w = width;
        for (int block = 0; block < o.Depth; block++)
        {
            int outChannels = o.Width << block;
            layers.Add(($"conv{block + 1}", Conv2d(inChannels, outChannels, 5, padding: 2, bias: false)));
            layers.Add(($"bn{block + 1}", BatchNorm2d(outChannels)));
            layers.Add(($"relu{block + 1}", ReLU()));
            if (h >= 2 && w >= 2)
            {
                layers.Add(($"pool{block + 1}", MaxPool2d(2)));
                h /= 2;
                w /= 2;
            }
            inChannels = outChannels;
        }
        layers.Add(("flatten", Flatten()));
        layers.Add(("fc", Linear((long)inChannels * h * w, o.HiddenSize)));
        layers.Add(("fc_relu", ReLU()));
        return (Sequential(layers), o.HiddenSize);
    }

    private static (Sequential, int) ResNet(CnnOptions o, int channels)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>
        {
            ("stem", Conv2d(channels, o.Width, 3, padding: 1, bias: false)),
            ("stem_bn", BatchNorm2d(o.Width)),
            ("stem_relu", ReLU()),
        };
        int inChannels = o.Width;
        for (int block = 0; block < o.Depth; block++)
        {
            int outChannels = o.Width << block;
            layers.Add(($"block{block + 1}", new ResidualBlock($"block{block + 1}", inChannels, outChannels, stride: block == 0 ? 1 : 2)));
            inChannels = outChannels;
        }
        layers.Add(("pool", AdaptiveAvgPool2d(1)));
        layers.Add(("flatten", Flatten()));
        return (Sequential(layers), inChannels);
    }
}

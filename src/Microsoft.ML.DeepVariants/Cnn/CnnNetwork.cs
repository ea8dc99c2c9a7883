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
public sealed class CnnNetwork : Module<Tensor, Tensor>, IRebuildableNetwork
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

    /// <summary>
    /// Builds the network <paramref name="architecture"/> describes, with weights drawn from TorchSharp's current generator,
    /// on <paramref name="device"/> (the CPU when null; the "meta" device builds it without memory, to count it).
    /// </summary>
    public static CnnNetwork Create(CnnArchitecture architecture, int channels, int height, int width, int classes, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2, nameof(classes));
        var parts = architecture.Family switch
        {
            CnnFamily.LeNet => LeNet.Build(architecture, channels, height, width, device),
            CnnFamily.Vgg => Vgg.Build(architecture, channels, height, width, device),
            CnnFamily.ResNet => ResNet.Build(architecture, channels, device),
            CnnFamily.Inception => Inception.Build(architecture, channels, height, width, device),
            CnnFamily.DenseNet => DenseNet.Build(architecture, channels, height, width, device),
            _ => throw new ArgumentOutOfRangeException(nameof(architecture), architecture.Family, "Unknown CNN family."),
        };
        var head = Sequential(("dropout", nn.Dropout(architecture.Dropout)), ("classifier", Linear(parts.EmbeddingSize, classes, device: device)));
        return new CnnNetwork(parts, head, channels, height, width, classes);
    }

    IReadOnlyList<(string Name, Sequential Part)> IRebuildableNetwork.Parts =>
        [(nameof(convolutions), convolutions), (nameof(pooling), pooling), (nameof(head), head)];

    // The rewritten network keeps this one's input shape and classes; the embedding's size is the head's input.
    nn.Module<Tensor, Tensor> IRebuildableNetwork.WithParts(IReadOnlyList<Sequential> parts)
    {
        int embedding = (int)parts[2].modules().OfType<Linear>().First().in_features;
        var rebuilt = new CnnNetwork(new CnnParts(parts[0], parts[1], embedding), parts[2], Channels, Height, Width, Classes);
        rebuilt.train(training);
        return rebuilt;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => head.call(pooling.call(convolutions.call(input)));

    /// <summary>The embedding of a batch of images.</summary>
    public Tensor Embed(Tensor input) => pooling.call(convolutions.call(input));

    /// <summary>Parameters that training updates.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>
    /// Grad-CAM heatmaps (Selvaraju et al. 2017) computed with autograd: for each image [N, C, H, W], the ReLU of the
    /// explained map's channels weighted by the spatial mean of the class score's gradient, upsampled (bilinear) to
    /// H x W and scaled to a maximum of 1. The class is <paramref name="classIndex"/>, or each image's predicted class
    /// when null. The explained map is the last convolutional map (after LeNet's final max pooling).
    /// </summary>
    public Tensor GradCam(Tensor images, long? classIndex = null)
    {
        eval();
        using var scope = NewDisposeScope();
        var (map, rest) = ExplainedMap(convolutions.call(images.detach()));
        map = map.detach().requires_grad_(true);
        var logits = head.call(rest.Aggregate(map, (x, m) => ((Module<Tensor, Tensor>)m).call(x)));
        var chosen = classIndex.HasValue ? full(images.shape[0], classIndex.Value, dtype: ScalarType.Int64, device: logits.device) : logits.argmax(1);
        var gradient = autograd.grad([logits.gather(1, chosen.unsqueeze(1)).sum()], [map])[0];
        var weights = gradient.mean([2, 3], keepdim: true);
        var cam = functional.relu((weights * map).sum(1, keepdim: true));
        cam = functional.interpolate(cam, [Height, Width], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(1);
        var peak = cam.amax([1, 2], keepdim: true) + 1e-12;
        return (cam / peak).detach().MoveToOuterDisposeScope();
    }

    // Grad-CAM explains the last convolutional map; LeNet's pooling starts with a max pooling, whose output is used.
    private (Tensor Map, IReadOnlyList<nn.Module> Remaining) ExplainedMap(Tensor convolved)
    {
        var steps = pooling.children().ToList();
        return steps.Count > 0 && steps[0] is MaxPool2d first
            ? (((Module<Tensor, Tensor>)first).call(convolved), steps.Skip(1).ToList())
            : (convolved, steps);
    }

    /// <summary>
    /// Exports the network to ONNX with input <paramref name="inputName"/> holding C*H*W values (CHW order) and
    /// the outputs named: the embedding (E values) and the logits (K values); a null name leaves that output out.
    /// <see cref="OnnxLayout.SingleRow"/> has no batch dimension, which gives ML.NET's ONNX transformer plain
    /// 1-D vector columns; <see cref="OnnxLayout.Batch"/> adds a free batch dimension first, for batched
    /// inference with ONNX Runtime. The module is left in evaluation mode.
    /// </summary>
    public byte[] ExportOnnx(string inputName, string? embeddingOutput = EmbeddingOutput, string? logitsOutput = LogitsOutput,
        OnnxLayout layout = OnnxLayout.SingleRow) => ExportOnnx(inputName, embeddingOutput, logitsOutput, null, layout);

    /// <summary>
    /// As <see cref="ExportOnnx(string, string?, string?, OnnxLayout)"/>, with a Grad-CAM heatmap output [H*W] as
    /// well (single-row layout only): the analytic gradient of the class score with respect to the explained map, for
    /// the class that <paramref name="gradCam"/> names, or the predicted class when its class is null. It matches <see cref="GradCam"/>.
    /// </summary>
    public byte[] ExportOnnx(string inputName, string? embeddingOutput, string? logitsOutput, (string Name, long? Class)? gradCam,
        OnnxLayout layout = OnnxLayout.SingleRow)
    {
        if (embeddingOutput is null && logitsOutput is null && gradCam is null)
            throw new ArgumentException("Name at least one output: the embedding, the logits or the Grad-CAM heatmap.");
        if (gradCam is not null && layout != OnnxLayout.SingleRow)
            throw new ArgumentException("The Grad-CAM output is exported in the single-row layout only.", nameof(layout));
        eval();
        using var scope = NewDisposeScope();
        var device = parameters().First().device;
        bool batched = layout == OnnxLayout.Batch;
        var builder = new OnnxGraphBuilder();
        string input = builder.AddInput(inputName, batched, (long)Channels * Height * Width);
        input = builder.AddNode("Reshape", [input, builder.AddInitializer("image_shape", [-1L, Channels, Height, Width])]);
        var example = randn(2, Channels, Height, Width, device: device);
        string featureMap = OnnxModuleExporter.Export(builder, convolutions, input, example, out var featureMapExample);
        // The pooling is written in two steps: up to the map Grad-CAM explains, then the remaining steps.
        var (mapExample, rest) = ExplainedMap(featureMapExample);
        string map = rest.Count == pooling.children().Count()
            ? featureMap
            : OnnxModuleExporter.Export(builder, pooling.children().First(), featureMap, featureMapExample);
        string embedding = ExportSteps(builder, rest, map, mapExample, out var embeddingExample);
        if (embeddingOutput is not null)
            builder.AddOutput(Unbatch(builder, embedding, batched, EmbeddingSize), embeddingOutput, batched, EmbeddingSize);
        string logits = OnnxModuleExporter.Export(builder, head, embedding, embeddingExample);
        if (logitsOutput is not null)
            builder.AddOutput(Unbatch(builder, logits, batched, Classes), logitsOutput, batched, Classes);
        if (gradCam is { } cam)
            builder.AddOutput(GradCamNodes.Export(builder, this, map, mapExample, rest, logits, cam.Class), cam.Name, batched: false, (long)Height * Width);
        // What fine-tuning from a saved model needs: the image shape, and the values that are the embedding and the logits.
        return builder.ToBytes(new Dictionary<string, string>
        {
            ["deepvariants.image"] = $"{Channels},{Height},{Width}",
            ["deepvariants.embedding"] = embedding,
            ["deepvariants.logits"] = logits,
        });
    }

    private static string ExportSteps(OnnxGraphBuilder builder, IReadOnlyList<nn.Module> steps, string input, Tensor example, out Tensor output)
    {
        output = example;
        foreach (var step in steps)
        {
            input = OnnxModuleExporter.Export(builder, step, input, output, out var next);
            output = next;
        }
        return input;
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

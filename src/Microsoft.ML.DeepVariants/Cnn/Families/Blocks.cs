using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>The layers the families share: convolution, batch normalisation, ReLU.</summary>
internal static class Blocks
{
    /// <summary>A "same" convolution (stride 1 keeps the size) without bias, batch normalisation and ReLU, on <paramref name="device"/> (the "meta" device counts parameters without memory).</summary>
    public static Sequential ConvBnRelu(long inChannels, long outChannels, long kernel, long stride = 1, Device? device = null) => Sequential(
        ("conv", Conv2d(inChannels, outChannels, kernel, stride: stride, padding: kernel / 2, bias: false, device: device)),
        ("bn", BatchNorm2d(outChannels, device: device)),
        ("relu", ReLU()));
}

/// <summary>
/// A residual block (He et al. 2016): relu(body(x) + shortcut(x)). The body is two 3x3 convolutions (basic) or
/// 1x1 reduce, 3x3, 1x1 expand (bottleneck); the shortcut is the identity, or a strided 1x1 convolution with batch
/// normalisation when the shape changes. Exports as an ONNX Add.
/// </summary>
public sealed class ResidualBlock : Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly Sequential body;
    private readonly Sequential shortcut;
    private readonly ReLU relu;

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/>, downsampling by <paramref name="stride"/>.</summary>
    public ResidualBlock(string name, int inChannels, int outChannels, int stride = 1, bool bottleneck = false, int kernel = 3, Device? device = null) : base(name)
    {
        int inner = Math.Max(4, outChannels / 4);
        body = bottleneck
            ? Sequential(
                ("reduce", Blocks.ConvBnRelu(inChannels, inner, 1, device: device)),
                ("conv", Blocks.ConvBnRelu(inner, inner, kernel, stride, device)),
                ("expand", Conv2d(inner, outChannels, 1, bias: false, device: device)),
                ("expand_bn", BatchNorm2d(outChannels, device: device)))
            : Sequential(
                ("conv1", Blocks.ConvBnRelu(inChannels, outChannels, kernel, stride, device)),
                ("conv2", Conv2d(outChannels, outChannels, kernel, padding: kernel / 2, bias: false, device: device)),
                ("bn2", BatchNorm2d(outChannels, device: device)));
        shortcut = stride == 1 && inChannels == outChannels
            ? Sequential()
            : Sequential(("conv", Conv2d(inChannels, outChannels, 1, stride: stride, bias: false, device: device)), ("bn", BatchNorm2d(outChannels, device: device)));
        relu = ReLU();
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => relu.call(body.call(input).Plus(shortcut.call(input)));

    /// <inheritdoc/>
    public string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example)
    {
        string main = OnnxModuleExporter.Export(builder, body, input, example);
        string skip = OnnxModuleExporter.Export(builder, shortcut, input, example);
        return builder.AddNode("Relu", [builder.AddNode("Add", [main, skip])]);
    }
}

/// <summary>
/// An Inception module (Szegedy et al. 2015): parallel 1x1, 1x1-then-3x3, 1x1-then-5x5 and 3x3-max-pool-then-1x1
/// paths, concatenated along the channels (ONNX Concat). Outputs 3 x branch-width channels.
/// </summary>
public sealed class InceptionModule : Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly ModuleList<Module<Tensor, Tensor>> branches;

    /// <summary>A module reading <paramref name="inChannels"/> channels, with branch width <paramref name="branch"/>.</summary>
    public InceptionModule(string name, int inChannels, int branch, Device? device = null) : base(name)
    {
        int half = Math.Max(1, branch / 2), quarter = Math.Max(1, branch / 4);
        branches = new ModuleList<Module<Tensor, Tensor>>(
            Blocks.ConvBnRelu(inChannels, branch, 1, device: device),
            Sequential(("reduce", Blocks.ConvBnRelu(inChannels, half, 1, device: device)), ("conv", Blocks.ConvBnRelu(half, branch, 3, device: device))),
            Sequential(("reduce", Blocks.ConvBnRelu(inChannels, quarter, 1, device: device)), ("conv", Blocks.ConvBnRelu(quarter, half, 5, device: device))),
            Sequential(("pool", MaxPool2d(3, stride: 1, padding: 1)), ("project", Blocks.ConvBnRelu(inChannels, half, 1, device: device))));
        OutChannels = branch + branch + half + half;
        RegisterComponents();
    }

    /// <summary>Channels of the concatenated output.</summary>
    public int OutChannels { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => cat(branches.Select(b => b.call(input)).ToList(), 1);

    /// <inheritdoc/>
    public string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example) =>
        builder.AddNode("Concat", branches.Select(b => OnnxModuleExporter.Export(builder, b, input, example)).ToList(), OnnxGraphBuilder.Int("axis", 1));
}

/// <summary>
/// A DenseNet layer (Huang et al. 2017): batch normalisation, ReLU and a convolution adding the growth-rate
/// channels, whose output is concatenated to its input (ONNX Concat).
/// </summary>
public sealed class DenseLayer : Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly Sequential body;

    /// <summary>A layer reading <paramref name="inChannels"/> channels and adding <paramref name="growth"/>.</summary>
    public DenseLayer(string name, int inChannels, int growth, int kernel = 3, Device? device = null) : base(name)
    {
        body = Sequential(("bn", BatchNorm2d(inChannels, device: device)), ("relu", ReLU()),
            ("conv", Conv2d(inChannels, growth, kernel, padding: kernel / 2, bias: false, device: device)));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => cat([input, body.call(input)], 1);

    /// <inheritdoc/>
    public string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example) =>
        builder.AddNode("Concat", [input, OnnxModuleExporter.Export(builder, body, input, example)], OnnxGraphBuilder.Int("axis", 1));
}

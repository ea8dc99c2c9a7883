using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// A basic residual block (He et al. 2016): relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), where the
/// shortcut is the identity, or a strided 1x1 convolution with batch normalisation when the shape changes.
/// </summary>
public sealed class ResidualBlock : Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly Sequential body;
    private readonly Sequential shortcut;
    private readonly ReLU relu;

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/>, downsampling by <paramref name="stride"/>.</summary>
    public ResidualBlock(string name, int inChannels, int outChannels, int stride = 1) : base(name)
    {
        body = Sequential(
            ("conv1", Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false)),
            ("bn1", BatchNorm2d(outChannels)),
            ("relu1", ReLU()),
            ("conv2", Conv2d(outChannels, outChannels, 3, padding: 1, bias: false)),
            ("bn2", BatchNorm2d(outChannels)));
        shortcut = stride == 1 && inChannels == outChannels
            ? Sequential()
            : Sequential(
                ("conv", Conv2d(inChannels, outChannels, 1, stride: stride, bias: false)),
                ("bn", BatchNorm2d(outChannels)));
        relu = ReLU();
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => relu.call(body.call(input) + shortcut.call(input));

    /// <inheritdoc/>
    public string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example)
    {
        string main = OnnxModuleExporter.Export(builder, body, input, example);
        string skip = OnnxModuleExporter.Export(builder, shortcut, input, example);
        return builder.AddNode("Relu", [builder.AddNode("Add", [main, skip])]);
    }
}

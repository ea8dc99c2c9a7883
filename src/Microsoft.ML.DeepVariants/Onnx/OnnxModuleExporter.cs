using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>A module that writes its own ONNX nodes (composite blocks such as residual blocks).</summary>
public interface IOnnxExportable
{
    /// <summary>
    /// Appends this module's nodes to <paramref name="builder"/>, reading <paramref name="input"/>, and
    /// returns the name of its output. <paramref name="example"/> is the module's real input, so that
    /// shape-dependent operators can be written with concrete sizes.
    /// </summary>
    string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example);
}

/// <summary>
/// Exports the TorchSharp modules this project builds to ONNX nodes: Sequential, Conv2d, ConvTranspose2d,
/// BatchNorm2d, BatchNorm1d, LayerNorm, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Dropout, Flatten, Unflatten (batch
/// first), Linear, Softmax, Identity, and any
/// <see cref="IOnnxExportable"/>. The module is traced with an example input in evaluation mode, so
/// batch normalisation uses its running statistics and dropout is the identity.
/// </summary>
public static class OnnxModuleExporter
{
    /// <summary>Appends <paramref name="module"/> and returns the name of its output value.</summary>
    public static string Export(OnnxGraphBuilder builder, nn.Module module, string input, Tensor example)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(module);
        return Export(builder, module, input, example, out _);
    }

    /// <summary>Appends <paramref name="module"/>, returning its output name and its output on <paramref name="example"/>.</summary>
    public static string Export(OnnxGraphBuilder builder, nn.Module module, string input, Tensor example, out Tensor output)
    {
        using var noGrad = no_grad();
        switch (module)
        {
            case Sequential sequential:
                output = example;
                foreach (var (_, child) in sequential.named_children())
                {
                    input = Export(builder, child, input, output, out var next);
                    output = next;
                }
                return input;
            case IOnnxExportable exportable:
                output = Call(module, example);
                return exportable.ExportOnnx(builder, input, example);
            default:
                output = Call(module, example);
                return ExportLeaf(builder, module, input, example);
        }
    }

    private static Tensor Call(nn.Module module, Tensor example) =>
        module is nn.Module<Tensor, Tensor> typed
            ? typed.call(example)
            : throw new NotSupportedException($"ONNX export needs a Module<Tensor, Tensor>; '{module.GetName()}' is a {module.GetType().Name}.");

    private static string ExportLeaf(OnnxGraphBuilder b, nn.Module module, string x, Tensor example)
    {
        switch (module)
        {
            case Conv2d conv:
                if (conv.padding_type is not null || conv.padding_mode != PaddingModes.Zeros || conv.transposed)
                    throw Unsupported(module, "only explicit zero padding is exported for Conv2d");
                return b.AddNode("Conv", WeightAndBias(b, x, "conv", conv.weight!, conv.bias),
                    OnnxGraphBuilder.Ints("kernel_shape", conv.kernel_size),
                    OnnxGraphBuilder.Ints("strides", conv.stride),
                    OnnxGraphBuilder.Ints("pads", Pads(conv.padding ?? [0, 0])),
                    OnnxGraphBuilder.Ints("dilations", conv.dilation),
                    OnnxGraphBuilder.Int("group", conv.groups));
            case BatchNorm2d norm:
                return BatchNormalization(b, module, norm.num_features, norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.eps, x);
            case BatchNorm1d norm:
                return BatchNormalization(b, module, norm.num_features, norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.eps, x);
            case LayerNorm norm:
                return LayerNormalization(b, norm, x);
            case ConvTranspose2d deconv:
                if (deconv.padding_mode != PaddingModes.Zeros || deconv.groups != 1)
                    throw Unsupported(module, "only zero padding and one group are exported for ConvTranspose2d");
                return b.AddNode("ConvTranspose", WeightAndBias(b, x, "deconv", deconv.weight!, deconv.bias),
                    OnnxGraphBuilder.Ints("kernel_shape", deconv.kernel_size),
                    OnnxGraphBuilder.Ints("strides", deconv.stride),
                    OnnxGraphBuilder.Ints("pads", Pads(deconv.padding ?? [0, 0])),
                    OnnxGraphBuilder.Ints("dilations", deconv.dilation),
                    OnnxGraphBuilder.Ints("output_padding", deconv.output_padding ?? [0, 0]));
            case Unflatten unflatten:
                using (var result = unflatten.call(example))
                    return b.AddNode("Reshape", [x, b.AddInitializer("unflatten_shape", [-1L, .. result.shape.Skip(1)])]);
            case ReLU:
                return b.AddNode("Relu", [x]);
            case Sigmoid:
                return b.AddNode("Sigmoid", [x]);
            case Tanh:
                return b.AddNode("Tanh", [x]);
            case LeakyReLU leaky:
                return b.AddNode("LeakyRelu", [x], OnnxGraphBuilder.Float("alpha", (float)leaky.negative_slope));
            case MaxPool2d pool:
                return b.AddNode("MaxPool", [x],
                    OnnxGraphBuilder.Ints("kernel_shape", pool.kernel_size),
                    OnnxGraphBuilder.Ints("strides", pool.stride ?? pool.kernel_size),
                    OnnxGraphBuilder.Ints("pads", Pads(pool.padding ?? [0, 0])),
                    OnnxGraphBuilder.Ints("dilations", pool.dilation ?? [1, 1]),
                    OnnxGraphBuilder.Int("ceil_mode", pool.ceil_mode ? 1 : 0));
            case AvgPool2d pool:
                if (pool.divisor_override is not null)
                    throw Unsupported(module, "AvgPool2d with divisor_override has no ONNX equivalent");
                return b.AddNode("AveragePool", [x],
                    OnnxGraphBuilder.Ints("kernel_shape", pool.kernel_size),
                    OnnxGraphBuilder.Ints("strides", pool.stride ?? pool.kernel_size),
                    OnnxGraphBuilder.Ints("pads", Pads(pool.padding ?? [0, 0])),
                    OnnxGraphBuilder.Int("ceil_mode", pool.ceil_mode ? 1 : 0),
                    OnnxGraphBuilder.Int("count_include_pad", pool.count_include_pad ? 1 : 0));
            case AdaptiveAvgPool2d adaptive:
                return ExportAdaptiveAveragePool(b, adaptive, x, example);
            case Flatten flatten:
                long rank = example.dim();
                long start = flatten.start_dim < 0 ? flatten.start_dim + rank : flatten.start_dim;
                long end = flatten.end_dim < 0 ? flatten.end_dim + rank : flatten.end_dim;
                if (end != rank - 1)
                    throw Unsupported(module, "Flatten is exported only when it runs to the last dimension");
                return b.AddNode("Flatten", [x], OnnxGraphBuilder.Int("axis", start));
            case Dropout:
            case Identity:
                return x;
            case Linear linear:
                return b.AddNode("Gemm", WeightAndBias(b, x, "fc", linear.weight, linear.bias), OnnxGraphBuilder.Int("transB", 1));
            case Softmax softmax:
                return b.AddNode("Softmax", [x], OnnxGraphBuilder.Int("axis", softmax.dim));
            default:
                throw Unsupported(module, $"the module type {module.GetType().Name} has no ONNX exporter");
        }
    }

    // Batch normalisation in evaluation mode: the running statistics, and the affine scale and bias (1 and 0 when absent).
    private static string BatchNormalization(OnnxGraphBuilder b, nn.Module module, long features, Tensor? weight, Tensor? bias, Tensor? mean, Tensor? variance,
        double eps, string x)
    {
        if (mean is null || variance is null)
            throw Unsupported(module, "batch normalisation without running statistics cannot be exported");
        using var ones = torch.ones(features);
        using var zeros = torch.zeros(features);
        return b.AddNode("BatchNormalization",
            [x, b.AddInitializer("bn_scale", weight ?? ones), b.AddInitializer("bn_bias", bias ?? zeros),
             b.AddInitializer("bn_mean", mean), b.AddInitializer("bn_var", variance)],
            OnnxGraphBuilder.Float("epsilon", (float)eps));
    }

    /// <summary>Layer normalisation over the last axis (opset 17's LayerNormalization), with TorchSharp's default epsilon of 1e-5.</summary>
    public static string LayerNormalization(OnnxGraphBuilder b, LayerNorm norm, string x) => b.AddNode("LayerNormalization",
        [x, b.AddInitializer("ln_scale", norm.weight!), b.AddInitializer("ln_bias", norm.bias!)],
        OnnxGraphBuilder.Int("axis", -1), OnnxGraphBuilder.Float("epsilon", 1e-5f));

    private static string ExportAdaptiveAveragePool(OnnxGraphBuilder b, AdaptiveAvgPool2d pool, string x, Tensor example)
    {
        long[] output = pool.output_size;
        if (output.All(size => size == 1))
            return b.AddNode("GlobalAveragePool", [x]);
        long height = example.shape[^2], width = example.shape[^1];
        if (height % output[0] != 0 || width % output[^1] != 0)
            throw Unsupported(pool, $"adaptive pooling from {height}x{width} to {output[0]}x{output[^1]} has uneven windows");
        long[] kernel = [height / output[0], width / output[^1]];
        return b.AddNode("AveragePool", [x], OnnxGraphBuilder.Ints("kernel_shape", kernel), OnnxGraphBuilder.Ints("strides", kernel));
    }

    // The inputs of Conv, ConvTranspose and Gemm: the value, the weight, and the bias when the layer has one.
    private static List<string> WeightAndBias(OnnxGraphBuilder b, string x, string hint, Tensor weight, Tensor? bias)
    {
        var inputs = new List<string> { x, b.AddInitializer(hint + "_weight", weight) };
        if (bias is not null)
            inputs.Add(b.AddInitializer(hint + "_bias", bias));
        return inputs;
    }

    // TorchSharp pads symmetrically per spatial axis; ONNX lists all begins, then all ends.
    private static long[] Pads(long[] padding) => padding.Length == 1
        ? [padding[0], padding[0], padding[0], padding[0]]
        : [padding[0], padding[1], padding[0], padding[1]];

    private static NotSupportedException Unsupported(nn.Module module, string why) =>
        new($"Cannot export module '{module.GetName()}' ({module.GetType().Name}) to ONNX: {why}.");
}

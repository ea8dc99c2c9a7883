using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// Writes Grad-CAM as ONNX nodes with the gradient worked out analytically for the two heads the families use, so
/// that a saved ML.NET model computes heatmaps with ONNX Runtime alone:
/// global average pooling then linear (the weights are the class's row of the classifier), and LeNet's flatten,
/// linear, ReLU, linear (the gradient is W1ᵀ(W2[c] ⊙ 1[z > 0]), averaged over space). Dropout is the identity.
/// </summary>
internal static class GradCamNodes
{
    public static string Export(OnnxGraphBuilder b, CnnNetwork network, string map, Tensor mapExample, IReadOnlyList<nn.Module> rest, string logits, long? explainedClass)
    {
        long channels = mapExample.shape[1], h = mapExample.shape[2], w = mapExample.shape[3];
        var classifier = network.Head.children().OfType<Linear>().Single();
        string requested = b.AddInitializer("explained_class", [explainedClass ?? -1L]);
        string predicted = b.AddNode("ArgMax", [logits], OnnxGraphBuilder.Int("axis", 1), OnnxGraphBuilder.Int("keepdims", 0));
        string useRequested = b.AddNode("GreaterOrEqual", [requested, b.AddInitializer("zero", [0L])]);
        string chosen = b.AddNode("Where", [useRequested, requested, predicted]);
        string classRow = b.AddNode("Gather", [b.AddInitializer("gradcam_classifier", classifier.weight), chosen], OnnxGraphBuilder.Int("axis", 0)); // [1, E]
        string flatMap = b.AddNode("Reshape", [map, b.AddInitializer("map_shape", [channels, h * w])]);                                             // [C, hw]

        string weights; // [C, 1]: the spatial mean of the gradient for each channel
        if (rest.Count == 2 && rest[0] is AdaptiveAvgPool2d && rest[1] is Flatten)
        {
            // d score / d A_k(i, j) = W[c, k] / hw: the same for every position, so the mean is W[c, k] / hw.
            weights = b.AddNode("Reshape", [b.AddNode("Div", [classRow, Constant(b, h * w)]), b.AddInitializer("column", [channels, 1L])]);
        }
        else if (rest.Count == 3 && rest[0] is Flatten && rest[1] is Linear hidden && rest[2] is ReLU)
        {
            string flat = b.AddNode("Reshape", [map, b.AddInitializer("flat_shape", [1L, channels * h * w])]);
            string z = b.AddNode("Gemm", [flat, b.AddInitializer("gradcam_hidden_weight", hidden.weight), b.AddInitializer("gradcam_hidden_bias", hidden.bias!)],
                OnnxGraphBuilder.Int("transB", 1));
            string active = b.AddNode("Cast", [b.AddNode("Greater", [z, Constant(b, 0)])], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float));
            string dz = b.AddNode("Mul", [classRow, active]);                                                                // [1, E]
            string dFlat = b.AddNode("MatMul", [dz, b.AddInitializer("gradcam_hidden_weight_again", hidden.weight)]);       // [1, C*hw]
            string dMap = b.AddNode("Reshape", [dFlat, b.AddInitializer("grad_shape", [channels, h * w])]);
            weights = b.AddNode("ReduceMean", [dMap], OnnxGraphBuilder.Ints("axes", [1L]), OnnxGraphBuilder.Int("keepdims", 1)); // opset 17: axes is an attribute
        }
        else
        {
            throw new NotSupportedException("Grad-CAM export supports global average pooling or LeNet's flatten-linear-ReLU pooling.");
        }

        string cam = b.AddNode("Relu", [b.AddNode("ReduceSum", [b.AddNode("Mul", [flatMap, weights]), b.AddInitializer("axis0", [0L])],
            OnnxGraphBuilder.Int("keepdims", 0))]);
        string image = b.AddNode("Reshape", [cam, b.AddInitializer("cam_shape", [1L, 1L, h, w])]);
        string resized = b.AddNode("Resize", [image, "", "", b.AddInitializer("cam_size", [1L, 1L, network.Height, network.Width])],
            OnnxGraphBuilder.String("mode", "linear"), OnnxGraphBuilder.String("coordinate_transformation_mode", "half_pixel"));
        string flatCam = b.AddNode("Reshape", [resized, b.AddInitializer("cam_flat", [(long)network.Height * network.Width])]);
        string peak = b.AddNode("Add", [b.AddNode("ReduceMax", [flatCam], OnnxGraphBuilder.Int("keepdims", 1)), Constant(b, 1e-12f)]);
        return b.AddNode("Div", [flatCam, peak]);
    }

    private static string Constant(OnnxGraphBuilder b, float value)
    {
        using var scalar = tensor(value);
        return b.AddInitializer("constant", scalar);
    }
}

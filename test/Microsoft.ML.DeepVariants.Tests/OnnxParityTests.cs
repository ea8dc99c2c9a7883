using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Every exported module: TorchSharp and ONNX Runtime agree within 1e-4 on random inputs.</summary>
[TestClass]
public sealed class OnnxParityTests
{
    private const float Tolerance = 1e-4f;

    public static IEnumerable<object[]> Modules =>
    [
        ["Conv2d", (Func<Module<Tensor, Tensor>>)(() => Conv2d(3, 5, 3, stride: 2, padding: 1))],
        ["Conv2d without bias, dilated", (Func<Module<Tensor, Tensor>>)(() => Conv2d(3, 4, 3, dilation: 2, bias: false))],
        ["BatchNorm2d", (Func<Module<Tensor, Tensor>>)(TrainedBatchNorm)],
        ["ReLU", (Func<Module<Tensor, Tensor>>)(() => ReLU())],
        ["MaxPool2d", (Func<Module<Tensor, Tensor>>)(() => MaxPool2d(2))],
        ["MaxPool2d padded", (Func<Module<Tensor, Tensor>>)(() => MaxPool2d(3, stride: 2, padding: 1))],
        ["AvgPool2d", (Func<Module<Tensor, Tensor>>)(() => AvgPool2d(2))],
        ["AdaptiveAvgPool2d to 1x1", (Func<Module<Tensor, Tensor>>)(() => AdaptiveAvgPool2d(1))],
        ["AdaptiveAvgPool2d to 4x4", (Func<Module<Tensor, Tensor>>)(() => AdaptiveAvgPool2d(4))],
        ["Dropout", (Func<Module<Tensor, Tensor>>)(() => Sequential(Dropout(0.5), Flatten()))],
        ["Flatten + Linear", (Func<Module<Tensor, Tensor>>)(() => Sequential(Flatten(), Linear(3 * 8 * 8, 7)))],
        ["Softmax", (Func<Module<Tensor, Tensor>>)(() => Sequential(Flatten(), Linear(3 * 8 * 8, 5), Softmax(1)))],
        ["Residual Add (identity shortcut)", (Func<Module<Tensor, Tensor>>)(() => new ResidualBlock("block", 3, 3))],
        ["Residual Add (projection shortcut)", (Func<Module<Tensor, Tensor>>)(() => new ResidualBlock("block", 3, 6, stride: 2))],
        ["Residual Add (bottleneck)", (Func<Module<Tensor, Tensor>>)(() => new ResidualBlock("block", 3, 16, stride: 2, bottleneck: true))],
        ["Inception Concat", (Func<Module<Tensor, Tensor>>)(() => new InceptionModule("inception", 3, 8))],
        ["DenseNet Concat", (Func<Module<Tensor, Tensor>>)(() => new DenseLayer("dense", 3, 4))],
    ];

    [TestMethod]
    [DynamicData(nameof(Modules))]
    public void ExportedModuleMatchesTorchSharp(string name, Func<Module<Tensor, Tensor>> create)
    {
        random.manual_seed(11);
        using var module = create();
        module.eval();
        using var input = randn(4, 3, 8, 8);
        using var expected = module.call(input);

        var builder = new OnnxGraphBuilder();
        string x = builder.AddInput("x", batched: true, 3, 8, 8);
        string y = OnnxModuleExporter.Export(builder, module, x, input);
        builder.AddOutput(y, "y", batched: true, expected.shape.Skip(1).ToArray());

        float[] actual = RunOnnx(builder.ToBytes(), "x", input, "y");
        float difference = MaxAbsDifference(expected, actual);
        Assert.IsLessThanOrEqualTo(Tolerance, difference, $"{name}: max |torch - onnx| = {difference}");
    }

    [TestMethod]
    [DataRow(CnnFamily.LeNet, false)]
    [DataRow(CnnFamily.Vgg, false)]
    [DataRow(CnnFamily.ResNet, false)]
    [DataRow(CnnFamily.ResNet, true)]
    [DataRow(CnnFamily.Inception, false)]
    [DataRow(CnnFamily.DenseNet, false)]
    public void WholeNetworksMatchInBothLayouts(CnnFamily family, bool bottleneck)
    {
        random.manual_seed(5);
        var architecture = new CnnArchitecture { Family = family, Depth = 3, Width = 8, HiddenSize = 32, GrowthRate = 6, Bottleneck = bottleneck };
        using var network = CnnNetwork.Create(architecture, 1, 28, 28, 10);
        // A few training steps move BatchNorm's running statistics away from their initial values.
        network.train();
        for (int i = 0; i < 3; i++)
            using (var batch = randn(16, 1, 28, 28))
                network.call(batch).Dispose();
        network.eval();
        using var input = rand(6, 784);
        using var expectedLogits = network.call(input.reshape(6, 1, 28, 28));
        using var expectedEmbedding = network.Embed(input.reshape(6, 1, 28, 28));

        float[] batched = RunOnnx(network.ExportOnnx("pixels", "embedding", "logits", OnnxLayout.Batch), "pixels", input, "logits");
        Assert.IsLessThanOrEqualTo(Tolerance, MaxAbsDifference(expectedLogits, batched));

        byte[] single = network.ExportOnnx("pixels", "embedding", "logits", OnnxLayout.SingleRow);
        for (int row = 0; row < 6; row++)
        {
            using var one = input[row];
            Assert.IsLessThanOrEqualTo(Tolerance, MaxAbsDifference(expectedLogits[row], RunOnnx(single, "pixels", one, "logits")));
            Assert.IsLessThanOrEqualTo(Tolerance, MaxAbsDifference(expectedEmbedding[row], RunOnnx(single, "pixels", one, "embedding")));
        }
    }

    [TestMethod]
    public void UnsupportedModulesAreNamedInTheError()
    {
        using var module = Sequential(("gelu", GELU()));
        using var input = randn(1, 3, 4, 4);
        var error = Assert.ThrowsExactly<NotSupportedException>(() =>
            OnnxModuleExporter.Export(new OnnxGraphBuilder(), module, "x", input));
        StringAssert.Contains(error.Message, "GELU");
    }

    private static Module<Tensor, Tensor> TrainedBatchNorm()
    {
        var norm = BatchNorm2d(3);
        norm.train();
        for (int i = 0; i < 5; i++)
            using (var batch = randn(8, 3, 8, 8) * 3 + 1)
                norm.call(batch).Dispose();
        using (no_grad())
        {
            norm.weight!.uniform_(0.5, 1.5);
            norm.bias!.uniform_(-0.5, 0.5);
        }
        return norm;
    }

    internal static float[] RunOnnx(byte[] model, string inputName, Tensor input, string outputName)
    {
        using var session = new InferenceSession(model);
        float[] data = input.contiguous().data<float>().ToArray();
        using var value = OrtValue.CreateTensorValueFromMemory(data, input.shape);
        using var outputs = session.Run(new RunOptions(), new Dictionary<string, OrtValue> { [inputName] = value }, [outputName]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static float MaxAbsDifference(Tensor expected, float[] actual)
    {
        float[] reference = expected.contiguous().data<float>().ToArray();
        Assert.HasCount(reference.Length, actual, "the ONNX output has the TorchSharp output's size");
        return reference.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
    }
}

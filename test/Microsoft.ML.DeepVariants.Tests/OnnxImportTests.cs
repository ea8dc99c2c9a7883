using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.DeepVariants.Sequences;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class OnnxImportTests
{
    public TestContext TestContext { get; set; } = null!;

    internal static string ResNet18Path => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");
    internal const string ResNet18Output = "Pooling395_Output_0";

    // Real images: Fashion-MNIST upscaled to 224 x 224, gray copied to three channels, 0..255 less a mid-grey mean.
    internal static Tensor RealImages(int count, int size = 224)
    {
        var rows = TestData.Test(new MLContext(), count).GetColumn<float[]>("Features").ToArray();
        var gray = tensor(rows.SelectMany(r => r).ToArray(), [count, 1, 28, 28]);
        var resized = nn.functional.interpolate(gray, [size, size], mode: InterpolationMode.Bilinear, align_corners: false);
        return (resized.expand(count, 3, size, size) * 255 - 114).contiguous();
    }

    [TestMethod]
    public void ImportedResNet18MatchesOnnxRuntimeOnRealImages()
    {
        Assert.IsTrue(File.Exists(ResNet18Path), $"the NuGet package copies ResNet18.onnx to {ResNet18Path}");
        byte[] onnx = File.ReadAllBytes(ResNet18Path);
        using var backbone = OnnxImporter.Import(onnx, ResNet18Output);
        var images = RealImages(4);
        using var noGrad = no_grad();
        var imported = backbone.call(images);
        CollectionAssert.AreEqual(new long[] { 4, 512, 1, 1 }, imported.shape, "the batch dimension is free");

        float worst = 0;
        for (int i = 0; i < 4; i++)
        {
            float[] expected = OnnxParityTests.RunOnnx(onnx, "Input247", images.narrow(0, i, 1), ResNet18Output);
            float[] actual = imported[i].reshape(-1).data<float>().ToArray();
            worst = Math.Max(worst, expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max());
        }
        TestContext.WriteLine($"ResNet18: imported module and ONNX Runtime differ by at most {worst:G3} over 4 x 512 features");
        Assert.IsLessThanOrEqualTo(1e-3f, worst);
        Assert.HasCount(22, backbone.named_parameters().Where(p => p.name.EndsWith(".weight") && p.parameter.dim() == 4));
    }

    [TestMethod]
    public void TheSpatialSizeIsFreeWhereTheGraphAllowsIt()
    {
        using var backbone = OnnxImporter.Import(File.ReadAllBytes(ResNet18Path), ResNet18Output);
        using var noGrad = no_grad();
        // The final 7x7 average pooling covers the whole map at 224 pixels, so it pools globally at 64 pixels too.
        var features = backbone.call(RealImages(2, size: 64));
        CollectionAssert.AreEqual(new long[] { 2, 512, 1, 1 }, features.shape);
        Assert.IsTrue(features.isfinite().all().item<bool>());
    }

    [TestMethod]
    public void UnsupportedOperatorsAndMissingOutputsAreNamed()
    {
        random.manual_seed(1);
        using var network = SequenceNetwork.Create(new SequenceArchitecture(), 2, 3);
        byte[] lstm = network.ExportOnnx("series", 10, "logits");
        var e = Assert.ThrowsExactly<NotSupportedException>(() => OnnxImporter.Import(lstm));
        StringAssert.Contains(e.Message, "ONNX operator 'IsNaN' (node 'isnan')");
        var missing = Assert.ThrowsExactly<ArgumentException>(() => OnnxImporter.Import(File.ReadAllBytes(ResNet18Path), "NoSuchNode"));
        StringAssert.Contains(missing.Message, "no value named 'NoSuchNode'");
        StringAssert.Contains(missing.Message, "'Pooling395_Output_0'");
    }
}

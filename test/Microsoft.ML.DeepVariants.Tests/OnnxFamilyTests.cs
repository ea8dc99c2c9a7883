using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// The graphs PyTorch's own exporter writes for the torchvision families, at opsets 13 and 17 (eng/onnx-fixtures.py, run
/// by the test command): each imports, and its output matches ONNX Runtime on the same graph and PyTorch itself.
/// </summary>
[TestClass]
public sealed class OnnxFamilyTests
{
    public TestContext TestContext { get; set; } = null!;

    internal static string Fixtures => Path.Combine(typeof(OnnxFamilyTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepoRoot").Value!, "artifacts", "onnx-fixtures");

    internal sealed record Reference(int Size, string Input, string Output, long[] OutputShape);

    internal sealed record Graph(string Family, int Opset, string File, int Size, int? Smaller, long Parameters, Reference[] References);

    internal static IReadOnlyList<Graph> Manifest()
    {
        string path = Path.Combine(Fixtures, "manifest.json");
        if (!File.Exists(path))
            return [];
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        return json.RootElement.GetProperty("graphs").EnumerateArray().Select(g => new Graph(
            g.GetProperty("family").GetString()!, g.GetProperty("opset").GetInt32(), g.GetProperty("file").GetString()!, g.GetProperty("size").GetInt32(),
            g.GetProperty("smaller").ValueKind == JsonValueKind.Null ? null : g.GetProperty("smaller").GetInt32(), g.GetProperty("parameters").GetInt64(),
            g.GetProperty("references").EnumerateArray().Select(r => new Reference(r.GetProperty("size").GetInt32(), r.GetProperty("input").GetString()!,
                r.GetProperty("output").GetString()!, r.GetProperty("outputShape").EnumerateArray().Select(d => d.GetInt64()).ToArray())).ToArray())).ToList();
    }

    internal static Graph Find(string family, int opset) =>
        Manifest().SingleOrDefault(g => g.Family == family && g.Opset == opset)
            ?? throw new AssertFailedException($"No test graph {family} at opset {opset} in {Fixtures}: run eng/onnx-fixtures.sh (eng/test.sh does).");

    public static IEnumerable<object[]> Graphs()
    {
        var graphs = Manifest();
        if (graphs.Count == 0)
            return [["(no test graphs)", 0]];
        return graphs.Select(g => new object[] { g.Family, g.Opset });
    }

    internal static float[] Floats(string file) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(Fixtures, file))).ToArray();

    [TestMethod]
    [DynamicData(nameof(Graphs))]
    public void ImportsAndMatchesOnnxRuntimeAndPyTorchAtEachSize(string family, int opset)
    {
        var graph = Find(family, opset);
        byte[] onnx = File.ReadAllBytes(Path.Combine(Fixtures, graph.File));
        using var imported = OnnxImporter.Import(onnx, source: graph.File);
        using var session = new InferenceSession(FreeSpatialSize(onnx));
        // Every weight the graph's Conv, Gemm, MatMul and normalisation nodes read is a parameter of the imported module. (PyTorch's
        // exporter folds batch normalisation into the convolution before it, so the graph holds fewer weights than the module.)
        long parameters = imported.parameters().Sum(p => p.numel());
        Assert.AreEqual(WeightsRead(onnx), parameters);
        var gaps = new List<string>();
        foreach (var reference in graph.References)
        {
            float[] input = Floats(reference.Input), expected = Floats(reference.Output);
            float[] ours;
            using (no_grad())
            using (var scope = NewDisposeScope())
                ours = imported.call(tensor(input, [2, 3, reference.Size, reference.Size])).contiguous().data<float>().ToArray();
            using var value = OrtValue.CreateTensorValueFromMemory(input, [2, 3, reference.Size, reference.Size]);
            using var run = new RunOptions();
            using var outputs = session.Run(run, new Dictionary<string, OrtValue> { ["input"] = value }, [session.OutputNames[0]]);
            float[] runtime = outputs[0].GetTensorDataAsSpan<float>().ToArray();

            Assert.HasCount(expected.Length, ours, $"output size at {reference.Size}x{reference.Size}");
            float scale = Math.Max(1, runtime.Max(Math.Abs));
            float gapRuntime = ours.Zip(runtime, (a, b) => Math.Abs(a - b)).Max(), gapTorch = ours.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
            gaps.Add($"{reference.Size}px: {gapRuntime / scale:E1} from ONNX Runtime, {gapTorch / scale:E1} from PyTorch (largest output {runtime.Max(Math.Abs):G3})");
            Assert.IsLessThanOrEqualTo(1e-4f * scale, gapRuntime, $"{family} opset {opset} at {reference.Size}x{reference.Size}: the import differs from ONNX Runtime by {gapRuntime}");
            Assert.IsLessThanOrEqualTo(1e-4f * scale, gapTorch, $"{family} opset {opset} at {reference.Size}x{reference.Size}: the import differs from PyTorch by {gapTorch}");
        }
        TestContext.WriteLine($"{family} opset {opset}: {parameters:N0} parameters, {imported.NodeNames.Count} nodes, {imported.Blocks.Count} blocks; {string.Join("; ", gaps)}");
    }

    [TestMethod]
    public void AnUnsupportedOperatorIsNamedWithItsNodeAndTheSupportedList()
    {
        var graph = new GraphProto { Name = "unsupported" };
        graph.Input.Add(new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float,
            Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimValue = 1 }, new TensorShapeProto.Types.Dimension { DimValue = 4 } } } } } });
        graph.Node.Add(new NodeProto { OpType = "Einsum", Name = "the_einsum", Input = { "x", "x" }, Output = { "y" } });
        graph.Output.Add(new ValueInfoProto { Name = "y" });
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        var error = Assert.ThrowsExactly<NotSupportedException>(() => OnnxImporter.Import(model.ToByteArray()));
        StringAssert.Contains(error.Message, "'Einsum'");
        StringAssert.Contains(error.Message, "'the_einsum'");
        StringAssert.Contains(error.Message, "Conv, ");
        foreach (string op in OnnxImporter.SupportedOperators)
            StringAssert.Contains(error.Message, op, "the message lists every operator the table has");
    }

    [TestMethod]
    public void ATruncatedGraphIsReportedWithItsName()
    {
        var graph = Manifest().FirstOrDefault() ?? throw new AssertFailedException($"No test graphs in {Fixtures}: run eng/onnx-fixtures.sh.");
        byte[] onnx = File.ReadAllBytes(Path.Combine(Fixtures, graph.File));
        var error = Assert.ThrowsExactly<InvalidDataException>(() => OnnxImporter.Import(onnx[..(onnx.Length / 3)], source: graph.File));
        StringAssert.Contains(error.Message, graph.File);
        StringAssert.Contains(error.Message, "truncated");
    }

    // Elements of the float initializers read as weights, per reading node (the exporter shares equal initializers, such as
    // zero biases, between nodes; the import gives each node its own): Conv/Gemm/LayerNormalization inputs 1 and 2, MatMul
    // input 1, BatchNormalization's scale and bias (its statistics are buffers).
    private static long WeightsRead(byte[] onnx)
    {
        var graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        var floats = graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float).ToDictionary(i => i.Name, i => i.Dims.Aggregate(1L, (a, b) => a * b));
        var aliases = graph.Node.Where(n => n.OpType == "Identity" && floats.ContainsKey(n.Input[0])).ToDictionary(n => n.Output[0], n => n.Input[0]);
        long read = 0;
        foreach (var node in graph.Node)
        {
            int[] weights = node.OpType switch
            {
                "Conv" or "Gemm" or "LayerNormalization" or "BatchNormalization" => [1, 2],
                "MatMul" => [1],
                _ => [],
            };
            foreach (int i in weights.Where(i => i < node.Input.Count))
                read += floats.GetValueOrDefault(aliases.GetValueOrDefault(node.Input[i], node.Input[i]));
        }
        return read;
    }

    // The same graph with a free height and width (and no stored intermediate shapes), so ONNX Runtime runs it at other sizes.
    internal static byte[] FreeSpatialSize(byte[] onnx)
    {
        var model = ModelProto.Parser.ParseFrom(onnx);
        model.Graph.ValueInfo.Clear();
        var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        foreach (var input in model.Graph.Input.Where(i => !initializers.Contains(i.Name)))
        {
            var dims = input.Type.TensorType.Shape.Dim;
            for (int i = 2; i < dims.Count; i++)
                dims[i] = new TensorShapeProto.Types.Dimension { DimParam = $"size{i}" };
        }
        foreach (var output in model.Graph.Output)
            if (output.Type?.TensorType is { } type)
                type.Shape = null;
        return model.ToByteArray();
    }
}

using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DeepVariants.Cli;

/// <summary>Reads ONNX graphs (OnnxSharp's protobuf types) and describes them: inputs, outputs, operators, parameters.</summary>
internal static class OnnxFile
{
    /// <summary>
    /// True when <paramref name="data"/> is an ONNX model, as it is or after the length prefix ML.NET writes before the
    /// bytes it keeps in a model zip; <paramref name="model"/> is then the graph's own bytes.
    /// </summary>
    public static bool TryParse(byte[] data, out byte[] model)
    {
        foreach (int offset in new[] { 0, 4, 8 })
        {
            if (data.Length <= offset)
                break;
            var candidate = offset == 0 ? data : data[offset..];
            try
            {
                var proto = ModelProto.Parser.ParseFrom(candidate);
                if (proto.IrVersion > 0 && proto.Graph is { Node.Count: > 0 } && proto.OpsetImport.Count > 0)
                {
                    model = candidate;
                    return true;
                }
            }
            catch (InvalidProtocolBufferException)
            {
            }
        }
        model = [];
        return false;
    }

    /// <summary>The model in <paramref name="path"/>, or a message that names the file.</summary>
    public static ModelProto Read(string path, string option)
    {
        if (!File.Exists(path))
            throw new UsageException($"{option}: ONNX file '{path}' does not exist.");
        if (!TryParse(File.ReadAllBytes(path), out var bytes))
            throw new UsageException($"{option}: '{path}' is not an ONNX model (it does not parse as one, or it has no graph).");
        return ModelProto.Parser.ParseFrom(bytes);
    }

    /// <summary>A value's element type and shape, as "float[N,1,28,28]".</summary>
    public static string Describe(ValueInfoProto value)
    {
        if (value.Type?.TensorType is not { } tensor)
            return value.Type?.ValueCase.ToString() ?? "?";
        string element = ((TensorProto.Types.DataType)tensor.ElemType).ToString().ToLowerInvariant();
        var dims = tensor.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue.ToString() : d.DimParam is { Length: > 0 } p ? p : "?");
        return dims is null ? element : $"{element}[{string.Join(",", dims)}]";
    }

    /// <summary>Parameters: the elements of every initializer (and of constant nodes' tensors).</summary>
    public static long Parameters(ModelProto model) =>
        model.Graph.Initializer.Sum(t => t.Dims.Aggregate(1L, (a, d) => a * d))
        + model.Graph.Node.Where(n => n.OpType == "Constant").SelectMany(n => n.Attribute).Where(a => a.T is not null).Sum(a => a.T.Dims.Aggregate(1L, (x, d) => x * d));

    /// <summary>The operators and how many nodes use each, most used first.</summary>
    public static IEnumerable<(string Operator, int Count)> Operators(ModelProto model) =>
        model.Graph.Node.GroupBy(n => string.IsNullOrEmpty(n.Domain) ? n.OpType : $"{n.Domain}.{n.OpType}")
            .Select(g => (g.Key, g.Count())).OrderByDescending(g => g.Item2).ThenBy(g => g.Key, StringComparer.Ordinal);

    /// <summary>The opsets the model imports, as "ai.onnx 17".</summary>
    public static string Opsets(ModelProto model) =>
        string.Join(", ", model.OpsetImport.Select(o => $"{(string.IsNullOrEmpty(o.Domain) ? "ai.onnx" : o.Domain)} {o.Version}"));
}

using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>
/// Builds an ONNX graph (opset 17, IR 8) node by node, naming values uniquely. Weights are copied
/// from TorchSharp tensors as raw little-endian data.
/// </summary>
public sealed class OnnxGraphBuilder
{
    /// <summary>The opset the exporter writes.</summary>
    public const int OpsetVersion = 17;

    private readonly GraphProto _graph;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Starts an empty graph.</summary>
    public OnnxGraphBuilder(string graphName = "DeepVariants")
    {
        _graph = new GraphProto { Name = graphName };
    }

    /// <summary>Declares an input of any element type; each dimension is a size (long) or a symbolic name (string).</summary>
    public string AddInput(string name, TensorProto.Types.DataType elementType, params object[] dims)
    {
        Reserve(name);
        _graph.Input.Add(ValueInfo(name, elementType, dims));
        return name;
    }

    /// <summary>Declares <paramref name="value"/> an output called <paramref name="name"/>; each dimension is a size (long) or a symbolic name (string).</summary>
    public void AddOutput(string value, string name, TensorProto.Types.DataType elementType, params object[] dims)
    {
        if (value != name)
        {
            Reserve(name);
            _graph.Node.Add(new NodeProto { OpType = "Identity", Name = name, Input = { value }, Output = { name } });
        }
        _graph.Output.Add(ValueInfo(name, elementType, dims));
    }

    /// <summary>Declares a float input of shape <paramref name="dims"/>, after a free batch dimension when <paramref name="batched"/>.</summary>
    public string AddInput(string name, bool batched, params long[] dims)
    {
        return AddInput(name, TensorProto.Types.DataType.Float, Dims(batched, dims));
    }

    /// <summary>Declares <paramref name="value"/> a graph output called <paramref name="name"/> of shape <paramref name="dims"/>, after a free batch dimension when <paramref name="batched"/>.</summary>
    public void AddOutput(string value, string name, bool batched, params long[] dims) =>
        AddOutput(value, name, TensorProto.Types.DataType.Float, Dims(batched, dims));

    /// <summary>Adds a float initializer holding a copy of <paramref name="tensor"/>.</summary>
    public string AddInitializer(string hint, Tensor tensor)
    {
        using var cpuTensor = tensor.detach().cpu().to_type(ScalarType.Float32).contiguous();
        float[] values = cpuTensor.data<float>().ToArray();
        var proto = new TensorProto
        {
            Name = Unique(hint),
            DataType = (int)TensorProto.Types.DataType.Float,
            RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())),
        };
        proto.Dims.AddRange(cpuTensor.shape);
        _graph.Initializer.Add(proto);
        return proto.Name;
    }

    /// <summary>Adds a 1-D int64 initializer (shapes, axes).</summary>
    public string AddInitializer(string hint, long[] values)
    {
        var proto = new TensorProto { Name = Unique(hint), DataType = (int)TensorProto.Types.DataType.Int64 };
        proto.Dims.Add(values.Length);
        proto.Int64Data.AddRange(values);
        _graph.Initializer.Add(proto);
        return proto.Name;
    }

    /// <summary>Adds a node with one output and returns the output's name.</summary>
    public string AddNode(string opType, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        string output = Unique(opType.ToLowerInvariant());
        var node = new NodeProto { OpType = opType, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return output;
    }

    /// <summary>Adds a node with <paramref name="outputs"/> outputs (an LSTM's Y and Y_h, say) and returns their names; an empty input name skips an optional input.</summary>
    public string[] AddNode(string opType, IEnumerable<string> inputs, int outputs, params AttributeProto[] attributes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputs);
        string first = AddNode(opType, inputs, attributes);
        var node = _graph.Node[^1];
        var names = new string[outputs];
        names[0] = first;
        for (int i = 1; i < outputs; i++)
        {
            names[i] = Unique($"{first}_{i}");
            node.Output.Add(names[i]);
        }
        return names;
    }

    /// <summary>An integer attribute.</summary>
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>A float attribute.</summary>
    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A string attribute.</summary>
    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>A list-of-integers attribute.</summary>
    public static AttributeProto Ints(string name, IEnumerable<long> values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    /// <summary>The finished model, serialized, with <paramref name="metadata"/> as its metadata properties.</summary>
    public byte[] ToBytes(IReadOnlyDictionary<string, string>? metadata = null)
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "DeepVariants.ML",
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OpsetVersion });
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model.ToByteArray();
    }

    private static object[] Dims(bool batched, long[] dims) =>
        batched ? ["batch", .. dims.Cast<object>()] : dims.Cast<object>().ToArray();

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType elementType, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (object d in dims)
            shape.Dim.Add(d is string symbol
                ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType, Shape = shape } },
        };
    }

    private string Unique(string hint)
    {
        string name = hint;
        for (int i = 1; !_names.Add(name); i++)
            name = $"{hint}_{i}";
        return name;
    }

    private void Reserve(string name)
    {
        if (!_names.Add(name))
            throw new ArgumentException($"The ONNX value name '{name}' is already used in this graph.", nameof(name));
    }
}

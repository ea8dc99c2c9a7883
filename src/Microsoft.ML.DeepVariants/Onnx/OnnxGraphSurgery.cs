using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>
/// Edits a pretrained ONNX graph for serving: cuts it at a value, puts a per-channel preprocessing in front
/// (channel order and mean), flattens the output, frees or removes the batch dimension, optionally replaces
/// weights with trained ones and appends a linear head.
/// </summary>
internal static class OnnxGraphSurgery
{
    /// <summary>What goes in front of the backbone: the input's channels reordered, then each channel less its mean, times a scale.</summary>
    public sealed record Preprocessing(int Channels, int Height, int Width, int[] ChannelOrder, float[] ChannelMeans, float Scale);

    /// <summary>
    /// A graph from input <paramref name="inputName"/> (C*H*W values, per row) to <paramref name="outputName"/> (the
    /// backbone cut at <paramref name="cutAt"/>, flattened to <paramref name="featureWidth"/> values, then the optional head). The batch dimension is free in the
    /// batched layout and absent in the single-row one (what ML.NET's ONNX transformer feeds).
    /// </summary>
    public static byte[] Build(byte[] backbone, string cutAt, Preprocessing preprocessing, string inputName, string outputName, bool batched,
        IReadOnlySet<string> globalPools, long featureWidth, IReadOnlyDictionary<string, Tensor>? replacedInitializers = null,
        (Tensor Weight, Tensor Bias)? head = null)
    {
        var model = ModelProto.Parser.ParseFrom(backbone);
        var graph = model.Graph;
        var initializerNames = graph.Initializer.Select(i => i.Name).ToHashSet();
        var originalInput = graph.Input.First(i => !initializerNames.Contains(i.Name));
        var kept = OnnxGraphWalk.Needed(graph.Node, cutAt);
        var usedInitializers = kept.SelectMany(n => n.Input).ToHashSet();
        // The new input may have the backbone's own input's name (a saved DeepVariants CNN reads "Features" too): rename the latter.
        string backboneInput = originalInput.Name;
        if (backboneInput == inputName)
        {
            backboneInput = "dv_backbone_input";
            foreach (var node in kept)
                for (int i = 0; i < node.Input.Count; i++)
                    if (node.Input[i] == inputName)
                        node.Input[i] = backboneInput;
        }

        var result = new GraphProto { Name = graph.Name + "_cut" };
        var p = preprocessing;
        long size = (long)p.Channels * p.Height * p.Width;
        result.Input.Add(ValueInfo(inputName, batched ? [Symbolic("N"), Fixed(size)] : [Fixed(size)]));
        string Unique(string hint) => $"dv_{hint}";
        void Constant(string name, long[] dims, float[]? floats = null, long[]? longs = null)
        {
            var t = new TensorProto { Name = name, DataType = (int)(floats is null ? TensorProto.Types.DataType.Int64 : TensorProto.Types.DataType.Float) };
            t.Dims.AddRange(dims);
            if (floats is not null) t.FloatData.AddRange(floats); else t.Int64Data.AddRange(longs!);
            result.Initializer.Add(t);
        }
        void Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
        {
            var n = new NodeProto { OpType = op, Name = output };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            n.Attribute.AddRange(attributes);
            result.Node.Add(n);
        }
        Constant(Unique("image_shape"), [4], longs: [-1, p.Channels, p.Height, p.Width]);
        Node("Reshape", [inputName, Unique("image_shape")], Unique("image"));
        Constant(Unique("channel_order"), [p.ChannelOrder.Length], longs: p.ChannelOrder.Select(c => (long)c).ToArray());
        Node("Gather", [Unique("image"), Unique("channel_order")], Unique("reordered"), new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        Constant(Unique("channel_means"), [1, p.ChannelOrder.Length, 1, 1], floats: p.ChannelMeans);
        Node("Sub", [Unique("reordered"), Unique("channel_means")], Unique("centred"));
        Constant(Unique("scale"), [1], floats: [p.Scale]);
        Node("Mul", [Unique("centred"), Unique("scale")], backboneInput);

        foreach (var init in graph.Initializer.Where(i => usedInitializers.Contains(i.Name)))
            result.Initializer.Add(replacedInitializers is not null && replacedInitializers.TryGetValue(init.Name, out var trained) ? FloatTensor(init.Name, trained) : init);
        foreach (var node in kept)
        {
            if (node.OpType == "AveragePool" && globalPools.Contains(node.Name))
            {
                var global = new NodeProto { OpType = "GlobalAveragePool", Name = node.Name };
                global.Input.AddRange(node.Input);
                global.Output.AddRange(node.Output);
                result.Node.Add(global);
            }
            else
            {
                result.Node.Add(node);
            }
        }
        Node("Flatten", [cutAt], Unique("features"), new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        string last = Unique("features");
        long width = featureWidth;
        if (head is { } h)
        {
            result.Initializer.Add(FloatTensor(Unique("head_weight"), h.Weight));
            result.Initializer.Add(FloatTensor(Unique("head_bias"), h.Bias));
            Node("Gemm", [last, Unique("head_weight"), Unique("head_bias")], Unique("logits"), new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            last = Unique("logits");
            width = h.Weight.shape[0];
        }
        if (batched)
        {
            Node("Identity", [last], outputName);
            result.Output.Add(ValueInfo(outputName, [Symbolic("N"), Fixed(width)]));
        }
        else
        {
            Constant(Unique("row_shape"), [1], longs: [-1]);
            Node("Reshape", [last, Unique("row_shape")], outputName);
            result.Output.Add(ValueInfo(outputName, [Fixed(width)]));
        }
        var output = new ModelProto { IrVersion = model.IrVersion, ProducerName = "DeepVariants.ML", Graph = result };
        output.OpsetImport.AddRange(model.OpsetImport);
        return output.ToByteArray();
    }

    private static TensorShapeProto.Types.Dimension Fixed(long value) => new() { DimValue = value };
    private static TensorShapeProto.Types.Dimension Symbolic(string name) => new() { DimParam = name };

    private static ValueInfoProto ValueInfo(string name, TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims);
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } } };
    }

    private static TensorProto FloatTensor(string name, Tensor value)
    {
        using var cpu = value.detach().cpu().contiguous();
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float,
            RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan())) };
        t.Dims.AddRange(cpu.shape);
        return t;
    }
}

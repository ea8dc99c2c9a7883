using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>
/// Post-training static int8 quantization of an ONNX graph in the QDQ form ONNX Runtime fuses into integer kernels:
/// every <c>Conv</c>, <c>Gemm</c> and <c>MatMul</c> with a constant weight gets <c>QuantizeLinear</c>/<c>DequantizeLinear</c>
/// around its activation input and its output (uint8, asymmetric, per tensor, from calibrated ranges), its weight
/// stored as int8 (symmetric, per output channel) behind a <c>DequantizeLinear</c>, and its bias as int32 at the scale
/// activation × weight. Batch normalisations that follow a convolution are folded into it first, as inference does.
/// Any graph works, a DeepVariants export or an imported backbone, at opset 13 or later (per-axis quantization).
/// </summary>
internal static class OnnxQuantization
{
    private static readonly HashSet<string> Quantizable = ["Conv", "Gemm", "MatMul"];

    /// <summary>The tensors whose ranges calibration measures: each quantizable node's activation input and output.</summary>
    public static IReadOnlyList<string> CalibrationTensors(ModelProto model)
    {
        var constants = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        return Targets(model.Graph, constants).SelectMany(n => new[] { n.Input[0], QuantizedOutput(model.Graph, n) }).Distinct().ToList();
    }

    /// <summary>A copy of <paramref name="model"/> that also outputs <paramref name="tensors"/> (float), for calibration.</summary>
    public static byte[] WithOutputs(ModelProto model, IEnumerable<string> tensors)
    {
        var copy = model.Clone();
        var outputs = copy.Graph.Output.Select(o => o.Name).ToHashSet();
        foreach (string name in tensors.Where(outputs.Add))
            copy.Graph.Output.Add(new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
        return copy.ToByteArray();
    }

    /// <summary>Folds each convolution's following batch normalisation into the convolution's weight and bias, in place.</summary>
    public static int FoldBatchNorms(ModelProto model)
    {
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(i => i.Name);
        int folded = 0;
        foreach (var conv in graph.Node.Where(n => n.OpType == "Conv").ToList())
        {
            var consumers = graph.Node.Where(n => n.Input.Contains(conv.Output[0])).ToList();
            if (consumers is not [{ OpType: "BatchNormalization" } norm] || graph.Output.Any(o => o.Name == conv.Output[0])
                || !initializers.TryGetValue(conv.Input[1], out var weightProto)
                || norm.Input.Skip(1).Any(i => !initializers.ContainsKey(i)))
                continue;
            float epsilon = norm.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            float[] gamma = Floats(initializers[norm.Input[1]]), beta = Floats(initializers[norm.Input[2]]);
            float[] mean = Floats(initializers[norm.Input[3]]), variance = Floats(initializers[norm.Input[4]]);
            float[] weight = Floats(weightProto);
            int channels = gamma.Length, perChannel = weight.Length / channels;
            float[] bias = conv.Input.Count > 2 && initializers.TryGetValue(conv.Input[2], out var b) ? Floats(b) : new float[channels];
            for (int c = 0; c < channels; c++)
            {
                float factor = gamma[c] / MathF.Sqrt(variance[c] + epsilon);
                for (int i = 0; i < perChannel; i++)
                    weight[c * perChannel + i] *= factor;
                bias[c] = (bias[c] - mean[c]) * factor + beta[c];
            }
            string weightName = conv.Input[1] + "_folded", biasName = conv.Output[0] + "_folded_bias";
            graph.Initializer.Add(FloatTensor(weightName, weightProto.Dims, weight));
            graph.Initializer.Add(FloatTensor(biasName, [channels], bias));
            conv.Input[1] = weightName;
            if (conv.Input.Count > 2)
                conv.Input[2] = biasName;
            else
                conv.Input.Add(biasName);
            conv.Output[0] = norm.Output[0];
            graph.Node.Remove(norm);
            folded++;
        }
        RemoveUnused(graph);
        return folded;
    }

    /// <summary>Quantizes <paramref name="model"/> in place with the calibrated ranges (min, max) of <see cref="CalibrationTensors"/>; returns the nodes quantized.</summary>
    public static int Quantize(ModelProto model, IReadOnlyDictionary<string, (float Min, float Max)> ranges)
    {
        if (model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max() < 13)
            throw new NotSupportedException("int8 quantization writes per-channel QuantizeLinear/DequantizeLinear, which need ONNX opset 13 or later; this graph's opset is older.");
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(i => i.Name);
        var dequantized = new Dictionary<string, string>();
        var added = new List<NodeProto>();
        int count = 0;
        foreach (var node in Targets(graph, initializers.Keys.ToHashSet()).ToList())
        {
            string input = node.Input[0], output = QuantizedOutput(graph, node);
            if (!ranges.TryGetValue(input, out var inputRange) || !ranges.TryGetValue(output, out var outputRange))
                continue;
            var (inputScale, inputZero) = Affine(inputRange);
            if (!dequantized.TryGetValue(input, out string? inputDq))
                dequantized[input] = inputDq = QuantizeDequantize(graph, added, input, inputScale, inputZero);
            node.Input[0] = inputDq;

            var weight = initializers[node.Input[1]];
            // Output channels: Conv's weight is [out, in, k...]; Gemm's [out, in] with transB, [in, out] without; MatMul's [in, out].
            bool transB = node.Attribute.FirstOrDefault(a => a.Name == "transB")?.I == 1;
            int axis = node.OpType == "Conv" || (node.OpType == "Gemm" && transB) ? 0 : 1;
            var (weightDq, weightScales) = QuantizeWeight(graph, added, weight, axis);
            node.Input[1] = weightDq;
            if (node.OpType != "MatMul" && node.Input.Count > 2 && initializers.TryGetValue(node.Input[2], out var bias))
                node.Input[2] = QuantizeBias(graph, added, bias, inputScale, weightScales);

            count++;
            // What the model outputs (the logits) stays float: 256 levels over the whole range would flip close classes.
            // So does a residual branch's sum input (an Add reads it): the sum of two quantized ranges compounds their error.
            if (ReachesGraphOutput(graph, output) || graph.Node.Any(n => n.OpType == "Add" && n.Input.Contains(output)))
                continue;
            // The output, quantized as ONNX Runtime's QDQ kernels expect; its consumers read the dequantized value under the old name.
            string raw = output + "_float";
            var producer = graph.Node.First(n => n.Output.Contains(output));
            producer.Output[producer.Output.IndexOf(output)] = raw;
            var (outputScale, outputZero) = Affine(outputRange);
            added.Add(QdqNode("QuantizeLinear", [raw, Scalar(graph, output + "_scale", outputScale), ZeroPoint(graph, output + "_zero", outputZero)], output + "_q"));
            added.Add(QdqNode("DequantizeLinear", [output + "_q", output + "_scale", output + "_zero"], output));
            // A quantizable node reading this output directly reads it as it is: dequantized already, at the same range.
            dequantized[output] = output;
        }
        // Nodes in topological order: each new node right after the producer of its first input (or first, for a graph input).
        foreach (var node in added)
        {
            int at = graph.Node.ToList().FindIndex(n => n.Output.Contains(node.Input[0]));
            graph.Node.Insert(at + 1, node);
        }
        RemoveUnused(graph);
        return count;
    }

    // The tensor quantized after a node: its output, or, when a Relu alone reads it, the Relu's (the positive half gets
    // all 256 levels, and ONNX Runtime folds the Relu into the integer kernel).
    private static string QuantizedOutput(GraphProto graph, NodeProto node)
    {
        string output = node.Output[0];
        var readers = graph.Node.Where(n => n.Input.Contains(output)).ToList();
        return readers is [{ OpType: "Relu" } relu] && graph.Output.All(o => o.Name != output) ? relu.Output[0] : output;
    }

    private static readonly HashSet<string> ShapeOnly = ["Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"];

    // Whether the tensor is a graph output, or becomes one through shape-only nodes.
    private static bool ReachesGraphOutput(GraphProto graph, string tensor)
    {
        if (graph.Output.Any(o => o.Name == tensor))
            return true;
        var readers = graph.Node.Where(n => n.Input.Contains(tensor)).ToList();
        return readers.Count > 0 && readers.All(n => ShapeOnly.Contains(n.OpType)) && readers.Any(n => n.Output.Any(o => ReachesGraphOutput(graph, o)));
    }

    // Quantizable nodes with a constant weight (input 1 an initializer).
    private static IEnumerable<NodeProto> Targets(GraphProto graph, ISet<string> constants) =>
        graph.Node.Where(n => Quantizable.Contains(n.OpType) && n.Input.Count >= 2 && constants.Contains(n.Input[1]) && !constants.Contains(n.Input[0]));

    // uint8 affine parameters for a range that includes zero (so zero is exact, as padding needs), on 7 of the 8 bits:
    // x86 integer kernels without VNNI add pairs of uint8 x int8 products in int16, which full-range activations times
    // full-range weights overflow (255 x 127 x 2 > 32,767; 127 x 127 x 2 is not). A value beyond the calibrated range
    // still quantizes up to 255, so the margin holds for values within it.
    private const int ActivationLevels = 127;

    private static (float Scale, byte Zero) Affine((float Min, float Max) range)
    {
        float min = Math.Min(0, range.Min), max = Math.Max(0, range.Max);
        float scale = max > min ? (max - min) / ActivationLevels : 1f;
        return (scale, (byte)Math.Clamp(MathF.Round(-min / scale), 0, ActivationLevels));
    }

    private static string QuantizeDequantize(GraphProto graph, List<NodeProto> added, string tensor, float scale, byte zero)
    {
        string scaleName = Scalar(graph, tensor + "_scale", scale), zeroName = ZeroPoint(graph, tensor + "_zero", zero);
        added.Add(QdqNode("QuantizeLinear", [tensor, scaleName, zeroName], tensor + "_q"));
        added.Add(QdqNode("DequantizeLinear", [tensor + "_q", scaleName, zeroName], tensor + "_dq"));
        return tensor + "_dq";
    }

    private static (string Name, float[] Scales) QuantizeWeight(GraphProto graph, List<NodeProto> added, TensorProto weight, int axis)
    {
        float[] values = Floats(weight);
        long[] dims = [.. weight.Dims];
        int channels = (int)dims[axis];
        long inner = dims.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
        var scales = new float[channels];
        for (long i = 0; i < values.Length; i++)
        {
            int c = (int)(i / inner % channels);
            scales[c] = Math.Max(scales[c], Math.Abs(values[i]));
        }
        const int Levels = 127;
        for (int c = 0; c < channels; c++)
            scales[c] = scales[c] > 0 ? scales[c] / Levels : 1f;
        var quantized = new sbyte[values.Length];
        for (long i = 0; i < values.Length; i++)
            quantized[i] = (sbyte)Math.Clamp(MathF.Round(values[i] / scales[(int)(i / inner % channels)]), -Levels, Levels);
        string name = weight.Name + "_int8";
        var q = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int8, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(quantized.AsSpan())) };
        q.Dims.AddRange(dims);
        graph.Initializer.Add(q);
        graph.Initializer.Add(FloatTensor(name + "_scale", [channels], scales));
        var zeros = new TensorProto { Name = name + "_zero", DataType = (int)TensorProto.Types.DataType.Int8, RawData = ByteString.CopyFrom(new byte[channels]) };
        zeros.Dims.Add(channels);
        graph.Initializer.Add(zeros);
        var dq = QdqNode("DequantizeLinear", [name, name + "_scale", name + "_zero"], weight.Name + "_dq");
        dq.Attribute.Add(OnnxGraphBuilder.Int("axis", axis));
        // A constant-only node: placed first, where any consumer follows it.
        graph.Node.Insert(0, dq);
        return (weight.Name + "_dq", scales);
    }

    private static string QuantizeBias(GraphProto graph, List<NodeProto> added, TensorProto bias, float inputScale, float[] weightScales)
    {
        float[] values = Floats(bias);
        if (values.Length != weightScales.Length)
            return bias.Name;  // a broadcast bias of another shape stays float
        var scales = weightScales.Select(w => inputScale * w).ToArray();
        var quantized = values.Select((v, c) => (int)Math.Clamp(Math.Round(v / scales[c]), int.MinValue + 1, int.MaxValue)).ToArray();
        string name = bias.Name + "_int32";
        var q = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int32, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(quantized.AsSpan())) };
        q.Dims.AddRange(bias.Dims);
        graph.Initializer.Add(q);
        graph.Initializer.Add(FloatTensor(name + "_scale", [scales.Length], scales));
        var zeros = new TensorProto { Name = name + "_zero", DataType = (int)TensorProto.Types.DataType.Int32, RawData = ByteString.CopyFrom(new byte[4 * scales.Length]) };
        zeros.Dims.Add(scales.Length);
        graph.Initializer.Add(zeros);
        var dq = QdqNode("DequantizeLinear", [name, name + "_scale", name + "_zero"], bias.Name + "_dq");
        dq.Attribute.Add(OnnxGraphBuilder.Int("axis", 0));
        graph.Node.Insert(0, dq);
        return bias.Name + "_dq";
    }

    private static NodeProto QdqNode(string op, string[] inputs, string output)
    {
        var node = new NodeProto { OpType = op, Name = "dv_" + op + "_" + output };  // node names must be unique too
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        return node;
    }

    private static string Scalar(GraphProto graph, string name, float value)
    {
        if (graph.Initializer.All(i => i.Name != name))
            graph.Initializer.Add(FloatTensor(name, [], [value]));
        return name;
    }

    private static string ZeroPoint(GraphProto graph, string name, byte value)
    {
        if (graph.Initializer.All(i => i.Name != name))
            graph.Initializer.Add(new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Uint8, RawData = ByteString.CopyFrom([value]) });
        return name;
    }

    private static TensorProto FloatTensor(string name, IEnumerable<long> dims, float[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        t.Dims.AddRange(dims);
        return t;
    }

    private static float[] Floats(TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw new NotSupportedException($"Initializer '{t.Name}' is not float (ONNX type {t.DataType}); only float graphs are quantized.");
        return t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : [.. t.FloatData];
    }

    // Initializers no node reads any more (the float weights that were replaced).
    private static void RemoveUnused(GraphProto graph)
    {
        var used = graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)).ToHashSet();
        foreach (var unused in graph.Initializer.Where(i => !used.Contains(i.Name)).ToList())
            graph.Initializer.Remove(unused);
    }
}

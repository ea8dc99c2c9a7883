using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>
/// One operator of the table: how to make its node and, for operators without weights, the kernel itself, so that a node
/// whose inputs are all constants can be computed once at import.
/// </summary>
internal sealed record OnnxOperator(Func<NodeProto, ImportContext, OnnxNode> Create, Func<Tensor?[], OnnxAttributes, Tensor[]>? Kernel = null);

/// <summary>The attributes of one ONNX node, read with their ONNX defaults.</summary>
internal sealed class OnnxAttributes(NodeProto node, int opset)
{
    /// <summary>The graph's opset, where an operator's defaults changed between opsets.</summary>
    public int Opset => opset;

    private AttributeProto? Find(string name) => node.Attribute.FirstOrDefault(a => a.Name == name);

    public bool Has(string name) => Find(name) is not null;
    public long Int(string name, long fallback) => Find(name) is { } a ? a.I : fallback;
    public float Float(string name, float fallback) => Find(name) is { } a ? a.F : fallback;
    public long[]? Ints(string name) => Find(name)?.Ints.ToArray();
    public float[]? Floats(string name) => Find(name)?.Floats.ToArray();
    public string String(string name, string fallback) => Find(name) is { } a ? a.S.ToStringUtf8() : fallback;
    public TensorProto? Tensor(string name) => Find(name)?.T;
}

/// <summary>What every imported node sees of the graph it came from.</summary>
internal sealed class ImportContext(Dictionary<string, Tensor> initializers, Dictionary<string, string> aliases, int opset)
{
    /// <summary>Initializers and folded constants by value name.</summary>
    public Dictionary<string, Tensor> Initializers { get; } = initializers;

    /// <summary>Values that are an initializer under another name (an Identity of a weight): value to initializer.</summary>
    public Dictionary<string, string> Aliases { get; } = aliases;

    /// <summary>The graph's default-domain opset.</summary>
    public int Opset { get; } = opset;

    public bool IsConstant(string name) => name.Length > 0 && Initializers.ContainsKey(name);

    private readonly HashSet<Tensor> _claimed = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The initializer <paramref name="name"/> as a parameter. The first claim takes the tensor itself (a parameter takes
    /// over its native handle, so every name that refers to it now refers to the parameter); a weight two nodes share
    /// gives the second its own copy (PyTorch's exporter shares equal initializers, such as zero biases, between nodes).
    /// </summary>
    public Parameter Claim(string name, string node, string op)
    {
        var tensor = Initializers.GetValueOrDefault(name) ?? throw new NotSupportedException(
            $"ONNX node '{node}' ({op}) takes its weights from '{name}', which is not an initializer; the importer needs constant weights.");
        if (_claimed.Contains(tensor))
            return new Parameter(tensor.detach().clone());
        var parameter = new Parameter(tensor);
        foreach (var key in Initializers.Where(p => ReferenceEquals(p.Value, tensor)).Select(p => p.Key).ToList())
            Initializers[key] = parameter;
        _claimed.Add(parameter);
        return parameter;
    }

    /// <summary>The graph initializer a value reads (through an Identity alias), for writing trained weights back.</summary>
    public string Source(string name) => Aliases.GetValueOrDefault(name, name);
}

/// <summary>
/// The operators the importer reads, in one table: ONNX operator name to node factory. The supported list, the error for
/// an unsupported operator and the dispatch all come from it, so they cannot drift apart. Operators with weights (Conv,
/// BatchNormalization, Gemm, MatMul, LayerNormalization) get nodes whose weights are parameters; the rest are kernels over
/// tensors, with ONNX's semantics (broadcasting, negative axes, opset differences such as attributes that became inputs).
/// Shape sub-graphs (Shape, Gather, Concat, Reshape of shapes) run on int64 tensors on the CPU, on the real input's shape,
/// so they hold at any input size.
/// </summary>
internal static class OnnxOperators
{
    public static readonly IReadOnlyDictionary<string, OnnxOperator> Table = new Dictionary<string, OnnxOperator>
    {
        ["Conv"] = new((n, c) => new ConvNode(n, c)),
        ["BatchNormalization"] = new((n, c) => new BatchNormNode(n, c)),
        ["Gemm"] = new((n, c) => new GemmNode(n, c)),
        ["MatMul"] = new((n, c) => new MatMulNode(n, c)),
        ["LayerNormalization"] = new((n, c) => new LayerNormNode(n, c)),
        ["MaxPool"] = new((n, c) => new PoolNode(n, c)),
        ["AveragePool"] = new((n, c) => new PoolNode(n, c)),
        ["GlobalAveragePool"] = Kernel((x, a) => [x[0]!.mean(Enumerable.Range(2, (int)x[0]!.dim() - 2).Select(i => (long)i).ToArray(), keepdim: true)]),
        ["GlobalMaxPool"] = Kernel((x, a) => [x[0]!.flatten(2).amax([2], keepdim: true).reshape([.. x[0]!.shape.Take(2), .. Enumerable.Repeat(1L, (int)x[0]!.dim() - 2)])]),
        ["Relu"] = Kernel((x, a) => [nn.functional.relu(x[0]!)]),
        ["LeakyRelu"] = Kernel((x, a) => [nn.functional.leaky_relu(x[0]!, a.Float("alpha", 0.01f))]),
        ["Sigmoid"] = Kernel((x, a) => [x[0]!.sigmoid()]),
        ["Tanh"] = Kernel((x, a) => [x[0]!.tanh()]),
        ["Erf"] = Kernel((x, a) => [x[0]!.erf()]),
        ["Exp"] = Kernel((x, a) => [x[0]!.exp()]),
        ["Log"] = Kernel((x, a) => [x[0]!.log()]),
        ["Sqrt"] = Kernel((x, a) => [x[0]!.sqrt()]),
        ["Abs"] = Kernel((x, a) => [x[0]!.abs()]),
        ["Neg"] = Kernel((x, a) => [x[0]!.neg()]),
        ["Reciprocal"] = Kernel((x, a) => [x[0]!.reciprocal()]),
        ["Clip"] = Kernel(Clip),
        ["HardSigmoid"] = Kernel((x, a) => [x[0]!.Times(a.Float("alpha", 0.2f)).Plus(a.Float("beta", 0.5f)).clamp(Scalars.Zero, Scalars.One)]),
        ["HardSwish"] = Kernel((x, a) => [x[0]! * x[0]!.Times(1.0 / 6).Plus(0.5).clamp(Scalars.Zero, Scalars.One)]),
        ["Softmax"] = Kernel((x, a) => [Normalized(x[0]!, a, log: false)]),
        ["LogSoftmax"] = Kernel((x, a) => [Normalized(x[0]!, a, log: true)]),
        ["Add"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p.Plus(q))]),
        ["Sub"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p - q)]),
        ["Mul"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p * q)]),
        ["Div"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => !p.dtype.IsFloat() ? p.div(q, RoundingMode.trunc) : p / q)]),
        ["Pow"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p.pow(q))]),
        ["Max"] = Kernel((x, a) => [x.Skip(1).Aggregate(x[0]!, (p, q) => Same(p, q!, maximum))]),
        ["Min"] = Kernel((x, a) => [x.Skip(1).Aggregate(x[0]!, (p, q) => Same(p, q!, minimum))]),
        ["Sum"] = Kernel((x, a) => [x.Skip(1).Aggregate(x[0]!, (p, q) => Same(p, q!, (u, v) => u.Plus(v)))]),
        ["Equal"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p.eq(q))]),
        ["Less"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p.lt(q))]),
        ["Greater"] = Kernel((x, a) => [Same(x[0]!, x[1]!, (p, q) => p.gt(q))]),
        ["Not"] = Kernel((x, a) => [x[0]!.logical_not()]),
        ["Where"] = Kernel((x, a) => [where(x[0]!.to(x[1]!.device), x[1]!, x[2]!.to(x[1]!.device))]),
        ["Identity"] = Kernel((x, a) => [x[0]!]),
        ["Dropout"] = Kernel((x, a) => [x[0]!, ones_like(x[0]!, dtype: ScalarType.Bool)]),
        ["Flatten"] = Kernel((x, a) => [Flatten(x[0]!, a.Int("axis", 1))]),
        ["Reshape"] = new((n, c) => new ReshapeNode(n, c), (x, a) => [ReshapeNode.Reshape(x[0]!, Longs(x[1]!), a)]),
        ["Transpose"] = Kernel((x, a) => [x[0]!.permute(a.Ints("perm") ?? Enumerable.Range(0, (int)x[0]!.dim()).Reverse().Select(i => (long)i).ToArray())]),
        ["Concat"] = Kernel((x, a) => [Concat(x, a.Int("axis", 0))]),
        ["Split"] = Kernel(Split),
        ["Squeeze"] = Kernel((x, a) => [Squeeze(x[0]!, Axes(x, a, 1))]),
        ["Unsqueeze"] = Kernel((x, a) => [Unsqueeze(x[0]!, Axes(x, a, 1)!)]),
        ["Expand"] = Kernel((x, a) => [Expand(x[0]!, Longs(x[1]!))]),
        ["Shape"] = Kernel(ShapeOf),
        ["Gather"] = Kernel((x, a) => [Gather(x[0]!, x[1]!, a.Int("axis", 0))]),
        ["Cast"] = Kernel((x, a) => [x[0]!.to_type(ElementType(a.Int("to", 1)))]),
        ["Slice"] = Kernel(Slice),
        ["ConstantOfShape"] = Kernel(ConstantOfShape),
        ["Range"] = Kernel((x, a) => [Range(x[0]!, x[1]!, x[2]!)]),
        ["Pad"] = Kernel(Pad),
        ["ReduceMean"] = Kernel((x, a) => [Reduce(x, a, "mean")]),
        ["ReduceSum"] = Kernel((x, a) => [Reduce(x, a, "sum")]),
        ["ReduceMax"] = Kernel((x, a) => [Reduce(x, a, "max")]),
        ["ReduceMin"] = Kernel((x, a) => [Reduce(x, a, "min")]),
        ["Resize"] = Kernel(Resize),
    };

    /// <summary>The supported operators, for messages.</summary>
    public static string Supported => string.Join(", ", Table.Keys.Order(StringComparer.Ordinal));

    public static OnnxNode Create(NodeProto node, ImportContext context) =>
        Table.TryGetValue(node.OpType, out var op) && (node.Domain is "" or "ai.onnx")
            ? op.Create(node, context)
            : throw Unsupported(node);

    public static NotSupportedException Unsupported(NodeProto node) =>
        new($"ONNX operator '{(node.Domain is "" or "ai.onnx" ? "" : node.Domain + ".")}{node.OpType}' (node '{node.Name}') is not supported by the importer; it supports {Supported}.");

    private static OnnxOperator Kernel(Func<Tensor?[], OnnxAttributes, Tensor[]> kernel) =>
        new((node, context) => new FunctionNode(node, context, kernel), kernel);

    // Shape arithmetic runs on the CPU: an int64 operand on another device than a float one is brought to it.
    private static Tensor Same(Tensor a, Tensor b, Func<Tensor, Tensor, Tensor> op)
    {
        if (a.device_type != b.device_type)
        {
            if (a.numel() <= b.numel())
                a = a.to(b.device);
            else
                b = b.to(a.device);
        }
        if (a.dtype != b.dtype && a.dtype.IsFloat() != b.dtype.IsFloat())
            (a, b) = a.dtype.IsFloat() ? (a, b.to_type(a.dtype)) : (a.to_type(b.dtype), b);
        return op(a, b);
    }

    /// <summary>The values of a small int64 tensor (a shape, axes, pads).</summary>
    public static long[] Longs(Tensor t)
    {
        using var cpu = t.cpu().to_type(ScalarType.Int64);
        return cpu.data<long>().ToArray();
    }

    private static float Scalar(Tensor t)
    {
        using var cpu = t.cpu().to_type(ScalarType.Float32);
        return cpu.data<float>()[0];
    }

    private static long Axis(long axis, long rank) => axis < 0 ? axis + rank : axis;

    private static Tensor[] Clip(Tensor?[] x, OnnxAttributes a)
    {
        double? low = x.Length > 1 && x[1] is { } min ? Scalar(min) : a.Has("min") ? a.Float("min", float.MinValue) : null;
        double? high = x.Length > 2 && x[2] is { } max ? Scalar(max) : a.Has("max") ? a.Float("max", float.MaxValue) : null;
        return [x[0]!.clamp(low.HasValue ? Scalars.Of(low.Value) : null, high.HasValue ? Scalars.Of(high.Value) : null)];
    }

    // Opset 13 normalises along one axis; earlier opsets over everything from the axis on, as a 2-D [N, D] matrix.
    private static Tensor Normalized(Tensor x, OnnxAttributes a, bool log)
    {
        long axis = Axis(a.Int("axis", a.Opset >= 13 ? -1 : 1), x.dim());
        if (a.Opset >= 13 || axis == x.dim() - 1)
            return log ? x.log_softmax(axis) : x.softmax(axis);
        var flat = Flatten(x, axis);
        return (log ? flat.log_softmax(1) : flat.softmax(1)).reshape(x.shape);
    }

    public static bool IsFloat(this ScalarType type) => type is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16;

    private static Tensor Flatten(Tensor x, long axis)
    {
        axis = Axis(axis, x.dim());
        long outer = x.shape.Take((int)axis).Aggregate(1L, (p, q) => p * q);
        return x.reshape(outer, -1);
    }

    // Empty inputs (an empty shape from a shape sub-graph) add nothing; the others meet on one device and element type.
    private static Tensor Concat(Tensor?[] x, long axis)
    {
        var parts = x.Where(t => t is not null).Select(t => t!).ToArray();
        if (parts.Any(p => p.numel() > 0))
            parts = parts.Where(p => p.numel() > 0).ToArray();
        var device = parts.FirstOrDefault(p => p.device_type != DeviceType.CPU)?.device ?? parts[0].device;
        var dtype = parts.Any(p => p.dtype.IsFloat()) ? parts.First(p => p.dtype.IsFloat()).dtype : parts[0].dtype;
        return cat(parts.Select(p => p.to(device).to_type(dtype)).ToArray(), Axis(axis, parts[0].dim()));
    }

    private static Tensor[] Split(Tensor?[] x, OnnxAttributes a)
    {
        var input = x[0]!;
        long axis = Axis(a.Int("axis", 0), input.dim());
        long[]? sizes = x.Length > 1 && x[1] is { } split ? Longs(split) : a.Ints("split");
        if (sizes is null)
        {
            long outputs = a.Int("num_outputs", 0);
            if (outputs == 0)
                throw new NotSupportedException("ONNX Split without sizes needs the node's output count; the importer reads it from the node.");
            long each = (input.shape[axis] + outputs - 1) / outputs;
            sizes = Enumerable.Range(0, (int)outputs).Select(i => Math.Min(each, input.shape[axis] - i * each)).ToArray();
        }
        return input.split(sizes, axis);
    }

    // Axes from the attribute (before opset 13) or the input (13 on).
    private static long[]? Axes(Tensor?[] x, OnnxAttributes a, int input) =>
        x.Length > input && x[input] is { } axes ? Longs(axes) : a.Ints("axes");

    private static Tensor Squeeze(Tensor x, long[]? axes)
    {
        if (axes is null)
            return x.squeeze();
        foreach (long axis in axes.Select(ax => Axis(ax, x.dim())).OrderDescending())
            x = x.squeeze(axis);
        return x;
    }

    private static Tensor Unsqueeze(Tensor x, long[] axes)
    {
        long rank = x.dim() + axes.Length;
        foreach (long axis in axes.Select(ax => Axis(ax, rank)).Order())
            x = x.unsqueeze(axis);
        return x;
    }

    private static Tensor Expand(Tensor x, long[] shape)
    {
        // ONNX broadcasts both ways: a 1 in the shape keeps the input's size.
        int rank = Math.Max(shape.Length, (int)x.dim());
        var target = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long s = i - (rank - shape.Length) is var j && j >= 0 ? shape[j] : 1;
            long d = i - (rank - (int)x.dim()) is var k && k >= 0 ? x.shape[k] : 1;
            target[i] = s == 1 ? d : s;
        }
        return x.expand(target);
    }

    private static Tensor[] ShapeOf(Tensor?[] x, OnnxAttributes a)
    {
        long[] shape = x[0]!.shape;
        long start = Axis(a.Int("start", 0), shape.Length), end = a.Has("end") ? Axis(a.Int("end", shape.Length), shape.Length) : shape.Length;
        start = Math.Clamp(start, 0, shape.Length);
        end = Math.Clamp(end, start, shape.Length);
        return [tensor(shape[(int)start..(int)end], dtype: ScalarType.Int64)];
    }

    private static Tensor Gather(Tensor data, Tensor indices, long axis)
    {
        axis = Axis(axis, data.dim());
        var index = indices.to(data.device).to_type(ScalarType.Int64);
        index = where(index.lt(Scalars.Zero), index.Plus(data.shape[axis]), index);
        if (index.dim() == 0)
            return data.index_select(axis, index.reshape(1)).squeeze(axis);
        var flat = data.index_select(axis, index.reshape(-1));
        return flat.reshape([.. data.shape.Take((int)axis), .. index.shape, .. data.shape.Skip((int)axis + 1)]);
    }

    public static ScalarType ElementType(long onnxType) => (TensorProto.Types.DataType)onnxType switch
    {
        TensorProto.Types.DataType.Float => ScalarType.Float32,
        TensorProto.Types.DataType.Double => ScalarType.Float64,
        TensorProto.Types.DataType.Float16 => ScalarType.Float16,
        TensorProto.Types.DataType.Int64 => ScalarType.Int64,
        TensorProto.Types.DataType.Int32 => ScalarType.Int32,
        TensorProto.Types.DataType.Int16 => ScalarType.Int16,
        TensorProto.Types.DataType.Int8 => ScalarType.Int8,
        TensorProto.Types.DataType.Uint8 => ScalarType.Byte,
        TensorProto.Types.DataType.Bool => ScalarType.Bool,
        var other => throw new NotSupportedException($"ONNX element type {other} is not supported by the importer."),
    };

    private static Tensor[] Slice(Tensor?[] x, OnnxAttributes a)
    {
        var data = x[0]!;
        long[] starts = x.Length > 1 && x[1] is { } s ? Longs(s) : a.Ints("starts")!;
        long[] ends = x.Length > 2 && x[2] is { } e ? Longs(e) : a.Ints("ends")!;
        long[] axes = x.Length > 3 && x[3] is { } ax ? Longs(ax) : a.Ints("axes") ?? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        long[] steps = x.Length > 4 && x[4] is { } st ? Longs(st) : Enumerable.Repeat(1L, starts.Length).ToArray();
        for (int i = 0; i < axes.Length; i++)
        {
            long axis = Axis(axes[i], data.dim()), size = data.shape[axis], step = steps[i];
            long start = starts[i] < 0 ? starts[i] + size : starts[i], end = ends[i] < 0 ? ends[i] + size : ends[i];
            if (step > 0)
            {
                start = Math.Clamp(start, 0, size);
                end = Math.Clamp(end, 0, size);
                data = data.slice(axis, start, Math.Max(start, end), step);
            }
            else
            {
                // A negative step: flip, then slice forward.
                start = Math.Clamp(start, -1, size - 1);
                end = Math.Clamp(end, -1, size - 1);
                var flipped = data.flip(axis);
                long first = size - 1 - start, last = size - 1 - end;
                data = flipped.slice(axis, first, Math.Max(first, last), -step);
            }
        }
        return [data];
    }

    private static Tensor[] ConstantOfShape(Tensor?[] x, OnnxAttributes a)
    {
        long[] shape = Longs(x[0]!);
        if (a.Tensor("value") is not { } value)
            return [zeros(shape)];
        using var fill = OnnxImporter.ToTensor(value);
        using var scalar = fill.reshape(-1)[0];
        return [scalar.expand(shape).contiguous()];
    }

    private static Tensor Range(Tensor start, Tensor limit, Tensor delta)
    {
        bool integral = !start.dtype.IsFloat();
        if (integral)
            return arange(Longs(start)[0], Longs(limit)[0], Longs(delta)[0], dtype: start.dtype);
        return arange(Scalar(start), Scalar(limit), Scalar(delta), dtype: start.dtype, device: start.device);
    }

    private static Tensor[] Pad(Tensor?[] x, OnnxAttributes a)
    {
        var data = x[0]!;
        long[] pads = x.Length > 1 && x[1] is { } p ? Longs(p) : a.Ints("pads") ?? a.Ints("paddings")!;
        double value = x.Length > 2 && x[2] is { } v && v.numel() > 0 ? Scalar(v) : a.Float("value", 0);
        long rank = data.dim();
        long[] axes = x.Length > 3 && x[3] is { } ax ? Longs(ax).Select(i => Axis(i, rank)).ToArray() : Enumerable.Range(0, (int)rank).Select(i => (long)i).ToArray();
        // ONNX lists all begins, then all ends; TorchSharp's pad takes (begin, end) pairs from the last axis back.
        var torchPads = new List<long>();
        for (long axis = rank - 1; axis >= 0; axis--)
        {
            int i = Array.IndexOf(axes, axis);
            torchPads.Add(i < 0 ? 0 : pads[i]);
            torchPads.Add(i < 0 ? 0 : pads[i + axes.Length]);
        }
        while (torchPads.Count > 2 && torchPads[^1] == 0 && torchPads[^2] == 0)
            torchPads.RemoveRange(torchPads.Count - 2, 2);
        var mode = a.String("mode", "constant") switch
        {
            "constant" => PaddingModes.Constant,
            "reflect" => PaddingModes.Reflect,
            "edge" => PaddingModes.Replicate,
            var other => throw new NotSupportedException($"ONNX Pad mode '{other}' is not supported by the importer."),
        };
        return [nn.functional.pad(data, torchPads.ToArray(), mode, value)];
    }

    private static Tensor Reduce(Tensor?[] x, OnnxAttributes a, string kind)
    {
        var data = x[0]!;
        long[]? axes = x.Length > 1 && x[1] is { } ax ? Longs(ax) : a.Ints("axes");
        bool keep = a.Int("keepdims", 1) == 1;
        if (axes is null || axes.Length == 0)
        {
            if (a.Int("noop_with_empty_axes", 0) == 1)
                return data;
            axes = Enumerable.Range(0, (int)data.dim()).Select(i => (long)i).ToArray();
        }
        axes = axes.Select(i => Axis(i, data.dim())).ToArray();
        return kind switch
        {
            "mean" => data.mean(axes, keep),
            "sum" => data.sum(axes, keep),
            "max" => data.amax(axes, keep),
            _ => data.amin(axes, keep),
        };
    }

    // Resize as PyTorch's interpolate writes it: nearest (asymmetric, floor) and linear (half-pixel or align-corners).
    private static Tensor[] Resize(Tensor?[] x, OnnxAttributes a)
    {
        var data = x[0]!;
        string mode = a.String("mode", "nearest"), transform = a.String("coordinate_transformation_mode", "half_pixel");
        long[] size;
        if (x.Length > 3 && x[3] is { } sizes && sizes.numel() > 0)
        {
            size = Longs(sizes)[2..];
        }
        else
        {
            using var cpu = x[2]!.cpu().to_type(ScalarType.Float32);
            float[] scales = cpu.data<float>().ToArray();
            size = Enumerable.Range(2, (int)data.dim() - 2).Select(i => (long)Math.Floor(data.shape[i] * scales[i])).ToArray();
        }
        switch (mode)
        {
            case "nearest":
                if (transform is not ("asymmetric" or "tf_half_pixel_for_nn") || a.String("nearest_mode", "round_prefer_floor") != "floor")
                    throw new NotSupportedException($"ONNX Resize nearest with {transform} coordinates and {a.String("nearest_mode", "round_prefer_floor")} rounding is not supported by the importer; PyTorch's interpolate writes asymmetric and floor.");
                return [nn.functional.interpolate(data, size, mode: InterpolationMode.Nearest)];
            case "linear":
                bool alignCorners = transform == "align_corners";
                if (!alignCorners && transform is not ("half_pixel" or "pytorch_half_pixel"))
                    throw new NotSupportedException($"ONNX Resize linear with {transform} coordinates is not supported by the importer.");
                return [nn.functional.interpolate(data, size, mode: data.dim() == 4 ? InterpolationMode.Bilinear : InterpolationMode.Linear, align_corners: alignCorners)];
            default:
                throw new NotSupportedException($"ONNX Resize mode '{mode}' is not supported by the importer.");
        }
    }
}

/// <summary>One imported ONNX node: its weights as parameters (other initializers as constants) and its computation.</summary>
internal abstract class OnnxNode : nn.Module
{
    private readonly Dictionary<string, Tensor> _constants = [];

    protected OnnxNode(NodeProto node, ImportContext context) : base(node.OpType)
    {
        Proto = node;
        Context = context;
        Inputs = node.Input.ToList();
        Outputs = node.Output.ToList();
        Attributes = new OnnxAttributes(node, context.Opset);
    }

    public NodeProto Proto { get; }
    public IReadOnlyList<string> Inputs { get; }
    public IReadOnlyList<string> Outputs { get; }
    protected ImportContext Context { get; }
    protected OnnxAttributes Attributes { get; }

    public abstract Tensor[] Run(Tensor?[] inputs, bool recordShapes);

    /// <summary>Whether <see cref="Run"/> reads input <paramref name="index"/> (a node's own weights are its parameters instead).</summary>
    public virtual bool Reads(int index) => true;

    /// <summary>The node's weights under the names of the graph initializers they came from.</summary>
    public virtual IEnumerable<(string Name, Tensor Value)> Initializers() => [];

    /// <summary>A constant input: a float one from the module's buffers (they move with it), an integer one as it was read.</summary>
    public Tensor? Constant(string name) => _bufferOf.TryGetValue(name, out string? buffer) ? get_buffer(buffer) : _constants.GetValueOrDefault(name);

    private readonly Dictionary<string, string> _bufferOf = [];

    /// <summary>
    /// Inputs that are initializers (other than the node's own weights) become constants: float ones as buffers, which
    /// move with the module to its device; integer ones (shapes, axes, indices) stay on the CPU, where shape arithmetic runs.
    /// </summary>
    protected void KeepConstants(params int[] except)
    {
        for (int i = 0; i < Inputs.Count; i++)
        {
            if (except.Contains(i) || !Context.Initializers.TryGetValue(Inputs[i], out var value) || _constants.ContainsKey(Inputs[i]))
                continue;
            _constants[Inputs[i]] = value;
            if (value.dtype.IsFloat())
            {
                register_buffer($"constant{i}", value);
                _bufferOf[Inputs[i]] = $"constant{i}";
            }
        }
    }

    protected Parameter Weight(int input) => Context.Claim(Inputs[input], Proto.Name, Proto.OpType);

    protected bool HasInput(int input) => Inputs.Count > input && Inputs[input].Length > 0;

    // ONNX pads are [begin of each axis..., end of each axis...]; symmetric ones go to the operator, others to a pad first.
    protected static (long[]? Asymmetric, long[] Symmetric) Padding(long[]? pads, int spatial)
    {
        if (pads is null || pads.All(p => p == 0))
            return (null, new long[spatial]);
        if (Enumerable.Range(0, spatial).All(i => pads[i] == pads[i + spatial]))
            return (null, pads[..spatial]);
        var torchPads = new List<long>();
        for (int i = spatial - 1; i >= 0; i--)
        {
            torchPads.Add(pads[i]);
            torchPads.Add(pads[i + spatial]);
        }
        return (torchPads.ToArray(), new long[spatial]);
    }

    /// <summary>Explicit pads, from auto_pad for a concrete input when the node asks for SAME padding.</summary>
    protected long[]? ResolvePads(long[] inputSpatial, long[] kernel, long[] strides, long[] dilations)
    {
        string autoPad = Attributes.String("auto_pad", "NOTSET");
        if (autoPad is "NOTSET" or "")
            return Attributes.Ints("pads");
        if (autoPad == "VALID")
            return null;
        int n = kernel.Length;
        var pads = new long[2 * n];
        for (int i = 0; i < n; i++)
        {
            long output = (inputSpatial[i] + strides[i] - 1) / strides[i];
            long total = Math.Max(0, (output - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inputSpatial[i]);
            long small = total / 2, large = total - small;
            (pads[i], pads[i + n]) = autoPad == "SAME_UPPER" ? (small, large) : (large, small);
        }
        return pads;
    }
}

/// <summary>An operator without weights: a kernel over its inputs, with constant inputs kept (see <see cref="OnnxNode.KeepConstants"/>).</summary>
internal sealed class FunctionNode : OnnxNode
{
    private readonly Func<Tensor?[], OnnxAttributes, Tensor[]> _kernel;

    public FunctionNode(NodeProto node, ImportContext context, Func<Tensor?[], OnnxAttributes, Tensor[]> kernel) : base(node, context)
    {
        _kernel = kernel;
        KeepConstants();
        RegisterComponents();
    }

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        if (Proto.OpType == "Split" && inputs.Length < 2 && !Attributes.Has("split") && !Attributes.Has("num_outputs"))
        {
            // Equal parts, one per output.
            var x = inputs[0]!;
            long axis = Attributes.Int("axis", 0) is var ax && ax < 0 ? ax + x.dim() : ax;
            return x.split(x.shape[axis] / Outputs.Count, axis);
        }
        return _kernel(inputs, Attributes);
    }
}

/// <summary>Reshape: a batch of 1 in a constant (stored) shape stands for the free batch dimension; 0 copies the input's size.</summary>
internal sealed class ReshapeNode : OnnxNode
{
    public ReshapeNode(NodeProto node, ImportContext context) : base(node, context)
    {
        KeepConstants();
        RegisterComponents();
    }

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = inputs[0]!;
        long[] shape = OnnxOperators.Longs(inputs[1]!);
        // Graphs written for one row at a time (ML.NET's ResNet18) store a batch of 1; a shape computed from the input is already right.
        if (Context.IsConstant(Inputs[1]) && shape.Length > 0 && shape[0] == 1 && !shape.Contains(-1) && x.shape.Length > 0 && x.shape[0] != 1)
            shape[0] = -1;
        return [Reshape(x, shape, Attributes)];
    }

    /// <summary>ONNX's Reshape: 0 copies the input's size (unless allowzero), -1 takes what is left.</summary>
    public static Tensor Reshape(Tensor x, long[] shape, OnnxAttributes attributes)
    {
        if (attributes.Int("allowzero", 0) == 0)
            for (int i = 0; i < shape.Length; i++)
                if (shape[i] == 0)
                    shape[i] = x.shape[i];
        return x.reshape(shape);
    }
}

internal sealed class ConvNode : OnnxNode
{
    private readonly Parameter weight;
    private readonly Parameter? bias;
    private readonly long[] _strides, _dilations, _kernel;
    private readonly long _groups;

    public ConvNode(NodeProto node, ImportContext context) : base(node, context)
    {
        weight = Weight(1);
        bias = HasInput(2) ? Weight(2) : null;
        int spatial = (int)weight.dim() - 2;
        if (spatial is not (1 or 2))
            throw new NotSupportedException($"ONNX node '{node.Name}' (Conv) is {spatial}-D; the importer supports 1-D and 2-D convolutions.");
        _kernel = weight.shape[2..];
        _strides = Attributes.Ints("strides") ?? Enumerable.Repeat(1L, spatial).ToArray();
        _dilations = Attributes.Ints("dilations") ?? Enumerable.Repeat(1L, spatial).ToArray();
        _groups = Attributes.Int("group", 1);
        RegisterComponents();
    }

    public override IEnumerable<(string Name, Tensor Value)> Initializers() =>
        bias is null ? [(Context.Source(Inputs[1]), weight)] : [(Context.Source(Inputs[1]), weight), (Context.Source(Inputs[2]), bias)];

    public override bool Reads(int index) => index == 0;

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = inputs[0]!;
        var (asymmetric, symmetric) = Padding(ResolvePads(x.shape[2..], _kernel, _strides, _dilations), _kernel.Length);
        if (asymmetric is not null)
            x = nn.functional.pad(x, asymmetric);
        return _kernel.Length == 2
            ? [nn.functional.conv2d(x, weight, bias, _strides, symmetric, _dilations, _groups)]
            : [nn.functional.conv1d(x, weight, bias, _strides[0], symmetric[0], _dilations[0], _groups)];
    }
}

internal sealed class BatchNormNode : OnnxNode
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Tensor running_mean;
    private readonly Tensor running_var;
    private readonly double _epsilon, _momentum;

    public BatchNormNode(NodeProto node, ImportContext context) : base(node, context)
    {
        weight = Weight(1);
        bias = Weight(2);
        running_mean = context.Initializers[Inputs[3]];
        running_var = context.Initializers[Inputs[4]];
        _epsilon = Attributes.Float("epsilon", 1e-5f);
        _momentum = 1 - Attributes.Float("momentum", 0.9f); // ONNX keeps momentum of the old statistics; PyTorch weighs the new batch
        RegisterComponents();
    }

    /// <summary>When true, the running statistics are used and kept even in training mode (the usual choice when fine-tuning on little data).</summary>
    public bool FrozenStatistics { get; set; } = true;

    public override IEnumerable<(string Name, Tensor Value)> Initializers() =>
    [
        (Context.Source(Inputs[1]), weight), (Context.Source(Inputs[2]), bias),
        (Context.Source(Inputs[3]), running_mean), (Context.Source(Inputs[4]), running_var),
    ];

    public override bool Reads(int index) => index == 0;

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes) =>
        [nn.functional.batch_norm(inputs[0]!, running_mean, running_var, weight, bias, training && !FrozenStatistics, _momentum, _epsilon)];
}

/// <summary>Gemm: A' B' alpha + C beta, with A' and B' transposed as the attributes say; B is stored as [out, in], like a linear layer's weight.</summary>
internal sealed class GemmNode : OnnxNode
{
    private readonly Parameter? weight;
    private readonly Parameter? bias;
    private readonly float _alpha, _beta;
    private readonly bool _transA, _transB;

    public GemmNode(NodeProto node, ImportContext context) : base(node, context)
    {
        _transA = Attributes.Int("transA", 0) == 1;
        _transB = Attributes.Int("transB", 0) == 1;
        _alpha = Attributes.Float("alpha", 1);
        _beta = Attributes.Float("beta", 1);
        // B is kept as [out, in]: claimed as it is when transposed already, else a transposed copy (the original is freed at import).
        if (context.IsConstant(Inputs[1]))
            weight = _transB ? Weight(1) : new Parameter(context.Initializers[Inputs[1]].t().contiguous());
        if (HasInput(2) && context.IsConstant(Inputs[2]))
            bias = Weight(2);
        KeepConstants(1, 2);
        RegisterComponents();
    }

    public override IEnumerable<(string Name, Tensor Value)> Initializers()
    {
        if (weight is not null)
            yield return (Context.Source(Inputs[1]), _transB ? weight : weight.t());
        if (bias is not null)
            yield return (Context.Source(Inputs[2]), bias);
    }

    public override bool Reads(int index) => index == 0 || (index == 1 && weight is null) || (index == 2 && bias is null);

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var a = _transA ? inputs[0]!.t() : inputs[0]!;
        var w = weight ?? (_transB ? inputs[1]! : inputs[1]!.t());
        var y = a.matmul(w.t());
        if (_alpha != 1)
            y = y.Times(_alpha);
        var c = bias ?? (HasInput(2) ? inputs[2] : null);
        if (c is not null)
            y = y.Plus(_beta == 1 ? c : c.Times(_beta));
        return [y];
    }
}

internal sealed class MatMulNode : OnnxNode
{
    private readonly Parameter? weight;

    public MatMulNode(NodeProto node, ImportContext context) : base(node, context)
    {
        if (context.IsConstant(Inputs[1]) && context.Initializers[Inputs[1]].dtype.IsFloat())
            weight = Weight(1);
        KeepConstants(1);
        RegisterComponents();
    }

    public override IEnumerable<(string Name, Tensor Value)> Initializers() => weight is null ? [] : [(Context.Source(Inputs[1]), weight)];

    public override bool Reads(int index) => index == 0 || weight is null;

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes) => [inputs[0]!.matmul(weight ?? inputs[1]!)];
}

/// <summary>LayerNormalization (opset 17): normalisation over the axes from <c>axis</c> on, with a learned scale and bias.</summary>
internal sealed class LayerNormNode : OnnxNode
{
    private readonly Parameter weight;
    private readonly Parameter? bias;
    private readonly long _axis;
    private readonly double _epsilon;

    public LayerNormNode(NodeProto node, ImportContext context) : base(node, context)
    {
        weight = Weight(1);
        bias = HasInput(2) ? Weight(2) : null;
        _axis = Attributes.Int("axis", -1);
        _epsilon = Attributes.Float("epsilon", 1e-5f);
        RegisterComponents();
    }

    public override IEnumerable<(string Name, Tensor Value)> Initializers() =>
        bias is null ? [(Context.Source(Inputs[1]), weight)] : [(Context.Source(Inputs[1]), weight), (Context.Source(Inputs[2]), bias)];

    public override bool Reads(int index) => index == 0;

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = inputs[0]!;
        long axis = _axis < 0 ? _axis + x.dim() : _axis;
        return [nn.functional.layer_norm(x, x.shape[(int)axis..], weight, bias, _epsilon)];
    }
}

/// <summary>
/// MaxPool and AveragePool with ONNX's options (ceil_mode, count_include_pad, dilations, asymmetric and SAME pads). An
/// AveragePool whose window covers the whole map at the graph's declared input size becomes a global average pooling,
/// so the graph takes other sizes too.
/// </summary>
internal sealed class PoolNode : OnnxNode
{
    private readonly long[] _kernel, _strides, _dilations;
    private readonly bool _ceil, _countPadding, _max;
    private bool _global;

    public bool IsGlobal => _global;

    public PoolNode(NodeProto node, ImportContext context) : base(node, context)
    {
        _kernel = Attributes.Ints("kernel_shape") ?? throw new NotSupportedException($"ONNX node '{node.Name}' ({node.OpType}) has no kernel_shape.");
        if (_kernel.Length != 2)
            throw new NotSupportedException($"ONNX node '{node.Name}' ({node.OpType}) pools over {_kernel.Length} axes; the importer supports 2-D pooling.");
        _strides = Attributes.Ints("strides") ?? [1, 1];
        _dilations = Attributes.Ints("dilations") ?? [1, 1];
        _ceil = Attributes.Int("ceil_mode", 0) != 0;
        _countPadding = Attributes.Int("count_include_pad", 0) == 1;
        _max = node.OpType == "MaxPool";
        if (node.Output.Count > 1 && node.Output[1].Length > 0)
            throw new NotSupportedException($"ONNX node '{node.Name}' (MaxPool) outputs its indices; the importer supports the pooled values only.");
        if (!_max && _dilations.Any(d => d != 1))
            throw new NotSupportedException($"ONNX node '{node.Name}' (AveragePool) is dilated; the importer supports dilated max pooling only.");
    }

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = inputs[0]!;
        long[]? pads = ResolvePads(x.shape[2..], _kernel, _strides, _dilations);
        var (asymmetric, symmetric) = Padding(pads, 2);
        if (recordShapes && !_max && (pads is null || pads.All(p => p == 0)) && x.shape[2] == _kernel[0] && x.shape[3] == _kernel[1])
            _global = true;
        if (_global)
            return [nn.functional.adaptive_avg_pool2d(x, [1, 1])];
        if (_max)
        {
            if (asymmetric is not null)
                x = nn.functional.pad(x, asymmetric, value: double.NegativeInfinity);
            return [nn.functional.max_pool2d(x, _kernel, _strides, symmetric, _dilations, _ceil)];
        }
        if (asymmetric is null)
            return [nn.functional.avg_pool2d(x, _kernel, _strides, symmetric, _ceil, _countPadding)];
        // Asymmetric padding that must not count: the mean of the padded input over the mean of a padded mask of ones.
        var padded = nn.functional.pad(x, asymmetric);
        var sum = nn.functional.avg_pool2d(padded, _kernel, _strides, ceil_mode: _ceil, count_include_pad: true);
        if (_countPadding)
            return [sum];
        var mask = nn.functional.pad(ones_like(x.narrow(1, 0, 1)), asymmetric);
        return [sum / nn.functional.avg_pool2d(mask, _kernel, _strides, ceil_mode: _ceil, count_include_pad: true)];
    }
}

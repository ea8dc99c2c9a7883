using System.Runtime.InteropServices;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>
/// Turns an ONNX graph into a trainable TorchSharp module, the reverse of the exporter: the operators that
/// ResNet-style backbones use (Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Add, Sub,
/// Mul, Div, Gemm, MatMul, Flatten, Reshape, Concat, Split and a few element-wise ones). Weights of Conv, Gemm,
/// MatMul and BatchNormalization become parameters named after their node (<c>nodes.NODE.weight</c>), so they can be
/// frozen or trained by name prefix; every other initializer becomes a buffer. The batch dimension is free, and so is
/// the spatial size wherever the graph allows it: an AveragePool whose window covers the whole map at the graph's
/// declared input size becomes a global average pooling.
/// </summary>
/// <example>
/// <code>
/// using var backbone = OnnxImporter.Import(File.ReadAllBytes("ResNet18.onnx"), outputName: "Pooling395_Output_0");
/// var features = backbone.call(images);   // [N, 512, 1, 1] for images [N, 3, 224, 224]
/// </code>
/// </example>
public static class OnnxImporter
{
    private static readonly string[] Supported =
        ["Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Sub", "Mul",
         "Div", "Gemm", "MatMul", "Flatten", "Reshape", "Concat", "Split", "Identity", "Dropout", "Softmax"];

    /// <summary>Imports the graph in <paramref name="model"/>, cut at <paramref name="outputName"/> (a value name; the graph's first output when null).</summary>
    public static OnnxImportedModule Import(byte[] model, string? outputName = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = ModelProto.Parser.ParseFrom(model).Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name, ToTensor);
        var input = graph.Input.FirstOrDefault(i => !initializers.ContainsKey(i.Name))
            ?? throw new ArgumentException("The ONNX graph has no input that is not an initializer.", nameof(model));
        string output = outputName ?? graph.Output[0].Name;
        var producers = new Dictionary<string, NodeProto>();
        foreach (var node in graph.Node)
            foreach (string o in node.Output)
                producers[o] = node;
        if (!producers.ContainsKey(output) && output != input.Name)
            throw new ArgumentException(
                $"The ONNX graph has no value named '{output}'; its outputs are {string.Join(", ", graph.Output.Select(o => $"'{o.Name}'"))}.", nameof(outputName));

        // Only the nodes the requested output depends on, in the graph's (topological) order.
        var needed = new HashSet<NodeProto>();
        var pending = new Stack<string>([output]);
        while (pending.Count > 0)
            if (producers.TryGetValue(pending.Pop(), out var node) && needed.Add(node))
                foreach (string i in node.Input.Where(i => i.Length > 0))
                    pending.Push(i);
        var nodes = graph.Node.Where(needed.Contains).ToList();
        var unsupported = nodes.FirstOrDefault(n => !Supported.Contains(n.OpType));
        if (unsupported is not null)
            throw new NotSupportedException(
                $"ONNX operator '{unsupported.OpType}' (node '{unsupported.Name}') is not supported by the importer; it supports {string.Join(", ", Supported)}.");
        long[] inputShape = input.Type.TensorType.Shape.Dim.Select(d => d.DimValue > 0 ? d.DimValue : 1).ToArray();
        return new OnnxImportedModule(input.Name, inputShape, output, nodes, initializers);
    }

    private static Tensor ToTensor(TensorProto t)
    {
        long[] shape = t.Dims.ToArray();
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Float:
                float[] floats = t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : t.FloatData.ToArray();
                return tensor(floats, shape);
            case TensorProto.Types.DataType.Int64:
                long[] longs = t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray() : t.Int64Data.ToArray();
                return tensor(longs, shape);
            default:
                throw new NotSupportedException($"ONNX initializer '{t.Name}' has element type {(TensorProto.Types.DataType)t.DataType}; the importer reads float and int64 initializers.");
        }
    }
}

/// <summary>An imported ONNX graph as a TorchSharp module: input [N, ...] (free batch) to the chosen output.</summary>
public sealed class OnnxImportedModule : nn.Module<Tensor, Tensor>
{
    private readonly ModuleDict<OnnxNode> nodes;
    private readonly List<(string Key, OnnxNode Node)> _order;
    private readonly string _input, _output;
    private readonly HashSet<string> _initializers;

    internal OnnxImportedModule(string input, long[] declaredInputShape, string output, List<NodeProto> graphNodes, Dictionary<string, Tensor> initializers)
        : base(nameof(OnnxImportedModule))
    {
        _input = input;
        _output = output;
        _initializers = initializers.Keys.ToHashSet();
        DeclaredInputShape = declaredInputShape;
        nodes = new ModuleDict<OnnxNode>();
        _order = [];
        var usedKeys = new HashSet<string>();
        foreach (var (node, index) in graphNodes.Select((n, i) => (n, i)))
        {
            string key = Key(node, index, usedKeys);
            var module = OnnxNode.Create(node, initializers);
            nodes.Add((key, module));
            _order.Add((key, module));
        }
        RegisterComponents();
        // Shapes at the declared input size decide which average poolings are global (so other sizes work too).
        using (no_grad())
        using (var scope = NewDisposeScope())
            Run(zeros(declaredInputShape), recordShapes: true);
        eval();
    }

    /// <summary>The input shape the graph declares (batch first).</summary>
    public IReadOnlyList<long> DeclaredInputShape { get; }

    /// <summary>The node names (parameter name prefixes after "nodes.") in execution order.</summary>
    public IReadOnlyList<string> NodeNames => _order.Select(o => o.Key).ToList();

    /// <summary>
    /// The ONNX names of the AveragePool nodes whose window covers the whole map at the declared input size, which this
    /// module runs as global average pooling (an exported graph should too, so that other input sizes work).
    /// </summary>
    public IReadOnlySet<string> GlobalPoolNodes => _order.Where(o => o.Node is PoolNode { IsGlobal: true }).Select(o => o.Node.Proto.Name).ToHashSet();

    /// <summary>Values per image of the output (flattened) for images of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public long OutputWidth(int height, int width)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var shape = DeclaredInputShape.ToArray();
        shape[0] = 1;
        if (shape.Length == 4)
            (shape[2], shape[3]) = (height, width);
        return call(zeros(shape)).numel();
    }

    /// <summary>The ONNX operator of each node, in execution order.</summary>
    public IReadOnlyList<string> NodeOperators => _order.Select(o => o.Node.Proto.OpType).ToList();

    /// <summary>The parameters of the node called <paramref name="nodeName"/>.</summary>
    public IEnumerable<Parameter> NodeParameters(string nodeName) => nodes[nodeName].parameters();

    /// <summary>The current values of the graph's weights by initializer name, to write a trained module back into its ONNX graph.</summary>
    public IReadOnlyDictionary<string, Tensor> TrainedInitializers() =>
        _order.SelectMany(o => o.Node.Initializers()).ToDictionary(p => p.Name, p => p.Value);

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => Run(input, recordShapes: false);

    /// <summary>
    /// The values that the nodes named in <paramref name="suffix"/> read from the rest of the graph: with them, the
    /// suffix runs alone (<see cref="RunSuffix"/>), so a frozen prefix can be computed once and cached.
    /// </summary>
    public IReadOnlyList<string> BoundaryValues(IReadOnlySet<string> suffix)
    {
        var inSuffix = _order.Where(o => suffix.Contains(o.Key)).Select(o => o.Node).ToList();
        var produced = inSuffix.SelectMany(n => n.Outputs).ToHashSet();
        var boundary = inSuffix.SelectMany(n => n.Inputs).Where(i => i.Length > 0 && !produced.Contains(i) && !_initializers.Contains(i)).Distinct().ToList();
        return boundary.Count == 0 && !suffix.Any() ? [_output] : boundary;
    }

    /// <summary>Runs the whole graph on <paramref name="input"/> and returns the values named in <paramref name="names"/>.</summary>
    public Tensor[] Capture(Tensor input, IReadOnlyList<string> names)
    {
        var values = RunAll(input, recordShapes: false);
        return names.Select(n => values[n]).ToArray();
    }

    /// <summary>Runs only the nodes in <paramref name="suffix"/>, from the boundary values (in <see cref="BoundaryValues"/> order), to the output.</summary>
    public Tensor RunSuffix(IReadOnlySet<string> suffix, IReadOnlyList<string> boundary, Tensor[] boundaryValues)
    {
        var values = boundary.Zip(boundaryValues).ToDictionary(p => p.First, p => p.Second);
        foreach (var (key, node) in _order)
            if (suffix.Contains(key))
                Step(node, values, recordShapes: false);
        return values[_output];
    }

    private Tensor Run(Tensor input, bool recordShapes) => RunAll(input, recordShapes)[_output];

    private Dictionary<string, Tensor> RunAll(Tensor input, bool recordShapes)
    {
        var values = new Dictionary<string, Tensor> { [_input] = input };
        foreach (var (_, node) in _order)
            Step(node, values, recordShapes);
        return values;
    }

    private static void Step(OnnxNode node, Dictionary<string, Tensor> values, bool recordShapes)
    {
        {
            var inputs = node.Inputs.Select(name => name.Length == 0 ? null : values.TryGetValue(name, out var v) ? v : node.Constant(name)).ToArray();
            var outputs = node.Run(inputs, recordShapes);
            for (int i = 0; i < node.Outputs.Count && i < outputs.Length; i++)
                values[node.Outputs[i]] = outputs[i];
        }
    }

    private static string Key(NodeProto node, int index, HashSet<string> used)
    {
        string key = new((string.IsNullOrEmpty(node.Name) ? $"{node.OpType}_{index}" : node.Name).Select(c => char.IsLetterOrDigit(c) || c == '_' ? c : '_').ToArray());
        while (!used.Add(key))
            key += "_";
        return key;
    }
}

/// <summary>One imported ONNX node: its parameters (weights as parameters, other initializers as buffers) and its computation.</summary>
internal abstract class OnnxNode : nn.Module
{
    private readonly Dictionary<string, Tensor> _constants = [];

    protected OnnxNode(NodeProto node) : base(node.OpType)
    {
        Proto = node;
        Inputs = node.Input.ToList();
        Outputs = node.Output.ToList();
    }

    public NodeProto Proto { get; }
    public IReadOnlyList<string> Inputs { get; }
    public IReadOnlyList<string> Outputs { get; }

    public abstract Tensor[] Run(Tensor?[] inputs, bool recordShapes);

    /// <summary>The node's weights under the names of the initializers they came from, as ONNX stores them.</summary>
    public virtual IEnumerable<(string Name, Tensor Value)> Initializers() => [];

    public Tensor? Constant(string name) => _constants.GetValueOrDefault(name);

    // Initializers that are data (a mean image, a shape) become buffers of the node that reads them.
    protected void KeepConstants(Dictionary<string, Tensor> initializers, params int[] except)
    {
        for (int i = 0; i < Inputs.Count; i++)
            if (!except.Contains(i) && initializers.TryGetValue(Inputs[i], out var value))
            {
                var copy = value.clone();
                _constants[Inputs[i]] = copy;
                register_buffer($"constant{i}", copy);
            }
    }

    protected long Int(string name, long fallback) => Proto.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;
    protected float Float(string name, float fallback) => Proto.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;
    protected long[]? Ints(string name) => Proto.Attribute.FirstOrDefault(a => a.Name == name)?.Ints.ToArray();
    protected string? Text(string name) => Proto.Attribute.FirstOrDefault(a => a.Name == name)?.S.ToStringUtf8();

    protected void RequireExplicitPadding()
    {
        string? autoPad = Text("auto_pad");
        if (autoPad is not (null or "" or "NOTSET" or "VALID"))
            throw new NotSupportedException($"ONNX node '{Proto.Name}' ({Proto.OpType}) uses auto_pad {autoPad}; the importer supports explicit pads.");
    }

    public static OnnxNode Create(NodeProto node, Dictionary<string, Tensor> initializers) => node.OpType switch
    {
        "Conv" => new ConvNode(node, initializers),
        "BatchNormalization" => new BatchNormNode(node, initializers),
        "Gemm" => new GemmNode(node, initializers),
        "MatMul" => new MatMulNode(node, initializers),
        "MaxPool" or "AveragePool" => new PoolNode(node, initializers),
        _ => new FunctionNode(node, initializers),
    };

    protected static Parameter Weight(Dictionary<string, Tensor> initializers, string name, NodeProto node) =>
        new((initializers.GetValueOrDefault(name) ?? throw new NotSupportedException(
            $"ONNX node '{node.Name}' ({node.OpType}) takes its weights from '{name}', which is not an initializer; the importer needs constant weights.")).clone());

    // ONNX pads are [top, left, bottom, right]; TorchSharp's pad takes [left, right, top, bottom].
    protected static (long[]? Asymmetric, long[] Symmetric) Padding(long[]? pads)
    {
        if (pads is null || pads.All(p => p == 0))
            return (null, [0, 0]);
        if (pads[0] == pads[2] && pads[1] == pads[3])
            return (null, [pads[0], pads[1]]);
        return ([pads[1], pads[3], pads[0], pads[2]], [0, 0]);
    }
}

internal sealed class ConvNode : OnnxNode
{
    private readonly Parameter weight;
    private readonly Parameter? bias;
    private readonly long[] _strides, _dilations, _padding;
    private readonly long[]? _asymmetric;
    private readonly long _groups;

    public ConvNode(NodeProto node, Dictionary<string, Tensor> initializers) : base(node)
    {
        RequireExplicitPadding();
        weight = Weight(initializers, node.Input[1], node);
        bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? Weight(initializers, node.Input[2], node) : null;
        _strides = Ints("strides") ?? [1, 1];
        _dilations = Ints("dilations") ?? [1, 1];
        _groups = Int("group", 1);
        (_asymmetric, _padding) = Padding(Ints("pads"));
        if (weight.dim() != 4)
            throw new NotSupportedException($"ONNX node '{node.Name}' (Conv) is {weight.dim() - 2}-D; the importer supports 2-D convolutions.");
        RegisterComponents();
    }

    public override IEnumerable<(string Name, Tensor Value)> Initializers() =>
        bias is null ? [(Inputs[1], weight)] : [(Inputs[1], weight), (Inputs[2], bias)];

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = _asymmetric is null ? inputs[0]! : nn.functional.pad(inputs[0]!, _asymmetric);
        return [nn.functional.conv2d(x, weight, bias, _strides, _padding, _dilations, _groups)];
    }
}

internal sealed class BatchNormNode : OnnxNode
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Tensor running_mean;
    private readonly Tensor running_var;
    private readonly double _epsilon, _momentum;

    public BatchNormNode(NodeProto node, Dictionary<string, Tensor> initializers) : base(node)
    {
        weight = Weight(initializers, node.Input[1], node);
        bias = Weight(initializers, node.Input[2], node);
        running_mean = initializers[node.Input[3]].clone();
        running_var = initializers[node.Input[4]].clone();
        _epsilon = Float("epsilon", 1e-5f);
        _momentum = 1 - Float("momentum", 0.9f); // ONNX keeps momentum of the old statistics; PyTorch weighs the new batch
        RegisterComponents();
    }

    /// <summary>When true, the running statistics are used and kept even in training mode (the usual choice when fine-tuning on little data).</summary>
    public bool FrozenStatistics { get; set; } = true;

    public override IEnumerable<(string Name, Tensor Value)> Initializers() =>
        [(Inputs[1], weight), (Inputs[2], bias), (Inputs[3], running_mean), (Inputs[4], running_var)];

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes) =>
        [nn.functional.batch_norm(inputs[0]!, running_mean, running_var, weight, bias, training && !FrozenStatistics, _momentum, _epsilon)];
}

internal sealed class GemmNode : OnnxNode
{
    private readonly Parameter weight;
    private readonly Parameter? bias;
    private readonly float _alpha, _beta;
    private readonly bool _transA;

    public GemmNode(NodeProto node, Dictionary<string, Tensor> initializers) : base(node)
    {
        var b = Weight(initializers, node.Input[1], node);
        // Stored as [out, in], like a linear layer.
        weight = Int("transB", 0) == 1 ? b : new Parameter(b.t().contiguous());
        bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? Weight(initializers, node.Input[2], node) : null;
        _alpha = Float("alpha", 1);
        _beta = Float("beta", 1);
        _transA = Int("transA", 0) == 1;
        _transB = Int("transB", 0) == 1;
        RegisterComponents();
    }

    private readonly bool _transB;

    public override IEnumerable<(string Name, Tensor Value)> Initializers()
    {
        yield return (Inputs[1], _transB ? weight : weight.t());
        if (bias is not null)
            yield return (Inputs[2], bias);
    }

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var a = _transA ? inputs[0]!.t() : inputs[0]!;
        var y = a.matmul(weight.t());
        if (_alpha != 1)
            y = y * _alpha;
        if (bias is not null)
            y = y + (_beta == 1 ? bias : bias * _beta);
        return [y];
    }
}

internal sealed class MatMulNode : OnnxNode
{
    private readonly Parameter? weight;

    public MatMulNode(NodeProto node, Dictionary<string, Tensor> initializers) : base(node)
    {
        if (initializers.ContainsKey(node.Input[1]))
            weight = Weight(initializers, node.Input[1], node);
        KeepConstants(initializers, 1);
        RegisterComponents();
    }

    public override IEnumerable<(string Name, Tensor Value)> Initializers() => weight is null ? [] : [(Inputs[1], weight)];

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes) => [inputs[0]!.matmul(weight ?? inputs[1]!)];
}

internal sealed class PoolNode : OnnxNode
{
    private readonly long[] _kernel, _strides, _padding;
    private readonly long[]? _asymmetric;
    private bool _global;

    public bool IsGlobal => _global;

    public PoolNode(NodeProto node, Dictionary<string, Tensor> initializers) : base(node)
    {
        RequireExplicitPadding();
        _kernel = Ints("kernel_shape") ?? throw new NotSupportedException($"ONNX node '{node.Name}' ({node.OpType}) has no kernel_shape.");
        _strides = Ints("strides") ?? [1, 1];
        (_asymmetric, _padding) = Padding(Ints("pads"));
        if (Int("ceil_mode", 0) != 0)
            throw new NotSupportedException($"ONNX node '{node.Name}' ({node.OpType}) uses ceil_mode; the importer supports floor mode.");
    }

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = inputs[0]!;
        bool max = Proto.OpType == "MaxPool";
        if (recordShapes && !max && _asymmetric is null && _padding.All(p => p == 0) && x.shape[2] == _kernel[0] && x.shape[3] == _kernel[1])
            _global = true;
        if (_global)
            return [nn.functional.adaptive_avg_pool2d(x, [1, 1])];
        if (_asymmetric is not null)
            x = nn.functional.pad(x, _asymmetric, value: max ? double.NegativeInfinity : 0);
        return max
            ? [nn.functional.max_pool2d(x, _kernel, _strides, _padding)]
            : [nn.functional.avg_pool2d(x, _kernel, _strides, _padding, count_include_pad: Int("count_include_pad", 0) == 1)];
    }
}

/// <summary>Operators without weights: element-wise functions, arithmetic (with constant operands kept as buffers) and reshaping.</summary>
internal sealed class FunctionNode : OnnxNode
{
    public FunctionNode(NodeProto node, Dictionary<string, Tensor> initializers) : base(node)
    {
        KeepConstants(initializers);
        RegisterComponents();
    }

    public override Tensor[] Run(Tensor?[] inputs, bool recordShapes)
    {
        var x = inputs[0]!;
        switch (Proto.OpType)
        {
            case "Relu": return [nn.functional.relu(x)];
            case "LeakyRelu": return [nn.functional.leaky_relu(x, Float("alpha", 0.01f))];
            case "Sigmoid": return [x.sigmoid()];
            case "Tanh": return [x.tanh()];
            case "Identity": return [x];
            case "Dropout": return [x];
            case "GlobalAveragePool": return [nn.functional.adaptive_avg_pool2d(x, [1, 1])];
            case "Add": return [x + inputs[1]!];
            case "Sub": return [x - inputs[1]!];
            case "Mul": return [x * inputs[1]!];
            case "Div": return [x / inputs[1]!];
            case "Softmax": return [x.softmax(Int("axis", 1))];
            case "Concat": return [cat(inputs.Select(i => i!).ToArray(), Int("axis", 1))];
            case "Flatten":
                long axis = Int("axis", 1);
                return [x.reshape(x.shape.Take((int)axis).Aggregate(1L, (a, b) => a * b), -1)];
            case "Reshape":
                // A batch of 1 in the stored shape stands for the free batch dimension; 0 copies the input's size.
                long[] shape = inputs[1]!.data<long>().ToArray();
                if (shape.Length > 0 && shape[0] == 1 && !shape.Contains(-1))
                    shape[0] = -1;
                for (int i = 0; i < shape.Length; i++)
                    if (shape[i] == 0)
                        shape[i] = x.shape[i];
                return [x.reshape(shape)];
            case "Split":
                long splitAxis = Int("axis", 0);
                long[] sizes = Ints("split") ?? Enumerable.Repeat(x.shape[splitAxis] / Outputs.Count, Outputs.Count).ToArray();
                return x.split(sizes, splitAxis);
            default:
                throw new NotSupportedException($"ONNX operator '{Proto.OpType}' (node '{Proto.Name}') is not supported by the importer.");
        }
    }
}

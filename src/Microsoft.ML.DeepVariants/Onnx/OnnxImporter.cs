using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>
/// Turns an ONNX graph into a trainable TorchSharp module, the reverse of the exporter. It reads the graphs that
/// PyTorch's exporter writes for the common image families (ResNet, ResNeXt, Wide ResNet, VGG, DenseNet, GoogLeNet,
/// Inception, MobileNet, EfficientNet, SqueezeNet) and ML.NET's own ResNet18: the operators are one table
/// (<see cref="OnnxOperators"/>). <c>Constant</c> nodes and initializers passed through <c>Identity</c> are read as
/// initializers, sub-graphs of constants are computed once, and shape sub-graphs run on the real input's shape. Weights
/// of Conv, Gemm, MatMul, BatchNormalization and LayerNormalization become parameters named after their node
/// (<c>nodes.NODE.weight</c>), so they can be frozen or trained by name prefix or by block (<see cref="OnnxImportedModule.Blocks"/>).
/// The batch dimension is free, and so is the spatial size wherever the graph allows it.
/// </summary>
/// <example>
/// <code>
/// using var backbone = OnnxImporter.Import(File.ReadAllBytes("resnet50.onnx"));
/// var logits = backbone.call(images);   // [N, classes] for images [N, 3, H, W]
/// </code>
/// </example>
public static class OnnxImporter
{
    /// <summary>The ONNX operators the importer reads (default domain), in alphabetical order.</summary>
    public static IReadOnlyList<string> SupportedOperators { get; } = OnnxOperators.Table.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Imports the graph in <paramref name="model"/>, cut at <paramref name="outputName"/> (a value name; the graph's first
    /// output when null). <paramref name="source"/> names the graph (its file, say) in error messages.
    /// </summary>
    public static OnnxImportedModule Import(byte[] model, string? outputName = null, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var proto = Parse(model, source);
        var graph = proto.Graph ?? throw new InvalidDataException($"{Name(source)} holds no graph.");
        int opset = (int)(proto.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 13);
        var initializers = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var t in graph.Initializer)
                initializers[t.Name] = ToTensor(t);
            var aliases = new Dictionary<string, string>(StringComparer.Ordinal);
            var nodes = new List<NodeProto>();
            foreach (var node in graph.Node)
            {
                if (node.OpType == "Constant" && node.Domain is "" or "ai.onnx")
                    initializers[node.Output[0]] = ConstantValue(node);
                else if (node.OpType == "Identity" && initializers.TryGetValue(node.Input[0], out var value))
                {
                    // A weight passed through an Identity (PyTorch's exporter writes shared weights so): the same tensor.
                    initializers[node.Output[0]] = value;
                    aliases[node.Output[0]] = aliases.GetValueOrDefault(node.Input[0], node.Input[0]);
                }
                else
                    nodes.Add(node);
            }

            var input = graph.Input.FirstOrDefault(i => !initializers.ContainsKey(i.Name))
                ?? throw new ArgumentException($"{Name(source)} has no input that is not an initializer.", nameof(model));
            string output = outputName ?? graph.Output[0].Name;
            var needed = OnnxGraphWalk.Needed(nodes, output);
            if (needed.Count == 0 && output != input.Name && !initializers.ContainsKey(output))
                throw new ArgumentException(
                    $"{Name(source)} has no value named '{output}'; its outputs are {string.Join(", ", graph.Output.Select(o => $"'{o.Name}'"))}.", nameof(outputName));
            var unsupported = needed.FirstOrDefault(n => !OnnxOperators.Table.ContainsKey(n.OpType) || n.Domain is not ("" or "ai.onnx"));
            if (unsupported is not null)
                throw OnnxOperators.Unsupported(unsupported);

            var context = new ImportContext(initializers, aliases, opset);
            var kept = FoldConstants(needed, context);
            long[] inputShape = input.Type.TensorType.Shape.Dim.Select(d => d.DimValue > 0 ? d.DimValue : 1).ToArray();
            var module = new OnnxImportedModule(input.Name, inputShape, output, kept, context);
            // Whatever no node took (unused initializers, folded intermediates) is freed now, not left to the finalizer.
            var owned = module.state_dict().Values.Concat(module.HeldConstants).ToHashSet(ReferenceEqualityComparer.Instance);
            foreach (var tensor in initializers.Values.Distinct(ReferenceEqualityComparer.Instance).Cast<Tensor>())
                if (!owned.Contains(tensor) && !tensor.IsInvalid)
                    tensor.Dispose();
            return module;
        }
        catch
        {
            foreach (var tensor in initializers.Values)
                if (!tensor.IsInvalid)
                    tensor.Dispose();
            throw;
        }
    }

    /// <summary>Parses an ONNX model, naming the file when it cannot be read (truncated, or another kind of file).</summary>
    internal static ModelProto Parse(byte[] model, string? source)
    {
        try
        {
            return ModelProto.Parser.ParseFrom(model);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{Name(source)} is not a readable ONNX model ({e.Message}); it may be truncated or another kind of file.", e);
        }
    }

    private static string Name(string? source) => source is null ? "The ONNX graph" : $"ONNX file '{source}'";

    // Nodes whose inputs are all constants are computed once; their outputs become constants. Weighted operators stay.
    private static List<NodeProto> FoldConstants(List<NodeProto> nodes, ImportContext context)
    {
        var kept = new List<NodeProto>();
        using var noGrad = no_grad();
        foreach (var node in nodes)
        {
            var op = OnnxOperators.Table[node.OpType];
            bool constant = node.Input.All(i => i.Length == 0 || context.IsConstant(i)) && node.Input.Any(i => i.Length > 0);
            if (!constant || op.Kernel is null)
            {
                kept.Add(node);
                continue;
            }
            var inputs = node.Input.Select(i => i.Length == 0 ? null : context.Initializers[i]).ToArray();
            var outputs = op.Kernel(inputs, new OnnxAttributes(node, context.Opset));
            for (int i = 0; i < node.Output.Count && i < outputs.Length; i++)
                if (node.Output[i].Length > 0)
                    context.Initializers[node.Output[i]] = ReferenceEquals(outputs[i], inputs.FirstOrDefault()) ? outputs[i].alias() : outputs[i];
        }
        return kept;
    }

    private static Tensor ConstantValue(NodeProto node)
    {
        var a = new OnnxAttributes(node, 0);
        if (a.Tensor("value") is { } value)
            return ToTensor(value);
        if (a.Floats("value_floats") is { } floats)
            return tensor(floats);
        if (a.Ints("value_ints") is { } ints)
            return tensor(ints, dtype: ScalarType.Int64);
        if (a.Has("value_float"))
            return tensor(a.Float("value_float", 0));
        if (a.Has("value_int"))
            return tensor(a.Int("value_int", 0), dtype: ScalarType.Int64);
        throw new NotSupportedException($"ONNX node '{node.Name}' (Constant) holds a kind of value the importer does not read.");
    }

    /// <summary>An ONNX tensor as a TorchSharp tensor (float, double, float16, integer and boolean types).</summary>
    internal static Tensor ToTensor(TensorProto t)
    {
        long[] shape = t.Dims.ToArray();
        var raw = t.RawData.Span;
        var type = (TensorProto.Types.DataType)t.DataType;
        switch (type)
        {
            case TensorProto.Types.DataType.Float:
                return tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : t.FloatData.ToArray(), shape);
            case TensorProto.Types.DataType.Double:
                return tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, double>(raw).ToArray() : t.DoubleData.ToArray(), shape);
            case TensorProto.Types.DataType.Int64:
                return tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, long>(raw).ToArray() : t.Int64Data.ToArray(), shape);
            case TensorProto.Types.DataType.Int32:
                return tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, int>(raw).ToArray() : t.Int32Data.ToArray(), shape);
            case TensorProto.Types.DataType.Bool:
                return tensor(raw.Length > 0 ? raw.ToArray().Select(b => b != 0).ToArray() : t.Int32Data.Select(v => v != 0).ToArray(), shape);
            case TensorProto.Types.DataType.Uint8:
                return tensor(raw.Length > 0 ? raw.ToArray() : t.Int32Data.Select(v => (byte)v).ToArray(), shape);
            case TensorProto.Types.DataType.Float16:
                var halves = raw.Length > 0 ? MemoryMarshal.Cast<byte, Half>(raw).ToArray() : t.Int32Data.Select(v => BitConverter.UInt16BitsToHalf((ushort)v)).ToArray();
                return tensor(halves.Select(h => (float)h).ToArray(), shape);
            default:
                throw new NotSupportedException($"ONNX initializer '{t.Name}' has element type {type}; the importer reads float, double, float16, int64, int32, uint8 and bool tensors.");
        }
    }
}

/// <summary>Walks an ONNX graph backwards from a value: the one reachability walk the importer and the graph editor share.</summary>
internal static class OnnxGraphWalk
{
    /// <summary>The nodes <paramref name="output"/> depends on, in the graph's (topological) order.</summary>
    public static List<NodeProto> Needed(IReadOnlyList<NodeProto> nodes, string output)
    {
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in nodes)
            foreach (string o in node.Output)
                if (o.Length > 0)
                    producers[o] = node;
        var needed = new HashSet<NodeProto>();
        var pending = new Stack<string>([output]);
        while (pending.Count > 0)
            if (producers.TryGetValue(pending.Pop(), out var node) && needed.Add(node))
                foreach (string i in node.Input.Where(i => i.Length > 0))
                    pending.Push(i);
        return nodes.Where(needed.Contains).ToList();
    }
}

/// <summary>An imported ONNX graph as a TorchSharp module: input [N, ...] (free batch) to the chosen output.</summary>
public sealed class OnnxImportedModule : nn.Module<Tensor, Tensor>
{
    private readonly ModuleDict<OnnxNode> nodes;
    private readonly List<(string Key, OnnxNode Node)> _order;
    private readonly string _input, _output;
    private readonly ImportContext _context;
    private readonly Dictionary<string, int> _lastUse;

    internal OnnxImportedModule(string input, long[] declaredInputShape, string output, List<NodeProto> graphNodes, ImportContext context)
        : base(nameof(OnnxImportedModule))
    {
        _input = input;
        _output = output;
        _context = context;
        DeclaredInputShape = declaredInputShape;
        nodes = new ModuleDict<OnnxNode>();
        _order = [];
        var usedKeys = new HashSet<string>();
        foreach (var (node, index) in graphNodes.Select((n, i) => (n, i)))
        {
            string key = Key(node, index, usedKeys);
            var module = OnnxOperators.Create(node, context);
            nodes.Add((key, module));
            _order.Add((key, module));
        }
        _lastUse = LastUses();
        RegisterComponents();
        Blocks = OnnxBlocks.Find(_order.Select(o => (o.Key, o.Node)).ToList(), _input, _output, context);
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

    /// <summary>The ONNX operator of each node, in execution order.</summary>
    public IReadOnlyList<string> NodeOperators => _order.Select(o => o.Node.Proto.OpType).ToList();

    /// <summary>
    /// The graph's blocks, in order, each the node names it holds: the stretches between trunk values, values that every
    /// path from the input to the output passes through. A residual block, an Inception module, a Fire module or a
    /// whole dense block is one block, since its branches rejoin at its end. A stretch without a convolution or linear
    /// layer (a pooling, an activation) joins the block before it; in a plain chain (VGG, the non-residual blocks of
    /// MobileNet and EfficientNet), consecutive layers that PyTorch's exporter placed in one module (the scope in their
    /// node names, such as <c>/features/features.3/...</c>) form one block, and each layer is a block where the names have no scopes.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<string>> Blocks { get; }

    /// <summary>
    /// The ONNX names of the AveragePool nodes whose window covers the whole map at the declared input size, which this
    /// module runs as global average pooling (an exported graph should too, so that other input sizes work).
    /// </summary>
    public IReadOnlySet<string> GlobalPoolNodes => _order.Where(o => o.Node is PoolNode { IsGlobal: true }).Select(o => o.Node.Proto.Name).ToHashSet();

    /// <summary>When set, batch-normalisation statistics update in training mode; by default they stay as pretrained.</summary>
    public bool TrainBatchNormStatistics
    {
        set
        {
            foreach (var (_, node) in _order)
                if (node is BatchNormNode norm)
                    norm.FrozenStatistics = !value;
        }
    }

    internal IEnumerable<Tensor> HeldConstants => _order.SelectMany(o => o.Node.Inputs.Select(o.Node.Constant)).Where(t => t is not null).Cast<Tensor>();

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

    /// <summary>The parameters of the node called <paramref name="nodeName"/>.</summary>
    public IEnumerable<Parameter> NodeParameters(string nodeName) => nodes[nodeName].parameters();

    /// <summary>The names of the graph initializers the weights of node <paramref name="nodeName"/> came from.</summary>
    public IEnumerable<string> NodeInitializers(string nodeName) => nodes[nodeName].Initializers().Select(i => i.Name);

    /// <summary>The current values of the graph's weights by initializer name, to write a trained module back into its ONNX graph.</summary>
    public IReadOnlyDictionary<string, Tensor> TrainedInitializers()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, value) in _order.SelectMany(o => o.Node.Initializers()))
            result.TryAdd(name, value);
        return result;
    }

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
        var boundary = inSuffix.SelectMany(n => n.Inputs)
            .Where(i => i.Length > 0 && !produced.Contains(i) && !_context.IsConstant(i)).Distinct().ToList();
        return boundary.Count == 0 && !suffix.Any() ? [_output] : boundary;
    }

    /// <summary>Runs the whole graph on <paramref name="input"/> and returns the values named in <paramref name="names"/>.</summary>
    public Tensor[] Capture(Tensor input, IReadOnlyList<string> names)
    {
        var values = RunAll(input, recordShapes: false, keep: names.ToHashSet());
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

    private Tensor Run(Tensor input, bool recordShapes) => RunAll(input, recordShapes, keep: null)[_output];

    // Values are dropped after their last use, so a forward pass holds what it still needs, not every intermediate.
    private Dictionary<string, Tensor> RunAll(Tensor input, bool recordShapes, HashSet<string>? keep)
    {
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal) { [_input] = input };
        for (int i = 0; i < _order.Count; i++)
        {
            var node = _order[i].Node;
            Step(node, values, recordShapes);
            foreach (string name in node.Inputs)
                if (name.Length > 0 && name != _output && _lastUse.GetValueOrDefault(name, -1) == i && keep?.Contains(name) != true)
                    values.Remove(name);
        }
        if (!values.ContainsKey(_output) && _context.Initializers.TryGetValue(_output, out var constant))
            values[_output] = constant;
        return values;
    }

    private static void Step(OnnxNode node, Dictionary<string, Tensor> values, bool recordShapes)
    {
        var inputs = new Tensor?[node.Inputs.Count];
        for (int i = 0; i < inputs.Length; i++)
        {
            string name = node.Inputs[i];
            inputs[i] = name.Length == 0 || !node.Reads(i) ? null : values.TryGetValue(name, out var v) ? v : node.Constant(name)
                ?? throw new InvalidOperationException($"ONNX node '{node.Proto.Name}' reads '{name}', which no earlier node produced.");
        }
        var outputs = node.Run(inputs, recordShapes);
        for (int i = 0; i < node.Outputs.Count && i < outputs.Length; i++)
            if (node.Outputs[i].Length > 0)
                values[node.Outputs[i]] = outputs[i];
    }

    private Dictionary<string, int> LastUses()
    {
        var last = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < _order.Count; i++)
            foreach (string name in _order[i].Node.Inputs)
                if (name.Length > 0)
                    last[name] = i;
        return last;
    }

    private static string Key(NodeProto node, int index, HashSet<string> used)
    {
        string key = new((string.IsNullOrEmpty(node.Name) ? $"{node.OpType}_{index}" : node.Name).TrimStart('/')
            .Select(c => char.IsLetterOrDigit(c) || c == '_' ? c : '_').ToArray());
        while (!used.Add(key))
            key += "_";
        return key;
    }
}

/// <summary>Finds a graph's blocks (see <see cref="OnnxImportedModule.Blocks"/>).</summary>
internal static partial class OnnxBlocks
{
    public static List<IReadOnlyList<string>> Find(List<(string Key, OnnxNode Node)> order, string input, string output, ImportContext context)
    {
        // Trunk values: after node i, the only dynamic value still needed later is one that node i produced.
        var lastUse = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < order.Count; i++)
            foreach (string name in order[i].Node.Inputs)
                if (name.Length > 0 && !context.IsConstant(name))
                    lastUse[name] = i;
        lastUse[output] = order.Count;
        var live = new HashSet<string>(StringComparer.Ordinal) { input };
        var segments = new List<List<int>>();
        var current = new List<int>();
        for (int i = 0; i < order.Count; i++)
        {
            var node = order[i].Node;
            current.Add(i);
            live.RemoveWhere(v => lastUse.GetValueOrDefault(v, -1) <= i);
            foreach (string produced in node.Outputs)
                if (produced.Length > 0 && lastUse.GetValueOrDefault(produced, -1) > i)
                    live.Add(produced);
            if (live.Count == 1 && node.Outputs.Contains(live.First()))
            {
                segments.Add(current);
                current = [];
            }
        }
        if (current.Count > 0)
            segments.Add(current);

        // A stretch without a convolution or linear layer joins the block before it (the first one, the block after it).
        var merged = new List<List<int>>();
        foreach (var segment in segments)
        {
            if (!segment.Any(i => Computes(order[i].Node)) && merged.Count > 0)
                merged[^1].AddRange(segment);
            else
                merged.Add([.. segment]);
        }
        if (merged.Count > 1 && !merged[0].Any(i => Computes(order[i].Node)))
        {
            merged[1].InsertRange(0, merged[0]);
            merged.RemoveAt(0);
        }

        // Plain-chain layers of one exported module (the same scope in PyTorch's node names) form one block.
        var blocks = new List<List<int>>();
        foreach (var segment in merged)
        {
            if (blocks.Count > 0 && IsChain(blocks[^1], order) && IsChain(segment, order)
                && Scope(blocks[^1], order) is { } previous && previous == Scope(segment, order))
                blocks[^1].AddRange(segment);
            else
                blocks.Add(segment);
        }
        return blocks.Select(b => (IReadOnlyList<string>)b.Select(i => order[i].Key).ToList()).ToList();
    }

    private static bool Computes(OnnxNode node) => node is ConvNode or GemmNode || node is MatMulNode && node.Initializers().Any();

    private static bool IsChain(List<int> block, List<(string Key, OnnxNode Node)> order) => block.Count(i => Computes(order[i].Node)) == 1;

    // "/features/features.6/features.6.0/block/block.0/Conv" -> "features.6.0": the first indexed module, and the indexed
    // modules directly inside it ("features.6" holds "features.6.0"); null for names without scopes.
    private static string? Scope(List<int> block, List<(string Key, OnnxNode Node)> order)
    {
        string name = order[block.First(i => Computes(order[i].Node))].Node.Proto.Name;
        if (!name.Contains('/'))
            return null;
        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries)[..^1];
        int first = Array.FindIndex(parts, p => Indexed().IsMatch(p));
        if (first < 0)
            return null;
        string scope = parts[first];
        for (int i = first + 1; i < parts.Length && parts[i].StartsWith(scope + ".", StringComparison.Ordinal); i++)
            scope = parts[i];
        return string.Join('/', parts[..first]) + "/" + scope;
    }

    [GeneratedRegex(@"\.\d+$")]
    private static partial Regex Indexed();
}

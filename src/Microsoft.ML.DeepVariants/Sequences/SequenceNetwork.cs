using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// One direction of one recurrent layer, with PyTorch's parameter layout: <c>weight_ih</c> [G*H, I],
/// <c>weight_hh</c> [G*H, H] and their biases, gates in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
/// </summary>
internal sealed class RecurrentDirection : nn.Module
{
    private readonly Parameter weight_ih;
    private readonly Parameter weight_hh;
    private readonly Parameter bias_ih;
    private readonly Parameter bias_hh;

    public RecurrentDirection(RecurrentCell cell, long inputSize, long hiddenSize) : base(nameof(RecurrentDirection))
    {
        Cell = cell;
        HiddenSize = hiddenSize;
        long gates = Gates(cell) * hiddenSize;
        // PyTorch's initialization of recurrent layers: every weight and bias uniform in [-1/sqrt(H), 1/sqrt(H)].
        double bound = 1 / Math.Sqrt(hiddenSize);
        weight_ih = Parameter(empty(gates, inputSize).uniform_(-bound, bound));
        weight_hh = Parameter(empty(gates, hiddenSize).uniform_(-bound, bound));
        bias_ih = Parameter(empty(gates).uniform_(-bound, bound));
        bias_hh = Parameter(empty(gates).uniform_(-bound, bound));
        RegisterComponents();
    }

    public RecurrentCell Cell { get; }
    public long HiddenSize { get; }
    public Tensor InputWeight => weight_ih;
    public Tensor HiddenWeight => weight_hh;
    public Tensor InputBias => bias_ih;
    public Tensor HiddenBias => bias_hh;

    public static int Gates(RecurrentCell cell) => cell == RecurrentCell.Lstm ? 4 : 3;

    /// <summary>
    /// Runs over x [N, T, I] in time order (or reversed), updating a row's state only at its valid steps
    /// (<paramref name="valid"/> [N, T], padding after the end). Returns the outputs [N, T, H] (zero at padding) and
    /// the final state [N, H]: the last valid step's, or step 0's when reversed, as ONNX's LSTM and GRU give with sequence_lens.
    /// </summary>
    public (Tensor Outputs, Tensor Final) Run(Tensor x, Tensor valid, bool reverse)
    {
        long n = x.shape[0], steps = x.shape[1];
        var projected = x.matmul(weight_ih.t()).Plus(bias_ih);
        var h = zeros(n, HiddenSize, device: x.device);
        var c = Cell == RecurrentCell.Lstm ? zeros(n, HiddenSize, device: x.device) : null;
        var outputs = new Tensor[steps];
        for (long i = 0; i < steps; i++)
        {
            long t = reverse ? steps - 1 - i : i;
            var keep = valid.select(1, t).unsqueeze(1);
            var fromInput = projected.select(1, t);
            var fromHidden = h.matmul(weight_hh.t()).Plus(bias_hh);
            Tensor next;
            if (Cell == RecurrentCell.Lstm)
            {
                var gates = fromInput.Plus(fromHidden).chunk(4, 1);
                var cNext = (gates[1].sigmoid() * c!).Plus(gates[0].sigmoid() * gates[2].tanh());
                next = gates[3].sigmoid() * cNext.tanh();
                c = where(keep, cNext, c!);
            }
            else
            {
                var xi = fromInput.chunk(3, 1);
                var hi = fromHidden.chunk(3, 1);
                var reset = xi[0].Plus(hi[0]).sigmoid();
                var update = xi[1].Plus(hi[1]).sigmoid();
                var candidate = xi[2].Plus(reset * hi[2]).tanh();
                next = (update.OneMinus() * candidate).Plus(update * h);
            }
            h = where(keep, next, h);
            outputs[t] = where(keep, next, zeros_like(next));
        }
        return (stack(outputs, 1), h);
    }
}

/// <summary>
/// A recurrent sequence classifier: stacked LSTM or GRU layers (optionally bidirectional, dropout between layers),
/// a pooling of the top layer's outputs (last state, mean over valid steps, or attention), and a linear layer to
/// class logits. Input [N, T, C]; a step whose channels are all NaN is padding, and a series ends at its last
/// step that is not, so padding never changes a row's output.
/// </summary>
/// <example>
/// <code>
/// using var network = new SequenceNetwork(new SequenceArchitecture { Cell = RecurrentCell.Gru }, channels: 3, classes: 4);
/// byte[] onnx = network.ExportOnnx("series", inputSize: null, logitsName: "logits");   // series of any length
/// </code>
/// </example>
public sealed class SequenceNetwork : Module<Tensor, Tensor>
{
    private const double MaskedScore = -1e9;
    private static readonly Scalar MaskedScoreScalar = Scalars.Of(MaskedScore);
    private readonly ModuleList<RecurrentDirection> directions;
    private readonly Linear attention_projection;
    private readonly Parameter attention_vector;
    private readonly Dropout dropout;
    private readonly Linear classifier;
    private readonly Tensor channel_mean;
    private readonly Tensor channel_scale;

    /// <summary>Builds the network <paramref name="architecture"/> describes for <paramref name="channels"/> values per step and <paramref name="classes"/> classes, with weights drawn from TorchSharp's current generator.</summary>
    public SequenceNetwork(SequenceArchitecture architecture, int channels, int classes) : base(nameof(SequenceNetwork))
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        Architecture = architecture;
        Channels = channels;
        Classes = classes;
        int directionCount = architecture.Bidirectional ? 2 : 1;
        OutputSize = architecture.HiddenSize * directionCount;
        directions = new ModuleList<RecurrentDirection>();
        for (int layer = 0; layer < architecture.Layers; layer++)
            for (int d = 0; d < directionCount; d++)
                directions.Add(new RecurrentDirection(architecture.Cell, layer == 0 ? channels : OutputSize, architecture.HiddenSize));
        attention_projection = Linear(OutputSize, OutputSize);
        attention_vector = Parameter(empty(OutputSize).uniform_(-1 / Math.Sqrt(OutputSize), 1 / Math.Sqrt(OutputSize)));
        dropout = Dropout(architecture.Dropout);
        classifier = Linear(OutputSize, classes);
        channel_mean = zeros(channels);
        channel_scale = ones(channels);
        if (architecture.Pooling != SequencePooling.Attention)
        {
            // Unused parameters would only confuse the parameter count and the optimizer.
            attention_projection.weight!.requires_grad = false;
            attention_projection.bias!.requires_grad = false;
            attention_vector.requires_grad = false;
        }
        RegisterComponents();
    }

    /// <summary>The network's description.</summary>
    public SequenceArchitecture Architecture { get; }
    /// <summary>Values per step.</summary>
    public int Channels { get; }
    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Size of the pooled vector: hidden units times directions.</summary>
    public int OutputSize { get; }

    /// <summary>Trainable parameters.</summary>
    public long ParameterCount => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>
    /// Standardizes each channel with the mean and standard deviation of <paramref name="series"/> [N, T, C] over
    /// its valid (non-NaN) values; the statistics become part of the network and of its ONNX export.
    /// </summary>
    public void FitChannelScaling(Tensor series)
    {
        using var source = new InMemoryBatchSource(series.alias(), zeros(series.shape[0], dtype: ScalarType.Int64));
        FitChannelScaling(source);
    }

    /// <summary>As <see cref="FitChannelScaling(Tensor)"/>, over every batch of a source (in memory or streamed), in double precision.</summary>
    internal void FitChannelScaling(IBatchSource series)
    {
        using var scope = NewDisposeScope();
        var count = zeros(Channels, dtype: ScalarType.Float64);
        var sum = zeros(Channels, dtype: ScalarType.Float64);
        var squares = zeros(Channels, dtype: ScalarType.Float64);
        foreach (var batch in series.Batches(1024, shuffle: false, seed: 0, epoch: 0, CancellationToken.None))
        {
            using (batch)
            {
                var x = batch.Inputs.to_type(ScalarType.Float64);
                var present = x.isnan().logical_not();
                var values = where(present, x, zeros_like(x));
                count.PlusInPlace(present.sum([0, 1]).to_type(ScalarType.Float64));
                sum.PlusInPlace(values.sum([0, 1]));
                squares.PlusInPlace(values.square().sum([0, 1]));
            }
        }
        count = count.clamp_min(Scalars.One);
        var mean = sum / count;
        var scale = (squares / count - mean.square()).clamp_min(Scalars.Zero).sqrt();
        scale = where(scale.gt(Scalars.Of(1e-6)), scale, ones_like(scale));
        using var noGrad = no_grad();
        channel_mean.copy_(mean.to_type(ScalarType.Float32));
        channel_scale.copy_(scale.to_type(ScalarType.Float32));
    }

    /// <summary>Class logits [N, K] of series [N, T, C] (trailing all-NaN steps are padding).</summary>
    public override Tensor forward(Tensor input)
    {
        var (x, valid, lengths) = Unpad((input - channel_mean) / channel_scale);
        int directionCount = Architecture.Bidirectional ? 2 : 1;
        var finals = new List<Tensor>();
        for (int layer = 0; layer < Architecture.Layers; layer++)
        {
            var outputs = new List<Tensor>();
            finals.Clear();
            for (int d = 0; d < directionCount; d++)
            {
                var (y, final) = directions[layer * directionCount + d].Run(x, valid, reverse: d == 1);
                outputs.Add(y);
                finals.Add(final);
            }
            x = directionCount == 1 ? outputs[0] : cat(outputs, 2);
            if (layer < Architecture.Layers - 1)
                x = dropout.call(x);
        }
        var pooled = Architecture.Pooling switch
        {
            SequencePooling.Last => directionCount == 1 ? finals[0] : cat(finals, 1),
            SequencePooling.Mean => x.sum(1) / lengths.unsqueeze(1),
            SequencePooling.Attention => Attend(x, valid),
            _ => throw new InvalidOperationException($"Unknown pooling {Architecture.Pooling}."),
        };
        return classifier.call(pooled);
    }

    // The padded input becomes zeros, cut to the batch's longest series; valid [N, T] marks each row's steps.
    private static (Tensor X, Tensor Valid, Tensor Lengths) Unpad(Tensor input)
    {
        long steps = input.shape[1];
        var present = input.isnan().logical_not().any(2).to_type(ScalarType.Float32);
        var lengths = (present * Scalars.Range(1, steps + 1, ScalarType.Float32, input.device)).amax([1]);
        long longest = Math.Max(1, (long)lengths.max().item<float>());
        var x = input.narrow(1, 0, longest);
        x = where(x.isnan(), zeros_like(x), x);
        var valid = Scalars.Range(0, longest, ScalarType.Float32, input.device).unsqueeze(0).lt(lengths.unsqueeze(1));
        return (x, valid, lengths);
    }

    private Tensor Attend(Tensor outputs, Tensor valid)
    {
        var scores = attention_projection.call(outputs).tanh().matmul(attention_vector);
        var weights = where(valid, scores, full_like(scores, MaskedScoreScalar)).softmax(1);
        return (weights.unsqueeze(2) * outputs).sum(1);
    }

    /// <summary>
    /// Exports to ONNX for ML.NET (one row, no batch dimension). With <paramref name="inputSize"/> the input
    /// <paramref name="inputName"/> holds that many values (a fixed-length column); without it the input is [1, values] of
    /// any length (a variable-length column: ML.NET's ONNX transformer sizes the one free dimension from each row). Either
    /// way the values are read step-major, <see cref="Channels"/> per step, trailing all-NaN steps are padding, and the step
    /// count comes from the input's shape, so one graph takes series of every length. The output <paramref name="logitsName"/>
    /// is [K]. The recurrent layers are ONNX's own LSTM or GRU operators with per-row sequence_lens.
    /// </summary>
    public byte[] ExportOnnx(string inputName, int? inputSize, string logitsName)
    {
        eval();
        using var scope = NewDisposeScope();
        if (inputSize is { } size && (size < Channels || size % Channels != 0))
            throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize, $"The input must hold whole steps of {Channels} channels.");
        var b = new OnnxGraphBuilder();
        string input = inputSize is { } fixedSize
            ? b.AddInput(inputName, TensorProto.Types.DataType.Float, (long)fixedSize)
            : b.AddInput(inputName, TensorProto.Types.DataType.Float, 1L, "values");
        string x = b.AddNode("Reshape", [input, b.AddInitializer("sequence_shape", [-1L, 1L, Channels])]);
        x = b.AddNode("Div", [b.AddNode("Sub", [x, b.AddInitializer("channel_mean", channel_mean)]), b.AddInitializer("channel_scale", channel_scale)]);

        // Padding: a step whose channels are all NaN. The length is one past the last step that is not.
        string isNan = b.AddNode("IsNaN", [x]);
        string present = b.AddNode("Cast", [b.AddNode("Not", [isNan])], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float));
        string stepPresent = b.AddNode("ReduceMax", [present], OnnxGraphBuilder.Ints("axes", [1, 2]), OnnxGraphBuilder.Int("keepdims", 0));
        // Step numbers 1..T and indices 0..T-1, with T from the input's shape.
        string one = b.AddInitializer("one", ones([]));
        string zero = b.AddInitializer("zero_scalar", zeros([]));
        string steps = b.AddNode("Cast", [b.AddNode("Squeeze", [b.AddNode("Shape", [stepPresent]), b.AddInitializer("shape_axis", [0L])])],
            OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float));
        string stepNumbers = b.AddNode("Range", [one, b.AddNode("Add", [steps, one]), one]);
        string stepIndices = b.AddNode("Range", [zero, steps, one]);
        string length = b.AddNode("ReduceMax", [b.AddNode("Mul", [stepPresent, stepNumbers])], OnnxGraphBuilder.Int("keepdims", 1));
        string sequenceLength = b.AddNode("Cast", [length], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Int32));
        string valid = b.AddNode("Less", [stepIndices, length]);
        x = b.AddNode("Where", [isNan, b.AddInitializer("zero", zeros(1)), x]);

        int directionCount = Architecture.Bidirectional ? 2 : 1;
        long hidden = Architecture.HiddenSize;
        string y = x, finalState = x;
        for (int layer = 0; layer < Architecture.Layers; layer++)
        {
            var layerDirections = Enumerable.Range(0, directionCount).Select(d => directions[layer * directionCount + d]).ToList();
            string w = b.AddInitializer($"l{layer}_W", stack(layerDirections.Select(d => OnnxGateOrder(d.InputWeight)).ToArray()));
            string r = b.AddInitializer($"l{layer}_R", stack(layerDirections.Select(d => OnnxGateOrder(d.HiddenWeight)).ToArray()));
            string bias = b.AddInitializer($"l{layer}_B", stack(layerDirections.Select(d => cat([OnnxGateOrder(d.InputBias), OnnxGateOrder(d.HiddenBias)])).ToArray()));
            var attributes = new List<AttributeProto>
            {
                OnnxGraphBuilder.Int("hidden_size", hidden),
                OnnxGraphBuilder.String("direction", directionCount == 2 ? "bidirectional" : "forward"),
            };
            if (Architecture.Cell == RecurrentCell.Gru)
                attributes.Add(OnnxGraphBuilder.Int("linear_before_reset", 1)); // PyTorch applies the reset gate after the hidden projection
            var outputs = b.AddNode(Architecture.Cell == RecurrentCell.Lstm ? "LSTM" : "GRU", [y, w, r, bias, sequenceLength], 2, attributes.ToArray());
            // Y [T, dirs, 1, H] -> [T, 1, dirs * H], the next layer's input; Y_h [dirs, 1, H] is each direction's final state.
            y = b.AddNode("Reshape", [b.AddNode("Transpose", [outputs[0]], OnnxGraphBuilder.Ints("perm", [0, 2, 1, 3])),
                b.AddInitializer("layer_output_shape", [-1L, 1L, OutputSize])]);
            finalState = outputs[1];
        }

        string outputsByStep = b.AddNode("Reshape", [y, b.AddInitializer("steps_by_features", [-1L, (long)OutputSize])]);
        string pooled = Architecture.Pooling switch
        {
            SequencePooling.Last => b.AddNode("Reshape", [finalState, b.AddInitializer("pooled_shape", [1L, OutputSize])]),
            SequencePooling.Mean => b.AddNode("Div", [b.AddNode("ReduceSum", [
                    b.AddNode("Mul", [outputsByStep, b.AddNode("Unsqueeze", [
                        b.AddNode("Cast", [valid], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float)), b.AddInitializer("feature_axis", [1L])])]),
                    b.AddInitializer("step_axis", [0L])], OnnxGraphBuilder.Int("keepdims", 1)), length]),
            SequencePooling.Attention => ExportAttention(b, outputsByStep, valid),
            _ => throw new InvalidOperationException($"Unknown pooling {Architecture.Pooling}."),
        };
        string logits = b.AddNode("Gemm", [pooled, b.AddInitializer("classifier_weight", classifier.weight!), b.AddInitializer("classifier_bias", classifier.bias!)],
            OnnxGraphBuilder.Int("transB", 1));
        b.AddOutput(b.AddNode("Reshape", [logits, b.AddInitializer("logits_shape", [(long)Classes])]), logitsName, batched: false, Classes);
        return b.ToBytes(new Dictionary<string, string> { ["DeepVariants.SequenceArchitecture"] = Architecture.ToJson() });
    }

    private string ExportAttention(OnnxGraphBuilder b, string outputsByStep, string valid)
    {
        string projected = b.AddNode("Tanh", [b.AddNode("Gemm", [outputsByStep, b.AddInitializer("attention_weight", attention_projection.weight!),
            b.AddInitializer("attention_bias", attention_projection.bias!)], OnnxGraphBuilder.Int("transB", 1))]);
        string scores = b.AddNode("MatMul", [projected, b.AddInitializer("attention_vector", attention_vector)]);
        string masked = b.AddNode("Where", [valid, scores, b.AddInitializer("masked_score", full(1, MaskedScore))]);
        string weights = b.AddNode("Softmax", [masked], OnnxGraphBuilder.Int("axis", 0));
        string row = b.AddNode("Unsqueeze", [weights, b.AddInitializer("row_axis", [0L])]);
        return b.AddNode("MatMul", [row, outputsByStep]);
    }

    // PyTorch stores LSTM gates as i, f, g, o and GRU gates as r, z, n; ONNX wants i, o, f, c and z, r, h.
    private Tensor OnnxGateOrder(Tensor parameter)
    {
        var gates = parameter.detach().chunk(RecurrentDirection.Gates(Architecture.Cell), 0);
        return Architecture.Cell == RecurrentCell.Lstm
            ? cat([gates[0], gates[3], gates[1], gates[2]], 0)
            : cat([gates[1], gates[0], gates[2]], 0);
    }
}

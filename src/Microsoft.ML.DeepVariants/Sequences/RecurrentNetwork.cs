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
/// The recurrent family: stacked LSTM or GRU layers (optionally bidirectional, dropout between layers), a pooling
/// of the top layer's outputs (last state, mean over valid steps, or attention), and a linear layer to class logits.
/// Served through ONNX's own LSTM and GRU operators with per-row sequence_lens.
/// </summary>
internal sealed class RecurrentSequenceNetwork : SequenceNetwork
{
    private readonly ModuleList<RecurrentDirection> directions;
    private readonly AttentionPooling? attention;
    private readonly Dropout dropout;
    private readonly Linear classifier;

    public RecurrentSequenceNetwork(SequenceArchitecture architecture, int channels, int classes)
        : base(nameof(RecurrentSequenceNetwork), architecture, channels, classes)
    {
        int directionCount = architecture.Bidirectional ? 2 : 1;
        OutputSize = architecture.HiddenSize * directionCount;
        directions = new ModuleList<RecurrentDirection>();
        for (int layer = 0; layer < architecture.Layers; layer++)
            for (int d = 0; d < directionCount; d++)
                directions.Add(new RecurrentDirection(architecture.Cell, layer == 0 ? channels : OutputSize, architecture.HiddenSize));
        attention = architecture.EffectivePooling == SequencePooling.Attention ? new AttentionPooling(OutputSize) : null;
        dropout = Dropout(architecture.Dropout);
        classifier = Linear(OutputSize, classes);
        RegisterComponents();
    }

    /// <summary>Size of the pooled vector: hidden units times directions.</summary>
    public int OutputSize { get; }

    private protected override (Tensor Logits, Tensor? Attention) Classify(Tensor x, Tensor valid, Tensor lengths, bool withAttention)
    {
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
        Tensor? weights = null;
        var pooled = Architecture.EffectivePooling switch
        {
            SequencePooling.Last => directionCount == 1 ? finals[0] : cat(finals, 1),
            SequencePooling.Mean => x.sum(1) / lengths.unsqueeze(1),
            SequencePooling.Attention => Attend(x, valid, out weights),
            var other => throw new InvalidOperationException($"Unknown pooling {other}."),
        };
        return (classifier.call(pooled), weights);
    }

    private Tensor Attend(Tensor outputs, Tensor valid, out Tensor? weights)
    {
        var (pooled, w) = attention!.Pool(outputs, valid);
        weights = w;
        return pooled;
    }

    private protected override (string Logits, string? Attention) ExportBody(OnnxGraphBuilder b, SeriesNodes series, bool withAttention)
    {
        string x = series.Steps, valid = series.Valid, length = series.Length;
        string sequenceLength = b.AddNode("Cast", [length], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Int32));
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
        string? weights = null;
        string pooled = Architecture.EffectivePooling switch
        {
            SequencePooling.Last => b.AddNode("Reshape", [finalState, b.AddInitializer("pooled_shape", [1L, OutputSize])]),
            SequencePooling.Mean => b.AddNode("Div", [b.AddNode("ReduceSum", [
                    b.AddNode("Mul", [outputsByStep, b.AddNode("Unsqueeze", [series.ValidFloat, b.AddInitializer("feature_axis", [1L])])]),
                    b.AddInitializer("step_axis", [0L])], OnnxGraphBuilder.Int("keepdims", 1)), length]),
            SequencePooling.Attention => ExportAttention(b, outputsByStep, valid, out weights),
            var other => throw new InvalidOperationException($"Unknown pooling {other}."),
        };
        string logits = b.AddNode("Gemm", [pooled, b.AddInitializer("classifier_weight", classifier.weight!), b.AddInitializer("classifier_bias", classifier.bias!)],
            OnnxGraphBuilder.Int("transB", 1));
        return (logits, weights);
    }

    private string ExportAttention(OnnxGraphBuilder b, string outputsByStep, string valid, out string? weights)
    {
        var (pooled, w) = attention!.Export(b, outputsByStep, valid);
        weights = w;
        return pooled;
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

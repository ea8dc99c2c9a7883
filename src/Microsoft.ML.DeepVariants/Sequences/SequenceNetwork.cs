using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// A sequence classifier network of any family (<see cref="SequenceArchitecture.Family"/>): channel standardization,
/// the family's encoder, a pooling over the valid steps and a linear layer to class logits. Input [N, T, C]; a step
/// whose channels are all NaN is padding, and a series ends at its last step that is not, so padding never changes a
/// row's output: recurrent cells stop at the end, convolutions see zeros there as at their own border and pool over the
/// valid steps only, and attention masks the padded keys.
/// </summary>
/// <example>
/// <code>
/// using var network = SequenceNetwork.Create(new SequenceArchitecture { Family = SequenceFamily.Transformer }, channels: 3, classes: 4);
/// byte[] onnx = network.ExportOnnx("series", inputSize: null, logitsName: "logits", attentionName: "attention");
/// </code>
/// </example>
public abstract class SequenceNetwork : nn.Module<Tensor, Tensor>
{
    private readonly Tensor channel_mean;
    private readonly Tensor channel_scale;

    private protected SequenceNetwork(string name, SequenceArchitecture architecture, int channels, int classes) : base(name)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        Architecture = architecture;
        Channels = channels;
        Classes = classes;
        channel_mean = zeros(channels);
        channel_scale = ones(channels);
    }

    /// <summary>Builds the network <paramref name="architecture"/> describes for <paramref name="channels"/> values per step and <paramref name="classes"/> classes, with weights drawn from TorchSharp's current generator.</summary>
    public static SequenceNetwork Create(SequenceArchitecture architecture, int channels, int classes)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        architecture.Validate();
        return architecture.Family switch
        {
            SequenceFamily.TemporalConvolution => new TemporalConvolutionNetwork(architecture, channels, classes),
            SequenceFamily.Transformer => new TransformerSequenceNetwork(architecture, channels, classes),
            _ => new RecurrentSequenceNetwork(architecture, channels, classes),
        };
    }

    /// <summary>The network's description.</summary>
    public SequenceArchitecture Architecture { get; }
    /// <summary>Values per step.</summary>
    public int Channels { get; }
    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Trainable parameters.</summary>
    public long ParameterCount => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>Whether the network has one attention weight per step to show (<see cref="SequenceArchitecture.HasAttention"/>).</summary>
    public bool HasAttention => Architecture.HasAttention;

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
    public override Tensor forward(Tensor input) => Run(input, attention: false).Logits;

    /// <summary>
    /// The attention weights [N, T] of series [N, T, C]: one per step, zero at padding (see <see cref="HasAttention"/>).
    /// Call in evaluation mode.
    /// </summary>
    public Tensor Attention(Tensor input)
    {
        if (!HasAttention)
            throw new InvalidOperationException($"A {Architecture.Family} network with {Architecture.EffectivePooling} pooling has no attention weights; " +
                "use a Transformer, or attention pooling in a recurrent network.");
        var weights = Run(input, attention: true).Attention!;
        long missing = input.shape[1] - weights.shape[1];
        return missing == 0 ? weights : cat([weights, zeros(weights.shape[0], missing, device: weights.device)], 1);
    }

    private (Tensor Logits, Tensor? Attention) Run(Tensor input, bool attention)
    {
        var (x, valid, lengths) = Unpad((input - channel_mean) / channel_scale);
        return Classify(x, valid, lengths, attention);
    }

    /// <summary>
    /// The family's part: logits [N, K] of x [N, T, C] (zero at padding, T the batch's longest series), valid [N, T]
    /// marking each row's steps and lengths [N] (float); with <paramref name="attention"/> also the weights [N, T].
    /// </summary>
    private protected abstract (Tensor Logits, Tensor? Attention) Classify(Tensor x, Tensor valid, Tensor lengths, bool attention);

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

    /// <summary>
    /// Exports to ONNX for ML.NET (one row, no batch dimension). With <paramref name="inputSize"/> the input
    /// <paramref name="inputName"/> holds that many values (a fixed-length column); without it the input is [1, values] of
    /// any length (a variable-length column: ML.NET's ONNX transformer sizes the one free dimension from each row). Either
    /// way the values are read step-major, <see cref="Channels"/> per step, trailing all-NaN steps are padding, and the step
    /// count comes from the input's shape, so one graph takes series of every length. The output <paramref name="logitsName"/>
    /// is [K]; with <paramref name="attentionName"/> a second output holds one attention weight per input step (zero at padding).
    /// </summary>
    public byte[] ExportOnnx(string inputName, int? inputSize, string logitsName, string? attentionName = null)
    {
        eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (inputSize is { } size && (size < Channels || size % Channels != 0))
            throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize, $"The input must hold whole steps of {Channels} channels.");
        if (attentionName is not null && !HasAttention)
            throw new ArgumentException($"A {Architecture.Family} network with {Architecture.EffectivePooling} pooling has no attention weights to export.", nameof(attentionName));
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
        string valid = b.AddNode("Less", [stepIndices, length]);
        x = b.AddNode("Where", [isNan, b.AddInitializer("zero", zeros(1)), x]);
        var series = new SeriesNodes(x, valid, b.AddNode("Cast", [valid], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float)), length, stepIndices);

        var (logits, attention) = ExportBody(b, series, attentionName is not null);
        b.AddOutput(b.AddNode("Reshape", [logits, b.AddInitializer("logits_shape", [(long)Classes])]), logitsName, batched: false, Classes);
        if (attentionName is not null && inputSize is { } known)
            b.AddOutput(attention!, attentionName, TensorProto.Types.DataType.Float, (long)(known / Channels));
        else if (attentionName is not null)
            // [1, steps]: ML.NET's ONNX transformer drops a leading free dimension and reads the rest as a variable-length
            // vector; a lone symbolic dimension would be typed as a vector of size 1.
            b.AddOutput(b.AddNode("Unsqueeze", [attention!, b.AddInitializer("batch_axis", [0L])]), attentionName, TensorProto.Types.DataType.Float, "batch", "steps");
        return b.ToBytes(new Dictionary<string, string> { ["DeepVariants.SequenceArchitecture"] = Architecture.ToJson() });
    }

    /// <summary>The family's part of the graph: logits [1, K] of the row's steps, and with <paramref name="attention"/> the weights [T].</summary>
    private protected abstract (string Logits, string? Attention) ExportBody(OnnxGraphBuilder b, SeriesNodes series, bool attention);
}

/// <summary>
/// One row's series in the ONNX graph: <see cref="Steps"/> [T, 1, C] standardized with zeros at padding, <see cref="Valid"/>
/// [T] (bool) and <see cref="ValidFloat"/> [T] marking its steps, <see cref="Length"/> [1] (float) its steps, and
/// <see cref="StepIndices"/> [T] the float indices 0..T-1.
/// </summary>
internal sealed record SeriesNodes(string Steps, string Valid, string ValidFloat, string Length, string StepIndices);

/// <summary>
/// Attention pooling (Bahdanau et al. 2015): scores s_t = v · tanh(W h_t + b) over the valid steps, weights
/// a = softmax(s) (masked steps get none) and the pooled vector Σ_t a_t h_t.
/// </summary>
internal sealed class AttentionPooling : nn.Module
{
    private readonly TorchSharp.Modules.Linear projection;
    private readonly TorchSharp.Modules.Parameter vector;

    public AttentionPooling(long width) : base(nameof(AttentionPooling))
    {
        projection = nn.Linear(width, width);
        vector = nn.Parameter(empty(width).uniform_(-1 / Math.Sqrt(width), 1 / Math.Sqrt(width)));
        RegisterComponents();
    }

    /// <summary>The pooled vectors [N, D] of outputs [N, T, D], and the weights [N, T].</summary>
    public (Tensor Pooled, Tensor Weights) Pool(Tensor outputs, Tensor valid)
    {
        var scores = projection.call(outputs).tanh().matmul(vector);
        var weights = where(valid, scores, full_like(scores, SequenceNetworkScores.Masked)).softmax(1);
        return ((weights.unsqueeze(2) * outputs).sum(1), weights);
    }

    /// <summary>The pooled row [1, D] of one row's outputs [T, D], and the weights [T].</summary>
    public (string Pooled, string Weights) Export(OnnxGraphBuilder b, string outputsByStep, string valid)
    {
        string projected = b.AddNode("Tanh", [b.AddNode("Gemm", [outputsByStep, b.AddInitializer("attention_weight", projection.weight!),
            b.AddInitializer("attention_bias", projection.bias!)], OnnxGraphBuilder.Int("transB", 1))]);
        string scores = b.AddNode("MatMul", [projected, b.AddInitializer("attention_vector", vector)]);
        string masked = b.AddNode("Where", [valid, scores, b.AddInitializer("masked_score", full(1, SequenceNetworkScores.MaskedValue))]);
        string weights = b.AddNode("Softmax", [masked], OnnxGraphBuilder.Int("axis", 0));
        string row = b.AddNode("Unsqueeze", [weights, b.AddInitializer("row_axis", [0L])]);
        return (b.AddNode("MatMul", [row, outputsByStep]), weights);
    }
}

/// <summary>The score a masked step gets before a softmax, in every family's attention: its weight underflows to exactly zero.</summary>
internal static class SequenceNetworkScores
{
    public const double MaskedValue = -1e9;
    public static readonly Scalar Masked = Scalars.Of(MaskedValue);
}

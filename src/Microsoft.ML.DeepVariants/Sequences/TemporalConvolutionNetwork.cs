using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Which steps of a batch are real: <see cref="Valid"/> [N, 1, T] (bool), the same as floats, and the count of valid
/// steps in the batch (a scalar), for masked batch statistics. Its ONNX counterpart is <see cref="StepMaskNodes"/>.
/// </summary>
internal sealed record StepMask(Tensor Valid, Tensor ValidFloat, Tensor Count)
{
    public static StepMask Of(Tensor valid)
    {
        var mask = valid.unsqueeze(1);
        var floats = mask.to_type(ScalarType.Float32);
        return new StepMask(mask, floats, floats.sum());
    }
}

/// <summary>One row's valid steps in the ONNX graph: [1, 1, T] as bool and as float.</summary>
internal sealed record StepMaskNodes(string Valid, string ValidFloat);

/// <summary>
/// A 1-D convolution whose output has the input's length ("same" padding as Keras pads: (k - 1) / 2 zeros before and
/// k / 2 after, so even kernels work), and which reads padded steps as zeros. A series' last valid steps then see
/// exactly what they would see at the border of the unpadded series: y_t = b + Σ_j W_j x_{t + j - (k-1)/2}, with x zero
/// outside [0, length).
/// </summary>
internal sealed class SameConv1d : Module<Tensor, Tensor>
{
    private readonly Conv1d conv;
    private readonly long before, after;

    public SameConv1d(long inputs, long outputs, long kernel, bool bias) : base(nameof(SameConv1d))
    {
        conv = Conv1d(inputs, outputs, kernel, bias: bias);
        (before, after) = ((kernel - 1) / 2, kernel / 2);
        RegisterComponents();
    }

    /// <summary>x [N, C, T] with zeros at padded steps.</summary>
    public override Tensor forward(Tensor x) => conv.call(functional.pad(x, [before, after]));

    public string Export(OnnxGraphBuilder b, string x)
    {
        var inputs = new List<string> { x, b.AddInitializer("conv_weight", conv.weight!) };
        if (conv.bias is { } bias)
            inputs.Add(b.AddInitializer("conv_bias", bias));
        return b.AddNode("Conv", inputs, OnnxGraphBuilder.Ints("kernel_shape", [conv.kernel_size[0]]), OnnxGraphBuilder.Ints("pads", [before, after]));
    }
}

/// <summary>
/// Batch normalization over channels whose training statistics count valid steps only, so padding does not dilute
/// them: μ_c = Σ m_t x_ct / Σ m_t, σ²_c likewise, y = γ (x - μ) / √(σ² + ε) + β. In evaluation it uses running
/// statistics (momentum 0.1, unbiased variance, as PyTorch) and is ONNX's BatchNormalization.
/// </summary>
internal sealed class MaskedBatchNorm1d : nn.Module
{
    private const double Epsilon = 1e-5, Momentum = 0.1;
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Tensor running_mean;
    private readonly Tensor running_var;

    public MaskedBatchNorm1d(long channels) : base(nameof(MaskedBatchNorm1d))
    {
        weight = Parameter(ones(channels));
        bias = Parameter(zeros(channels));
        running_mean = zeros(channels);
        running_var = ones(channels);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, StepMask mask)
    {
        Tensor mean, variance;
        if (training)
        {
            mean = (x * mask.ValidFloat).sum([0, 2]) / mask.Count;
            var centered = x - mean.view(1, -1, 1);
            variance = (centered.square() * mask.ValidFloat).sum([0, 2]) / mask.Count;
            using (no_grad())
            {
                var unbiased = variance * mask.Count / (mask.Count - Scalars.One).clamp_min(Scalars.One);
                running_mean.mul_(Scalars.Of(1 - Momentum)).add_(mean, Scalars.Of(Momentum));
                running_var.mul_(Scalars.Of(1 - Momentum)).add_(unbiased, Scalars.Of(Momentum));
            }
        }
        else
            (mean, variance) = (running_mean, running_var);
        var scale = weight / variance.Plus(Epsilon).sqrt();
        return (x - mean.view(1, -1, 1)) * scale.view(1, -1, 1) + bias.view(1, -1, 1);
    }

    public string Export(OnnxGraphBuilder b, string x) => b.AddNode("BatchNormalization",
        [x, b.AddInitializer("bn_scale", weight), b.AddInitializer("bn_bias", bias), b.AddInitializer("bn_mean", running_mean), b.AddInitializer("bn_var", running_var)],
        OnnxGraphBuilder.Float("epsilon", (float)Epsilon));
}

/// <summary>Convolution, masked batch normalization and (optionally) ReLU: the unit every temporal CNN here is made of.</summary>
internal sealed class ConvNorm : nn.Module
{
    private readonly SameConv1d conv;
    private readonly MaskedBatchNorm1d norm;
    private readonly bool relu;

    public ConvNorm(long inputs, long outputs, long kernel, bool bias, bool relu = true) : base(nameof(ConvNorm))
    {
        conv = new SameConv1d(inputs, outputs, kernel, bias);
        norm = new MaskedBatchNorm1d(outputs);
        this.relu = relu;
        RegisterComponents();
    }

    /// <summary>x [N, C, T] with zeros at padding; the output is zero at padding too.</summary>
    public Tensor Forward(Tensor x, StepMask mask)
    {
        var y = norm.Forward(conv.call(x), mask);
        return (relu ? functional.relu(y) : y) * mask.ValidFloat;
    }

    public string Export(OnnxGraphBuilder b, string x, StepMaskNodes mask)
    {
        string y = norm.Export(b, conv.Export(b, x));
        return b.AddNode("Mul", [relu ? b.AddNode("Relu", [y]) : y, mask.ValidFloat]);
    }
}

/// <summary>A ResNet block (Wang et al. 2017): three ConvNorm units (kernels 8-5-3), the last without ReLU, plus a shortcut (1x1 convolution and batch norm where the width changes, batch norm alone otherwise), then ReLU.</summary>
internal sealed class ResidualBlock1d : nn.Module
{
    private readonly ModuleList<ConvNorm> units = new();
    private readonly SameConv1d? shortcut_conv;
    private readonly MaskedBatchNorm1d shortcut_norm;

    public ResidualBlock1d(long inputs, long outputs, IReadOnlyList<int> kernels) : base(nameof(ResidualBlock1d))
    {
        for (int i = 0; i < kernels.Count; i++)
            units.Add(new ConvNorm(i == 0 ? inputs : outputs, outputs, kernels[i], bias: true, relu: i < kernels.Count - 1));
        shortcut_conv = inputs != outputs ? new SameConv1d(inputs, outputs, 1, bias: true) : null;
        shortcut_norm = new MaskedBatchNorm1d(outputs);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, StepMask mask)
    {
        var y = x;
        foreach (var unit in units)
            y = unit.Forward(y, mask);
        var shortcut = shortcut_norm.Forward(shortcut_conv?.call(x) ?? x, mask);
        return functional.relu(y + shortcut) * mask.ValidFloat;
    }

    public string Export(OnnxGraphBuilder b, string x, StepMaskNodes mask)
    {
        string y = x;
        foreach (var unit in units)
            y = unit.Export(b, y, mask);
        string shortcut = shortcut_norm.Export(b, shortcut_conv?.Export(b, x) ?? x);
        return b.AddNode("Mul", [b.AddNode("Relu", [b.AddNode("Add", [y, shortcut])]), mask.ValidFloat]);
    }
}

/// <summary>
/// An Inception module (Ismail Fawaz et al. 2020): a 1x1 bottleneck (when the input has more than one channel), three
/// convolutions of it with kernels k, k/2, k/4, and beside them a max-pool (width 3, over valid steps only) of the input
/// followed by a 1x1 convolution; the four outputs concatenated, batch-normalized and rectified.
/// </summary>
internal sealed class InceptionModule : nn.Module
{
    private static readonly Scalar NegativeInfinity = Scalars.Of(double.NegativeInfinity);
    private readonly SameConv1d? bottleneck;
    private readonly ModuleList<SameConv1d> branches = new();
    private readonly SameConv1d pool_conv;
    private readonly MaskedBatchNorm1d norm;

    public InceptionModule(long inputs, long filters, long bottleneckWidth, IReadOnlyList<int> kernels) : base(nameof(InceptionModule))
    {
        bottleneck = inputs > 1 ? new SameConv1d(inputs, bottleneckWidth, 1, bias: false) : null;
        foreach (int kernel in kernels)
            branches.Add(new SameConv1d(bottleneck is null ? inputs : bottleneckWidth, filters, kernel, bias: false));
        pool_conv = new SameConv1d(inputs, filters, 1, bias: false);
        norm = new MaskedBatchNorm1d(filters * (kernels.Count + 1));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, StepMask mask)
    {
        var narrow = bottleneck?.call(x) ?? x;
        var outputs = branches.Select(branch => branch.call(narrow)).ToList();
        // Padded steps must never win the max: they are minus infinity there, as outside the series. A window of padding
        // alone gives minus infinity, which is set back to zero (where, since -inf x 0 is NaN).
        var padding = mask.Valid.logical_not();
        var pooled = functional.max_pool1d(x.masked_fill(padding, NegativeInfinity), 3, stride: 1, padding: 1);
        outputs.Add(pool_conv.call(pooled.masked_fill(padding, Scalars.Zero)));
        return functional.relu(norm.Forward(cat(outputs, 1), mask)) * mask.ValidFloat;
    }

    public string Export(OnnxGraphBuilder b, string x, StepMaskNodes mask)
    {
        string narrow = bottleneck?.Export(b, x) ?? x;
        var outputs = branches.Select(branch => branch.Export(b, narrow)).ToList();
        string masked = b.AddNode("Where", [mask.Valid, x, b.AddInitializer("minus_infinity", full(1, double.NegativeInfinity))]);
        string pooled = b.AddNode("MaxPool", [masked], OnnxGraphBuilder.Ints("kernel_shape", [3]), OnnxGraphBuilder.Ints("strides", [1]), OnnxGraphBuilder.Ints("pads", [1, 1]));
        outputs.Add(pool_conv.Export(b, b.AddNode("Where", [mask.Valid, pooled, b.AddInitializer("zero", zeros(1))])));
        string y = norm.Export(b, b.AddNode("Concat", outputs, OnnxGraphBuilder.Int("axis", 1)));
        return b.AddNode("Mul", [b.AddNode("Relu", [y]), mask.ValidFloat]);
    }
}

/// <summary>
/// One temporal CNN of a preset, up to its global average pooling over the valid steps: FCN's three ConvNorm blocks,
/// ResNet's three residual blocks, or InceptionTime's modules with a shortcut (1x1 convolution and batch norm) added
/// every three modules.
/// </summary>
internal sealed class TemporalConvolutionBody : nn.Module
{
    private readonly ModuleList<nn.Module> blocks = new();
    private readonly ModuleList<SameConv1d> shortcut_convs = new();
    private readonly ModuleList<MaskedBatchNorm1d> shortcut_norms = new();
    private readonly TemporalConvolutionPreset preset;

    public TemporalConvolutionBody(SequenceArchitecture a, int channels) : base(nameof(TemporalConvolutionBody))
    {
        preset = a.Preset;
        long f = a.EffectiveFilters;
        var k = a.Kernels;
        switch (a.Preset)
        {
            case TemporalConvolutionPreset.Fcn:
                long[] widths = [f, 2 * f, f];
                for (int i = 0; i < 3; i++)
                    blocks.Add(new ConvNorm(i == 0 ? channels : widths[i - 1], widths[i], k[i], bias: true));
                Width = f;
                break;
            case TemporalConvolutionPreset.ResNet:
                long input = channels;
                foreach (long width in new[] { f, 2 * f, 2 * f })
                {
                    blocks.Add(new ResidualBlock1d(input, width, k));
                    input = width;
                }
                Width = 2 * f;
                break;
            default:
                long moduleInput = channels, residualInput = channels;
                for (int d = 0; d < a.Depth; d++)
                {
                    blocks.Add(new InceptionModule(moduleInput, f, a.Bottleneck, k));
                    moduleInput = 4 * f;
                    if (d % 3 == 2)
                    {
                        shortcut_convs.Add(new SameConv1d(residualInput, 4 * f, 1, bias: false));
                        shortcut_norms.Add(new MaskedBatchNorm1d(4 * f));
                        residualInput = 4 * f;
                    }
                }
                Width = 4 * f;
                break;
        }
        RegisterComponents();
    }

    /// <summary>Channels of the pooled vector.</summary>
    public long Width { get; }

    /// <summary>The pooled features [N, Width] of x [N, C, T] (zeros at padding).</summary>
    public Tensor Forward(Tensor x, StepMask mask, Tensor lengths)
    {
        var residual = x;
        for (int i = 0; i < blocks.Count; i++)
        {
            x = blocks[i] switch
            {
                ConvNorm unit => unit.Forward(x, mask),
                ResidualBlock1d block => block.Forward(x, mask),
                InceptionModule module => module.Forward(x, mask),
                var other => throw new InvalidOperationException($"Unknown block {other.GetName()}."),
            };
            if (preset == TemporalConvolutionPreset.InceptionTime && i % 3 == 2)
            {
                var shortcut = shortcut_norms[i / 3].Forward(shortcut_convs[i / 3].call(residual), mask);
                x = residual = functional.relu(x + shortcut) * mask.ValidFloat;
            }
        }
        return x.sum(2) / lengths.unsqueeze(1);
    }

    /// <summary>The pooled row [1, Width] of x [1, C, T].</summary>
    public string Export(OnnxGraphBuilder b, string x, StepMaskNodes mask, string length)
    {
        string residual = x;
        for (int i = 0; i < blocks.Count; i++)
        {
            x = blocks[i] switch
            {
                ConvNorm unit => unit.Export(b, x, mask),
                ResidualBlock1d block => block.Export(b, x, mask),
                InceptionModule module => module.Export(b, x, mask),
                var other => throw new InvalidOperationException($"Unknown block {other.GetName()}."),
            };
            if (preset == TemporalConvolutionPreset.InceptionTime && i % 3 == 2)
            {
                string shortcut = shortcut_norms[i / 3].Export(b, shortcut_convs[i / 3].Export(b, residual));
                x = residual = b.AddNode("Mul", [b.AddNode("Relu", [b.AddNode("Add", [x, shortcut])]), mask.ValidFloat]);
            }
        }
        return b.AddNode("Div", [b.AddNode("ReduceSum", [x, b.AddInitializer("time_axis", [2L])], OnnxGraphBuilder.Int("keepdims", 0)), length]);
    }
}

/// <summary>
/// The temporal convolution family: <see cref="SequenceArchitecture.EnsembleSize"/> networks of a preset (FCN, ResNet,
/// InceptionTime), each a <see cref="TemporalConvolutionBody"/> and a linear layer. One network gives its logits. An
/// ensemble gives log(mean_e softmax(z_e)), the log of its members' averaged probabilities, in evaluation; in training
/// it gives the members' logits side by side [N, E x K], so each member learns on its own loss
/// (<see cref="EnsembleObjective"/>), as InceptionTime's members are trained independently.
/// </summary>
internal sealed class TemporalConvolutionNetwork : SequenceNetwork
{
    private readonly ModuleList<TemporalConvolutionBody> members = new();
    private readonly ModuleList<Linear> classifiers = new();

    public TemporalConvolutionNetwork(SequenceArchitecture architecture, int channels, int classes)
        : base(nameof(TemporalConvolutionNetwork), architecture, channels, classes)
    {
        for (int e = 0; e < architecture.EnsembleSize; e++)
        {
            var body = new TemporalConvolutionBody(architecture, channels);
            members.Add(body);
            classifiers.Add(Linear(body.Width, classes));
        }
        RegisterComponents();
    }

    private protected override (Tensor Logits, Tensor? Attention) Classify(Tensor x, Tensor valid, Tensor lengths, bool attention)
    {
        var mask = StepMask.Of(valid);
        var steps = x.transpose(1, 2);
        var logits = Enumerable.Range(0, members.Count).Select(e => classifiers[e].call(members[e].Forward(steps, mask, lengths))).ToArray();
        if (logits.Length == 1)
            return (logits[0], null);
        if (training)
            return (cat(logits, 1), null);
        return (stack(logits.Select(z => z.log_softmax(1)).ToArray(), 0).logsumexp(0).Plus(-Math.Log(logits.Length)), null);
    }

    private protected override (string Logits, string? Attention) ExportBody(OnnxGraphBuilder b, SeriesNodes series, bool attention)
    {
        string steps = b.AddNode("Transpose", [series.Steps], OnnxGraphBuilder.Ints("perm", [1, 2, 0]));
        string validRow = b.AddNode("Reshape", [series.Valid, b.AddInitializer("mask_shape", [1L, 1L, -1L])]);
        var mask = new StepMaskNodes(validRow, b.AddNode("Cast", [validRow], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float)));
        var logits = Enumerable.Range(0, members.Count).Select(e => b.AddNode("Gemm",
            [members[e].Export(b, steps, mask, series.Length), b.AddInitializer("classifier_weight", classifiers[e].weight!), b.AddInitializer("classifier_bias", classifiers[e].bias!)],
            OnnxGraphBuilder.Int("transB", 1))).ToList();
        if (logits.Count == 1)
            return (logits[0], null);
        string logProbabilities = b.AddNode("Concat", logits.Select(z => b.AddNode("LogSoftmax", [z], OnnxGraphBuilder.Int("axis", 1))), OnnxGraphBuilder.Int("axis", 0));
        string combined = b.AddNode("ReduceLogSumExp", [logProbabilities], OnnxGraphBuilder.Ints("axes", [0]), OnnxGraphBuilder.Int("keepdims", 1));
        return (b.AddNode("Sub", [combined, b.AddInitializer("log_members", full(1, Math.Log(logits.Count)))]), null);
    }
}

/// <summary>
/// Cross-entropy for an ensemble: in training the output holds E members' logits side by side and the loss is their
/// mean cross-entropy, each member learning alone; in evaluation it holds the ensemble's log-probabilities [N, K].
/// Accuracy is the ensemble's.
/// </summary>
internal sealed class EnsembleObjective(int classes) : ITrainingObjective
{
    private readonly ClassificationObjective _single = new();

    public Tensor Loss(Tensor output, Tensor target)
    {
        if (output.shape[1] == classes)
            return _single.Loss(output, target);
        long members = output.shape[1] / classes;
        var logits = output.view(output.shape[0] * members, classes);
        return _single.Loss(logits, target.repeat_interleave(members));
    }

    public double? MetricSum(Tensor output, Tensor target) => _single.MetricSum(Combined(output), target);

    public long CountedRows(Tensor target) => _single.CountedRows(target);

    public bool ClassifiesRows => true;

    public void AddClasses(Tensor output, Tensor target, ClassesSeen seen) => _single.AddClasses(Combined(output), target, seen);

    // The ensemble's log-probabilities of members' logits side by side (or the output as it is, in evaluation).
    private Tensor Combined(Tensor output)
    {
        if (output.shape[1] == classes)
            return output;
        long members = output.shape[1] / classes;
        return output.view(output.shape[0], members, classes).log_softmax(2).logsumexp(1);
    }
}

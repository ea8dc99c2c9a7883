using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>The kind of network that reads the series.</summary>
public enum SequenceFamily
{
    /// <summary>Stacked LSTM or GRU layers (<see cref="SequenceArchitecture.Cell"/>).</summary>
    Recurrent,
    /// <summary>One-dimensional convolutions over the steps, then global average pooling (<see cref="SequenceArchitecture.Preset"/>).</summary>
    TemporalConvolution,
    /// <summary>A Transformer encoder (Vaswani et al. 2017): multi-head self-attention over the steps.</summary>
    Transformer,
}

/// <summary>The recurrent cell.</summary>
public enum RecurrentCell
{
    /// <summary>Long short-term memory (Hochreiter and Schmidhuber 1997): input, forget and output gates and a cell state.</summary>
    Lstm,
    /// <summary>Gated recurrent unit (Cho et al. 2014): update and reset gates, no separate cell state.</summary>
    Gru,
}

/// <summary>The published temporal convolution networks for series classification (Fawaz et al. 2019; Ismail Fawaz et al. 2020).</summary>
public enum TemporalConvolutionPreset
{
    /// <summary>Fully convolutional network (Wang et al. 2017): three blocks of convolution, batch norm and ReLU, F-2F-F filters with kernels 8-5-3.</summary>
    Fcn,
    /// <summary>ResNet (Wang et al. 2017): three residual blocks of three convolutions (kernels 8-5-3), F-2F-2F filters, a 1x1 shortcut where the width changes.</summary>
    ResNet,
    /// <summary>
    /// InceptionTime (Ismail Fawaz et al. 2020): <see cref="SequenceArchitecture.Depth"/> Inception modules, each a bottleneck then
    /// convolutions of kernels k, k/2 and k/4 beside a max-pool branch, F filters per branch, a residual connection every three modules.
    /// </summary>
    InceptionTime,
}

/// <summary>How a Transformer knows where each step is.</summary>
public enum PositionEncoding
{
    /// <summary>Fixed sines and cosines of the step number at geometric frequencies (Vaswani et al. 2017): any length.</summary>
    Sinusoidal,
    /// <summary>A learned vector per step up to <see cref="SequenceArchitecture.MaxPositions"/>; later steps share the last one.</summary>
    Learned,
}

/// <summary>How the top layer's outputs over the steps become one vector per series.</summary>
public enum SequencePooling
{
    /// <summary>Recurrent only: the final state, the last valid step's forward state (and, when bidirectional, the backward state after the first step).</summary>
    Last,
    /// <summary>The mean of the outputs over the valid steps (for temporal convolutions: global average pooling).</summary>
    Mean,
    /// <summary>Learned attention (Bahdanau et al. 2015): a softmax over the valid steps of a scored projection weights their outputs.</summary>
    Attention,
    /// <summary>Transformer only: a learned token put before the steps, whose output is the series' vector (as BERT's [CLS]).</summary>
    ClassToken,
}

/// <summary>
/// The network that reads the series: its family and that family's knobs. Knobs of other families are ignored.
/// Serializable, for sweeps.
/// </summary>
/// <example>
/// <code>
/// var lstm = new SequenceArchitecture { Cell = RecurrentCell.Gru, Layers = 2, HiddenSize = 64, Bidirectional = true };
/// var inception = new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime };
/// var transformer = new SequenceArchitecture { Family = SequenceFamily.Transformer, Layers = 2, ModelWidth = 64, Heads = 4 };
/// </code>
/// </example>
public sealed class SequenceArchitecture
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>Recurrent, temporal convolution or Transformer. Default <see cref="SequenceFamily.Recurrent"/>.</summary>
    public SequenceFamily Family { get; set; } = SequenceFamily.Recurrent;

    /// <summary>Recurrent: LSTM or GRU. Default LSTM.</summary>
    public RecurrentCell Cell { get; set; } = RecurrentCell.Lstm;

    /// <summary>Recurrent: stacked layers; Transformer: encoder blocks. 1 to 16. Default 1.</summary>
    public int Layers { get; set; } = 1;

    /// <summary>Recurrent: hidden units per direction, 1 to 16,384. Default 64.</summary>
    public int HiddenSize { get; set; } = 64;

    /// <summary>Recurrent: runs each layer forwards and backwards and concatenates the two. Default false.</summary>
    public bool Bidirectional { get; set; }

    /// <summary>Recurrent: dropout between stacked layers; Transformer: dropout on each block's residual branches. Training only. Default 0.</summary>
    public float Dropout { get; set; }

    /// <summary>
    /// Pooling of the outputs over the steps; null takes the family's: <see cref="SequencePooling.Last"/> for recurrent networks,
    /// <see cref="SequencePooling.Mean"/> (global average pooling, the only one) for temporal convolutions, <see cref="SequencePooling.ClassToken"/>
    /// for Transformers. Default null.
    /// </summary>
    public SequencePooling? Pooling { get; set; }

    /// <summary>Temporal convolution: which published network. Default <see cref="TemporalConvolutionPreset.Fcn"/>.</summary>
    public TemporalConvolutionPreset Preset { get; set; } = TemporalConvolutionPreset.Fcn;

    /// <summary>Temporal convolution: the base number of filters F, 1 to 4,096; null takes the preset's (FCN 128, ResNet 64, InceptionTime 32 per branch). Default null.</summary>
    public int? Filters { get; set; }

    /// <summary>InceptionTime: the longest kernel k (the other branches take k/2 and k/4), 4 to 1,024; null takes 40. FCN and ResNet keep their published 8-5-3. Default null.</summary>
    public int? KernelSize { get; set; }

    /// <summary>InceptionTime: Inception modules, 1 to 30. Default 6.</summary>
    public int Depth { get; set; } = 6;

    /// <summary>InceptionTime: channels of the 1x1 bottleneck before each module's convolutions, 1 to 4,096. Default 32.</summary>
    public int Bottleneck { get; set; } = 32;

    /// <summary>
    /// Temporal convolution: networks trained side by side from different initial weights, whose class probabilities are
    /// averaged (InceptionTime is an ensemble of 5), 1 to 10. Default 1.
    /// </summary>
    public int EnsembleSize { get; set; } = 1;

    /// <summary>Transformer: the model width d, 2 to 4,096, a multiple of <see cref="Heads"/> (and even for sinusoidal positions). Default 64.</summary>
    public int ModelWidth { get; set; } = 64;

    /// <summary>Transformer: attention heads, 1 to 64, dividing <see cref="ModelWidth"/>. Default 4.</summary>
    public int Heads { get; set; } = 4;

    /// <summary>Transformer: the feed-forward layer's width, 1 to 65,536; null takes 4 x <see cref="ModelWidth"/>. Default null.</summary>
    public int? FeedForwardSize { get; set; }

    /// <summary>Transformer: sinusoidal or learned positions. Default <see cref="PositionEncoding.Sinusoidal"/>.</summary>
    public PositionEncoding Positions { get; set; } = PositionEncoding.Sinusoidal;

    /// <summary>Transformer with learned positions: the positions learned, 1 to 100,000. Default 512.</summary>
    public int MaxPositions { get; set; } = 512;

    /// <summary>The pooling used: <see cref="Pooling"/>, or the family's default.</summary>
    [JsonIgnore]
    public SequencePooling EffectivePooling => Pooling ?? Family switch
    {
        SequenceFamily.TemporalConvolution => SequencePooling.Mean,
        SequenceFamily.Transformer => SequencePooling.ClassToken,
        _ => SequencePooling.Last,
    };

    /// <summary>
    /// Whether the network has one attention weight per step to show: a Transformer (its last block's attention from the
    /// pooling token, averaged over heads), or a recurrent network with attention pooling.
    /// </summary>
    [JsonIgnore]
    public bool HasAttention => Family == SequenceFamily.Transformer
        || (Family == SequenceFamily.Recurrent && EffectivePooling == SequencePooling.Attention);

    /// <summary>The base filter count used: <see cref="Filters"/>, or the preset's.</summary>
    [JsonIgnore]
    public int EffectiveFilters => Filters ?? Preset switch
    {
        TemporalConvolutionPreset.Fcn => 128,
        TemporalConvolutionPreset.ResNet => 64,
        _ => 32,
    };

    /// <summary>The convolution kernels of each block (FCN, ResNet) or of each Inception module's branches.</summary>
    [JsonIgnore]
    public IReadOnlyList<int> Kernels => Preset == TemporalConvolutionPreset.InceptionTime
        ? [KernelSize ?? 40, (KernelSize ?? 40) / 2, (KernelSize ?? 40) / 4]
        : [8, 5, 3];

    /// <summary>The Transformer's feed-forward width used.</summary>
    [JsonIgnore]
    public int EffectiveFeedForwardSize => FeedForwardSize ?? 4 * ModelWidth;

    /// <summary>This description as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// Trainable parameters of the network for <paramref name="channels"/> values per step and <paramref name="classes"/>
    /// classes, counted from the description (nothing is allocated).
    /// </summary>
    public long ParameterCount(int channels, int classes)
    {
        Validate();
        return Family switch
        {
            SequenceFamily.TemporalConvolution => EnsembleSize * (TemporalConvolutionParameters(channels, out long width) + width * classes + classes),
            SequenceFamily.Transformer => TransformerParameters(channels) + (long)ModelWidth * classes + classes,
            _ => RecurrentParameters(channels, classes),
        };
    }

    // Per layer and direction G x H x (inputs + H) weights and 2 x G x H biases (G = 4 gates for LSTM, 3 for GRU).
    private long RecurrentParameters(int channels, int classes)
    {
        long gates = RecurrentDirection.Gates(Cell) * (long)HiddenSize, output = (Bidirectional ? 2L : 1L) * HiddenSize;
        long count = 0;
        for (int layer = 0; layer < Layers; layer++)
            count += (Bidirectional ? 2 : 1) * (gates * ((layer == 0 ? channels : output) + HiddenSize) + 2 * gates);
        if (EffectivePooling == SequencePooling.Attention)
            count += output * output + 2 * output;
        return count + output * classes + classes;
    }

    // Convolutions (FCN and ResNet with biases, InceptionTime without, as published) and batch-norm scales and shifts.
    private long TemporalConvolutionParameters(long channels, out long width)
    {
        static long Conv(long inputs, long outputs, long kernel, bool bias) => outputs * inputs * kernel + (bias ? outputs : 0);
        long f = EffectiveFilters, count = 0;
        var k = Kernels;
        switch (Preset)
        {
            case TemporalConvolutionPreset.Fcn:
                long[] fcn = [f, 2 * f, f];
                for (int i = 0; i < 3; i++)
                    count += Conv(i == 0 ? channels : fcn[i - 1], fcn[i], k[i], true) + 2 * fcn[i];
                width = f;
                return count;
            case TemporalConvolutionPreset.ResNet:
                long input = channels;
                foreach (long blockWidth in new[] { f, 2 * f, 2 * f })
                {
                    count += Conv(input, blockWidth, k[0], true) + Conv(blockWidth, blockWidth, k[1], true) + Conv(blockWidth, blockWidth, k[2], true) + 3 * 2 * blockWidth;
                    count += (input != blockWidth ? Conv(input, blockWidth, 1, true) : 0) + 2 * blockWidth;
                    input = blockWidth;
                }
                width = 2 * f;
                return count;
            default:
                long moduleInput = channels, residualInput = channels;
                for (int d = 0; d < Depth; d++)
                {
                    long branchInput = moduleInput > 1 ? Bottleneck : moduleInput;
                    count += (moduleInput > 1 ? Conv(moduleInput, Bottleneck, 1, false) : 0) + k.Sum(kernel => Conv(branchInput, f, kernel, false))
                        + Conv(moduleInput, f, 1, false) + 2 * 4 * f;
                    moduleInput = 4 * f;
                    if (d % 3 == 2)
                    {
                        count += Conv(residualInput, 4 * f, 1, false) + 2 * 4 * f;
                        residualInput = 4 * f;
                    }
                }
                width = 4 * f;
                return count;
        }
    }

    // Input projection, positions, class token, per block two layer norms, the q/k/v and output projections and the
    // feed-forward pair, the final layer norm, and attention pooling's projection and vector.
    private long TransformerParameters(long channels)
    {
        long d = ModelWidth, m = EffectiveFeedForwardSize;
        long count = channels * d + d;
        if (Positions == PositionEncoding.Learned)
            count += MaxPositions * d;
        var pooling = EffectivePooling;
        if (pooling == SequencePooling.ClassToken)
            count += d;
        count += Layers * (2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * m + m) + (m * d + d));
        count += 2 * d;
        if (pooling == SequencePooling.Attention)
            count += d * d + 2 * d;
        return count;
    }

    /// <summary>Throws, naming the knob, when the description cannot be built.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Family))
            throw new ArgumentOutOfRangeException(nameof(Family), Family, "Unknown sequence family.");
        if (Pooling is { } chosen && !Enum.IsDefined(chosen))
            throw new ArgumentOutOfRangeException(nameof(Pooling), chosen, "Unknown pooling.");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        var pooling = EffectivePooling;
        switch (Family)
        {
            case SequenceFamily.Recurrent:
                if (!Enum.IsDefined(Cell))
                    throw new ArgumentOutOfRangeException(nameof(Cell), Cell, "Unknown recurrent cell.");
                Range(nameof(Layers), Layers, 1, 16);
                Range(nameof(HiddenSize), HiddenSize, 1, 16384);
                if (pooling == SequencePooling.ClassToken)
                    throw new ArgumentOutOfRangeException(nameof(Pooling), pooling, "ClassToken pooling is for Transformers; a recurrent network pools by Last, Mean or Attention.");
                break;
            case SequenceFamily.TemporalConvolution:
                if (!Enum.IsDefined(Preset))
                    throw new ArgumentOutOfRangeException(nameof(Preset), Preset, "Unknown temporal convolution preset.");
                if (pooling != SequencePooling.Mean)
                    throw new ArgumentOutOfRangeException(nameof(Pooling), pooling, "Temporal convolutions pool by Mean (global average pooling over the valid steps); leave Pooling null.");
                Range(nameof(Filters), EffectiveFilters, 1, 4096);
                Range(nameof(EnsembleSize), EnsembleSize, 1, 10);
                if (Preset == TemporalConvolutionPreset.InceptionTime)
                {
                    Range(nameof(KernelSize), KernelSize ?? 40, 4, 1024);
                    Range(nameof(Depth), Depth, 1, 30);
                    Range(nameof(Bottleneck), Bottleneck, 1, 4096);
                }
                else if (KernelSize is not null)
                    throw new ArgumentOutOfRangeException(nameof(KernelSize), KernelSize,
                        $"KernelSize sets InceptionTime's kernels; {Preset} keeps its published kernels 8, 5 and 3. Leave KernelSize null.");
                break;
            case SequenceFamily.Transformer:
                Range(nameof(Layers), Layers, 1, 16);
                Range(nameof(ModelWidth), ModelWidth, 2, 4096);
                Range(nameof(Heads), Heads, 1, 64);
                if (ModelWidth % Heads != 0)
                    throw new ArgumentOutOfRangeException(nameof(Heads), Heads, $"Heads ({Heads}) must divide ModelWidth ({ModelWidth}): each head takes ModelWidth / Heads of the width.");
                if (!Enum.IsDefined(Positions))
                    throw new ArgumentOutOfRangeException(nameof(Positions), Positions, "Unknown position encoding.");
                if (Positions == PositionEncoding.Sinusoidal && ModelWidth % 2 != 0)
                    throw new ArgumentOutOfRangeException(nameof(ModelWidth), ModelWidth, "Sinusoidal positions take a sine and a cosine per frequency: ModelWidth must be even.");
                Range(nameof(FeedForwardSize), EffectiveFeedForwardSize, 1, 65536);
                Range(nameof(MaxPositions), MaxPositions, 1, 100000);
                if (pooling == SequencePooling.Last)
                    throw new ArgumentOutOfRangeException(nameof(Pooling), pooling, "Last pooling is for recurrent networks; a Transformer pools by ClassToken, Mean or Attention.");
                break;
        }
    }

    private static void Range(string name, int value, int min, int max)
    {
        if (value < min || value > max)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be from {min:N0} to {max:N0}.");
    }
}

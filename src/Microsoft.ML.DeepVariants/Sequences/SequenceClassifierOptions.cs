using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>The recurrent cell.</summary>
public enum RecurrentCell
{
    /// <summary>Long short-term memory (Hochreiter and Schmidhuber 1997): input, forget and output gates and a cell state.</summary>
    Lstm,
    /// <summary>Gated recurrent unit (Cho et al. 2014): update and reset gates, no separate cell state.</summary>
    Gru,
}

/// <summary>How the top layer's outputs over the steps become one vector per series.</summary>
public enum SequencePooling
{
    /// <summary>The final state: the last valid step's forward state (and, when bidirectional, the backward state after the first step).</summary>
    Last,
    /// <summary>The mean of the outputs over the valid steps.</summary>
    Mean,
    /// <summary>Learned attention (Bahdanau et al. 2015): a softmax over the valid steps of a scored projection weights their outputs.</summary>
    Attention,
}

/// <summary>The recurrent network: cell, layers, width, direction, dropout and pooling. Serializable, for sweeps.</summary>
/// <example>
/// <code>
/// var architecture = new SequenceArchitecture { Cell = RecurrentCell.Gru, Layers = 2, HiddenSize = 64, Bidirectional = true };
/// </code>
/// </example>
public sealed class SequenceArchitecture
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>LSTM or GRU. Default LSTM.</summary>
    public RecurrentCell Cell { get; set; } = RecurrentCell.Lstm;

    /// <summary>Stacked recurrent layers, 1 to 16. Default 1.</summary>
    public int Layers { get; set; } = 1;

    /// <summary>Hidden units per direction, 1 to 16,384. Default 64.</summary>
    public int HiddenSize { get; set; } = 64;

    /// <summary>Runs each layer forwards and backwards and concatenates the two. Default false.</summary>
    public bool Bidirectional { get; set; }

    /// <summary>Dropout between stacked layers (training only). Default 0.</summary>
    public float Dropout { get; set; }

    /// <summary>Pooling of the outputs over the steps. Default <see cref="SequencePooling.Last"/>.</summary>
    public SequencePooling Pooling { get; set; } = SequencePooling.Last;

    /// <summary>This description as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// Trainable parameters of the network for <paramref name="channels"/> values per step and <paramref name="classes"/>
    /// classes, counted from the description (nothing is allocated): per layer and direction G x H x (inputs + H) weights
    /// and 2 x G x H biases (G = 4 gates for LSTM, 3 for GRU), the attention pooling's when chosen, and the classifier.
    /// </summary>
    public long ParameterCount(int channels, int classes)
    {
        Validate();
        long gates = RecurrentDirection.Gates(Cell) * (long)HiddenSize, output = (Bidirectional ? 2L : 1L) * HiddenSize;
        long count = 0;
        for (int layer = 0; layer < Layers; layer++)
            count += (Bidirectional ? 2 : 1) * (gates * ((layer == 0 ? channels : output) + HiddenSize) + 2 * gates);
        if (Pooling == SequencePooling.Attention)
            count += output * output + 2 * output;
        return count + output * classes + classes;
    }

    /// <summary>Throws, naming the knob, when the description cannot be built.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Cell))
            throw new ArgumentOutOfRangeException(nameof(Cell), Cell, "Unknown recurrent cell.");
        if (!Enum.IsDefined(Pooling))
            throw new ArgumentOutOfRangeException(nameof(Pooling), Pooling, "Unknown pooling.");
        if (Layers is < 1 or > 16)
            throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "Layers must be from 1 to 16.");
        if (HiddenSize is < 1 or > 16384)
            throw new ArgumentOutOfRangeException(nameof(HiddenSize), HiddenSize, "HiddenSize must be from 1 to 16,384.");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
    }
}

/// <summary>
/// Options of <see cref="SequenceClassifierEstimator"/>. The input column holds one series per row, step-major:
/// the <see cref="Channels"/> values of step 1, then those of step 2, and so on. It is either a variable-length
/// float vector, or a fixed-length one in which trailing steps whose values are all NaN are padding.
/// </summary>
/// <example>
/// <code>
/// var options = new SequenceClassifierOptions
/// {
///     Channels = 12, Epochs = 30,
///     Architecture = new SequenceArchitecture { Cell = RecurrentCell.Lstm, HiddenSize = 64, Pooling = SequencePooling.Attention },
/// };
/// </code>
/// </example>
public sealed class SequenceClassifierOptions : TrainingOptions
{
    /// <summary>
    /// The defaults train a recurrent network for at least 300 optimizer steps (<see cref="TrainingOptions.MinimumSteps"/>):
    /// UCR and UEA problems are often tens of series, which 5 epochs of batches of 128 would give 5 steps, too few to learn.
    /// </summary>
    public SequenceClassifierOptions() => MinimumSteps = 300;

    /// <summary>The series column. Default "Series".</summary>
    public string FeatureColumnName { get; set; } = "Series";

    /// <summary>The label column: a key, or any type MapValueToKey accepts (it is converted). Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>Values per step (the series' dimensions). Default 1.</summary>
    public int Channels { get; set; } = 1;

    /// <summary>
    /// The longest series, in steps, that a model fitted on a variable-length column accepts; 0 takes the longest
    /// training series. (A fixed-length column fixes it already.) Default 0.
    /// </summary>
    public int MaxLength { get; set; }

    /// <summary>
    /// Standardizes each channel with its mean and standard deviation on the training series, inside the model (so
    /// the saved model applies it too). Default true.
    /// </summary>
    public bool NormalizeChannels { get; set; } = true;

    /// <summary>The network. Default: one LSTM layer of 64 units, last-state pooling.</summary>
    public SequenceArchitecture Architecture { get; set; } = new();

    /// <summary>Output column of class probabilities. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of the predicted class, a key of the label's type. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        RequireColumnNames((nameof(FeatureColumnName), FeatureColumnName), (nameof(LabelColumnName), LabelColumnName));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Channels, nameof(Channels));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxLength, nameof(MaxLength));
        ArgumentNullException.ThrowIfNull(Architecture, nameof(Architecture));
        Architecture.Validate();
    }
}

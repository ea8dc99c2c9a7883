namespace Microsoft.ML.DeepVariants.Tabular;

/// <summary>What one label of a tabular network predicts.</summary>
public enum TabularTaskKind
{
    /// <summary>One of several classes: a key label, or any value MapValueToKey accepts. Outputs Score (probabilities) and a key PredictedLabel.</summary>
    Multiclass,

    /// <summary>Yes or no: a Boolean label (or a number, 0 or 1, NaN when missing). Outputs Score (the logit), Probability and a Boolean PredictedLabel.</summary>
    Binary,

    /// <summary>A number: a Single or Double label, NaN when missing. Outputs Score, the predicted value.</summary>
    Regression,
}

/// <summary>How a network with several input streams joins them before its shared layers.</summary>
public enum StreamFusion
{
    /// <summary>Concatenated, then one linear layer to the shared width.</summary>
    Concatenate,

    /// <summary>A learned gate per unit and stream: g = softmax over the streams of W [a; b; ...], h = Σ g_i s_i, so each unit leans on the stream that helps it.</summary>
    GatedSum,
}

/// <summary>How the hidden layers of a tabular network are normalized.</summary>
public enum TabularNormalization
{
    /// <summary>Batch normalization (running statistics at prediction time).</summary>
    Batch,

    /// <summary>Layer normalization (each row on its own; no dependence on the batch).</summary>
    Layer,

    /// <summary>No normalization.</summary>
    None,
}

/// <summary>
/// One task of a multi-task tabular network: a label column, what it predicts, and its weight in the loss. Rows whose
/// label is missing (NaN, a missing key, empty text) do not count in this task's loss and still train the others.
/// </summary>
/// <example>
/// <code>
/// Labels = [new TabularLabel("price", TabularTaskKind.Regression), new TabularLabel("cut", TabularTaskKind.Multiclass) { LossWeight = 0.5f }]
/// </code>
/// </example>
public sealed class TabularLabel
{
    /// <summary>A task reading <paramref name="columnName"/>.</summary>
    public TabularLabel(string columnName, TabularTaskKind kind)
    {
        ColumnName = columnName;
        Kind = kind;
    }

    /// <summary>The label column.</summary>
    public string ColumnName { get; set; }

    /// <summary>What the label is.</summary>
    public TabularTaskKind Kind { get; set; }

    /// <summary>The task's name in its output columns (<c>Score.&lt;Name&gt;</c>); default the label column's name.</summary>
    public string? Name { get; set; }

    /// <summary>The task's weight in the summed loss. Default 1.</summary>
    public float LossWeight { get; set; } = 1f;

    /// <summary>The name the outputs carry.</summary>
    public string TaskName => string.IsNullOrWhiteSpace(Name) ? ColumnName : Name;
}

/// <summary>
/// Options of <see cref="TabularNetworkEstimator"/>: which columns are numbers and which are categories, what to
/// predict, and the network (an MLP with normalization, dropout and, by default, residual blocks).
/// </summary>
/// <example>
/// <code>
/// var options = new TabularNetworkOptions
/// {
///     NumericColumnNames = ["carat", "depth", "table", "x", "y", "z"],
///     CategoricalColumnNames = ["cut", "color", "clarity"],
///     LabelColumnName = "price", Task = TabularTaskKind.Regression, Epochs = 20,
/// };
/// </code>
/// </example>
public sealed class TabularNetworkOptions : TrainingOptions
{
    /// <summary>The largest <see cref="Width"/>.</summary>
    public const int MaxWidth = 8192;

    /// <summary>The most hidden blocks (<see cref="Depth"/>).</summary>
    public const int MaxDepth = 32;

    /// <summary>Numeric columns: scalars or vectors of known size, of any number type or Boolean; standardized inside the model. Default ["Features"].</summary>
    public string[] NumericColumnNames { get; set; } = ["Features"];

    /// <summary>Categorical columns, each a key or text scalar, read through a learned embedding. A missing or unseen value has an embedding of its own. Default none.</summary>
    public string[] CategoricalColumnNames { get; set; } = [];

    /// <summary>The label of a single-task network (when <see cref="Labels"/> is empty). Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>What the single label predicts. Default <see cref="TabularTaskKind.Multiclass"/>.</summary>
    public TabularTaskKind Task { get; set; } = TabularTaskKind.Multiclass;

    /// <summary>
    /// Several labels, one head each over the shared layers (multi-task learning); when set, <see cref="LabelColumnName"/>
    /// and <see cref="Task"/> are not used and each task's outputs are named <c>Score.&lt;task&gt;</c>,
    /// <c>PredictedLabel.&lt;task&gt;</c> (and <c>Probability.&lt;task&gt;</c> for a binary task). Default none.
    /// </summary>
    public IList<TabularLabel> Labels { get; set; } = new List<TabularLabel>();

    /// <summary>Units of each hidden layer. Default 256.</summary>
    public int Width { get; set; } = 256;

    /// <summary>Hidden blocks. Default 3.</summary>
    public int Depth { get; set; } = 3;

    /// <summary>Dropout after each hidden layer, in [0, 1). Default 0.1.</summary>
    public float Dropout { get; set; } = 0.1f;

    /// <summary>Normalization of the hidden layers. Default batch normalization.</summary>
    public TabularNormalization Normalization { get; set; } = TabularNormalization.Batch;

    /// <summary>Residual blocks (pre-normalized, x + f(x), as in Gorishniy et al. 2021) instead of a plain stack of layers. Default true.</summary>
    public bool Residual { get; set; } = true;

    /// <summary>Values per category embedding; 0 sizes each by its column's category count, min(32, round(1.6 n^0.56)) as fastai does. Default 0.</summary>
    public int EmbeddingSize { get; set; }

    /// <summary>The most categories a categorical column may have (its embedding table's rows). Default 100,000.</summary>
    public int MaxCategories { get; set; } = 100_000;

    /// <summary>
    /// Accepts NaN in numeric columns: a NaN reads as the column's training mean, and each numeric slot that had a NaN
    /// in training gets an indicator input (1 where the value was missing). When false, a NaN is refused, naming the
    /// column and row. Default true.
    /// </summary>
    public bool HandleMissing { get; set; } = true;

    /// <summary>
    /// An image stream (multi-stream learning): a float vector column of <see cref="ImageChannels"/> x
    /// <see cref="ImageHeight"/> x <see cref="ImageWidth"/> pixels (CHW, as ExtractPixels writes them), read by a small
    /// CNN trunk (two convolution, batch-norm, ReLU and max-pool stages of 32 and 64 filters, then a linear layer to
    /// <see cref="Width"/>) and fused with the table's stream by <see cref="Fusion"/>. With no numeric or categorical
    /// columns the network is a CNN with one head per label. Default none.
    /// </summary>
    public string? ImageColumnName { get; set; }

    /// <summary>Image height, with <see cref="ImageColumnName"/>.</summary>
    public int ImageHeight { get; set; }

    /// <summary>Image width, with <see cref="ImageColumnName"/>.</summary>
    public int ImageWidth { get; set; }

    /// <summary>Image channels (1 grayscale, 3 RGB), with <see cref="ImageColumnName"/>. Default 1.</summary>
    public int ImageChannels { get; set; } = 1;

    /// <summary>
    /// A series stream: a fixed-length float vector column of <see cref="SeriesLength"/> steps of
    /// <see cref="SeriesChannels"/> values, step-major (as the sequence classifier reads it), through a temporal
    /// convolution trunk (FCN-style: 64, 128 and 64 filters with kernels 7, 5 and 3, batch norm, ReLU, global average
    /// pooling, then a linear layer to <see cref="Width"/>). Default none.
    /// </summary>
    public string? SeriesColumnName { get; set; }

    /// <summary>Steps of the series, with <see cref="SeriesColumnName"/>.</summary>
    public int SeriesLength { get; set; }

    /// <summary>Values per step of the series, with <see cref="SeriesColumnName"/>. Default 1.</summary>
    public int SeriesChannels { get; set; } = 1;

    /// <summary>How the streams (table, image, series) are joined when there are several. Default <see cref="StreamFusion.Concatenate"/>.</summary>
    public StreamFusion Fusion { get; set; } = StreamFusion.Concatenate;

    /// <summary>True when there are numeric or categorical columns (a table stream).</summary>
    internal bool HasTable => NumericColumnNames.Length + CategoricalColumnNames.Length > 0;

    /// <summary>Output column of a single task's score. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of a single classification task's predicted label. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>Output column of a single binary task's probability. Default "Probability".</summary>
    public string ProbabilityColumnName { get; set; } = "Probability";

    /// <summary>The tasks this network trains: <see cref="Labels"/>, or the single label.</summary>
    internal IReadOnlyList<TabularLabel> Tasks => Labels.Count > 0 ? [.. Labels] : [new TabularLabel(LabelColumnName, Task)];

    /// <summary>True when several labels are predicted, so outputs carry the task's name.</summary>
    internal bool IsMultiTask => Labels.Count > 0;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (NumericColumnNames is null || CategoricalColumnNames is null)
            throw new ArgumentNullException(NumericColumnNames is null ? nameof(NumericColumnNames) : nameof(CategoricalColumnNames), "Use an empty list for no columns.");
        if (!HasTable && ImageColumnName is null && SeriesColumnName is null)
            throw new ArgumentException("A tabular network needs at least one input: set NumericColumnNames, CategoricalColumnNames, ImageColumnName or SeriesColumnName.",
                nameof(NumericColumnNames));
        if (SeriesColumnName is not null)
        {
            RequireColumnNames((nameof(SeriesColumnName), SeriesColumnName));
            if (SeriesLength is < 1 or > 100_000)
                throw new ArgumentOutOfRangeException(nameof(SeriesLength), SeriesLength, "SeriesLength must be from 1 to 100,000 steps with SeriesColumnName.");
            if (SeriesChannels is < 1 or > 1024)
                throw new ArgumentOutOfRangeException(nameof(SeriesChannels), SeriesChannels, "SeriesChannels must be from 1 to 1,024.");
        }
        if (ImageColumnName is not null)
        {
            RequireColumnNames((nameof(ImageColumnName), ImageColumnName));
            if (ImageHeight is < 4 or > 1024 || ImageWidth is < 4 or > 1024)
                throw new ArgumentOutOfRangeException(ImageHeight is < 4 or > 1024 ? nameof(ImageHeight) : nameof(ImageWidth), "ImageHeight and ImageWidth must be from 4 to 1,024 with ImageColumnName (the trunk pools twice by 2).");
            if (ImageChannels is < 1 or > 16)
                throw new ArgumentOutOfRangeException(nameof(ImageChannels), ImageChannels, "ImageChannels must be from 1 to 16.");
        }
        if (!Enum.IsDefined(Fusion))
            throw new ArgumentOutOfRangeException(nameof(Fusion), Fusion, "Unknown fusion; use Concatenate or GatedSum.");
        RequireColumnNames([.. NumericColumnNames.Select(c => (nameof(NumericColumnNames), (string?)c)), .. CategoricalColumnNames.Select(c => (nameof(CategoricalColumnNames), (string?)c))]);
        var inputs = NumericColumnNames.Concat(CategoricalColumnNames).Concat(new[] { ImageColumnName, SeriesColumnName }.OfType<string>()).ToList();
        if (inputs.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"Column '{twice.Key}' is listed twice among NumericColumnNames, CategoricalColumnNames, ImageColumnName and SeriesColumnName; list each input once.", nameof(NumericColumnNames));
        ArgumentNullException.ThrowIfNull(Labels, nameof(Labels));
        if (Labels.Any(l => l is null))
            throw new ArgumentNullException(nameof(Labels), "Labels must not hold null entries.");
        var tasks = Tasks;
        foreach (var task in tasks)
        {
            RequireColumnNames((Labels.Count > 0 ? nameof(Labels) : nameof(LabelColumnName), task.ColumnName));
            if (!Enum.IsDefined(task.Kind))
                throw new ArgumentOutOfRangeException(Labels.Count > 0 ? nameof(Labels) : nameof(Task), task.Kind, "Unknown task kind; use Multiclass, Binary or Regression.");
            if (!(task.LossWeight > 0) || float.IsInfinity(task.LossWeight))
                throw new ArgumentOutOfRangeException(nameof(TabularLabel.LossWeight), task.LossWeight, $"The loss weight of task '{task.TaskName}' must be a finite number above zero.");
            if (inputs.Contains(task.ColumnName))
                throw new ArgumentException($"Column '{task.ColumnName}' is both a label and an input; a label must not be a feature.", nameof(Labels));
        }
        if (tasks.GroupBy(t => t.TaskName).FirstOrDefault(g => g.Count() > 1) is { } same)
            throw new ArgumentException($"Two tasks are named '{same.Key}'; give each TabularLabel its own Name.", nameof(Labels));
        if (Width is < 1 or > MaxWidth)
            throw new ArgumentOutOfRangeException(nameof(Width), Width, $"Width must be from 1 to {MaxWidth}.");
        if (Depth is < 1 or > MaxDepth)
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, $"Depth must be from 1 to {MaxDepth}.");
        if (!(Dropout >= 0) || Dropout >= 1)
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        if (!Enum.IsDefined(Normalization))
            throw new ArgumentOutOfRangeException(nameof(Normalization), Normalization, "Unknown normalization; use Batch, Layer or None.");
        if (EmbeddingSize is < 0 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(EmbeddingSize), EmbeddingSize, "EmbeddingSize must be 0 (sized by each column's categories) or from 1 to 1,024.");
        if (MaxCategories is < 2 or > 10_000_000)
            throw new ArgumentOutOfRangeException(nameof(MaxCategories), MaxCategories, "MaxCategories must be from 2 to 10,000,000.");
        RequireColumnNames((nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName),
            (nameof(ProbabilityColumnName), ProbabilityColumnName));
    }

    /// <summary>
    /// The trainable parameters of the network these options describe for a table of <paramref name="numericSlots"/>
    /// numeric values (of which <paramref name="indicatorSlots"/> get missing-value indicators), categorical columns of
    /// <paramref name="categoryCounts"/> categories, and heads of <paramref name="headOutputs"/> outputs (classes, or 1),
    /// counted without building it.
    /// </summary>
    /// <example><code>long count = options.ParameterCount(numericSlots: 6, categoryCounts: [5, 7, 8], headOutputs: [1]);</code></example>
    public long ParameterCount(int numericSlots, IReadOnlyList<int> categoryCounts, IReadOnlyList<int> headOutputs, int indicatorSlots = 0)
    {
        ArgumentNullException.ThrowIfNull(categoryCounts);
        ArgumentNullException.ThrowIfNull(headOutputs);
        var plan = new TabularPlan(new float[numericSlots], new float[numericSlots], new long[indicatorSlots], [.. categoryCounts],
            [.. categoryCounts.Select(EmbeddingFor)], [.. headOutputs.Select(k => new TabularHead(new TabularLabel("label", TabularTaskKind.Multiclass), k))])
        {
            Image = ImageColumnName is null ? null : [ImageChannels, ImageHeight, ImageWidth],
            Series = SeriesColumnName is null ? null : [SeriesChannels, SeriesLength],
        };
        return plan.CountParameters(this);
    }

    /// <summary>The embedding size of a column with <paramref name="categories"/> categories (its missing value not counted).</summary>
    internal int EmbeddingFor(int categories) =>
        EmbeddingSize > 0 ? EmbeddingSize : Math.Clamp((int)Math.Round(1.6 * Math.Pow(categories + 1, 0.56)), 2, 32);
}

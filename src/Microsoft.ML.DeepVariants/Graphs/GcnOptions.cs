namespace Microsoft.ML.DeepVariants.Graphs;

/// <summary>
/// Options of <see cref="GcnNodeClassifierEstimator"/>. The defaults are Kipf and Welling's Cora setting:
/// row-normalised features, 2 layers, 16 hidden units, dropout 0.5, Adam with learning rate 0.01, weight decay 5e-4 on
/// the first layer, at most 200 epochs, early stopping on the validation loss with patience 10.
/// </summary>
/// <example>
/// <code>
/// var gcn = mlContext.Transforms.DeepVariants.GcnNodeClassifier(edges, new GcnOptions
/// {
///     NodeIdColumnName = "Node", SplitColumnName = "Split", HiddenSizes = [32], UnlabelledValues = ["-1"],
/// });
/// </code>
/// </example>
public sealed class GcnOptions : TrainingOptions
{
    /// <summary>Kipf and Welling's setting.</summary>
    public GcnOptions()
    {
        Epochs = 200;
        LearningRate = 0.01f;
        WeightDecay = 5e-4f;
        EarlyStoppingPatience = 10;
        EarlyStoppingCriterion = EarlyStoppingCriterion.ValidationLoss;
    }

    /// <summary>Node id column of the nodes (Int32, Int64, UInt32 or text), unique per node. Default "NodeId".</summary>
    public string NodeIdColumnName { get; set; } = "NodeId";

    /// <summary>Feature column of the nodes: a float vector, the same length for every node. Default "Features".</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>
    /// Label column of the nodes: a key (0 = no label) or text. A node has no label when its text is empty or one of
    /// <see cref="UnlabelledValues"/>; such nodes are still part of the graph, but never train or validate. Default "Label".
    /// </summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>
    /// Text labels that mean "no label", besides the empty text (data sets write "-1", "?" or "unknown"). Without this, such a
    /// value would become a class of its own. Default: none.
    /// </summary>
    /// <example><code>options.UnlabelledValues = ["-1"];</code></example>
    public string[] UnlabelledValues { get; set; } = [];

    /// <summary>
    /// Text column saying which nodes train ("train") and which validate ("val" or "validation"); any other
    /// value (such as "test") leaves a node out of both. Used when <see cref="TrainColumnName"/> is null. Default "Split".
    /// </summary>
    public string? SplitColumnName { get; set; } = "Split";

    /// <summary>Boolean column marking the training nodes; when set, it (and <see cref="ValidationColumnName"/>) replaces the split column.</summary>
    public string? TrainColumnName { get; set; }

    /// <summary>Boolean column marking the validation nodes (optional, with <see cref="TrainColumnName"/>).</summary>
    public string? ValidationColumnName { get; set; }

    /// <summary>Source node id column of the edges. Default "Source".</summary>
    public string EdgeSourceColumnName { get; set; } = "Source";

    /// <summary>Target node id column of the edges. Default "Target".</summary>
    public string EdgeTargetColumnName { get; set; } = "Target";

    /// <summary>Optional positive float weight column of the edges; every edge weighs 1 when null.</summary>
    public string? EdgeWeightColumnName { get; set; }

    /// <summary>Hidden layer sizes, 1 to 8 layers of 1 to 65,536 units; the last one is the embedding. Default [16].</summary>
    public int[] HiddenSizes { get; set; } = [16];

    /// <summary>Dropout on the input of every layer (training only). Default 0.5.</summary>
    public float Dropout { get; set; } = 0.5f;

    /// <summary>
    /// Divide each node's features by their sum, as Kipf and Welling do for bag-of-words features (without it CiteSeer
    /// drops from 71.1% to 67.5%); part of the model. Turn it off for features that are not counts. Default true.
    /// </summary>
    public bool RowNormalizeFeatures { get; set; } = true;

    /// <summary>Output column of class probabilities. Default "Score".</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Output column of the predicted class, a key of the label's type. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>Output column of the node embedding (the last hidden layer). Default "Embedding".</summary>
    public string EmbeddingColumnName { get; set; } = "Embedding";

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (HiddenSizes is null || HiddenSizes.Length is 0 or > 8 || HiddenSizes.Any(h => h is <= 0 or > 65536))
            throw new ArgumentOutOfRangeException(nameof(HiddenSizes), "HiddenSizes must list 1 to 8 layer sizes, each from 1 to 65,536.");
        if (UnlabelledValues is null || UnlabelledValues.Any(v => v is null))
            throw new ArgumentNullException(nameof(UnlabelledValues), "UnlabelledValues must be a list of texts (empty for none).");
        if (!(Dropout >= 0) || Dropout >= 1)
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        if (TrainColumnName is null && SplitColumnName is null)
            throw new ArgumentException("Set SplitColumnName or TrainColumnName to say which nodes train.", nameof(SplitColumnName));
    }
}

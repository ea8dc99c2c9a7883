using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>What fitting a CNN produced: the ML.NET model, the training history and the exported ONNX graph.</summary>
/// <param name="Model">The fitted model: ML.NET and ONNX transformers only, so it saves with <c>mlContext.Model.Save</c> and predicts without TorchSharp.</param>
/// <param name="History">Loss and metrics per epoch, the epoch kept and the device used.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through.</param>
/// <param name="ParameterCount">Trainable parameters of the network.</param>
public sealed record CnnFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount)
{
    /// <summary>The trained weights and data handling, kept so that pruning can fine-tune a classifier; null for a featurizer.</summary>
    internal CnnTrainedState? State { get; init; }
}

/// <summary>
/// Trains a CNN image classifier with TorchSharp and returns it as an ML.NET model that serves through ONNX
/// Runtime. Outputs <c>Score</c> (class probabilities) and a key-typed <c>PredictedLabel</c>, so
/// <c>mlContext.MulticlassClassification.Evaluate</c> works on its output unchanged.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
///     .Append(mlContext.Transforms.DeepVariants.CnnClassifier(imageHeight: 28, imageWidth: 28, epochs: 3));
/// var model = pipeline.Fit(train);
/// var metrics = mlContext.MulticlassClassification.Evaluate(model.Transform(test));
/// mlContext.Model.Save(model, train.Schema, "cnn.zip");
/// </code>
/// </example>
public sealed class CnnClassifierEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private const string LogitsColumn = ClassificationColumns.LogitsColumn;
    private readonly ModelContext _context;

    internal CnnClassifierEstimator(ModelContext context, CnnClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        Options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public CnnClassifierOptions Options { get; }

    /// <summary>Trains on <paramref name="input"/> and returns the ML.NET model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Trains on <paramref name="trainData"/>, validating (and early stopping, when enabled) on <paramref name="validationData"/>.</summary>
    public TransformerChain<ITransformer> Fit(IDataView trainData, IDataView? validationData) => Train(trainData, validationData).Model;

    /// <summary>Trains and returns the model with its training history and ONNX graph.</summary>
    public CnnFitResult Train(IDataView trainData, IDataView? validationData = null) => Train(trainData, validationData, targets: null);

    internal CnnFitResult Train(IDataView trainData, IDataView? validationData, ICnnTrainingTargets? targets)
    {
        var trained = CnnTraining.Train(_context, Options, trainData, validationData, targets);
        using var network = trained.Network;
        var state = CnnTrainedState.Capture(Options, trained);
        var (model, onnx) = BuildModel(_context, Options, network, trained.Input, trained.Preprocessing, trained.Labels, trained.LabelColumn, trained.PreparedTrain);
        return new CnnFitResult(model, trained.History, onnx, network.ParameterCount) { State = state };
    }

    /// <summary>
    /// The ML.NET model of a trained network: the pixel extraction (for an image column), the ONNX graph, ML.NET's
    /// multiclass head (Score, PredictedLabel) and a step that drops the intermediate columns.
    /// </summary>
    internal static (TransformerChain<ITransformer> Model, byte[] Onnx) BuildModel(ModelContext context, CnnClassifierOptions options,
        CnnNetwork network, CnnInput input, ITransformer? preprocessing, LabelInfo labels, string labelColumn, IDataView preparedTrain)
    {
        if (options.GradCamClass is { } explained && (explained < 0 || explained >= labels.ClassCount))
            throw new ArgumentOutOfRangeException(nameof(options.GradCamClass), explained, $"GradCamClass must be a class index from 0 to {labels.ClassCount - 1}.");
        var gradCam = options.GradCamColumnName is { } camColumn ? (camColumn, (long?)options.GradCamClass) : ((string, long?)?)null;
        byte[] onnx = network.ExportOnnx(input.TensorColumn, embeddingOutput: null, logitsOutput: LogitsColumn, gradCam);
        string[] outputs = gradCam is null ? [LogitsColumn] : [LogitsColumn, gradCam.Value.Item1];
        var onnxTransformer = OnnxServing.Apply(context, onnx, [input.TensorColumn], outputs, preparedTrain);
        var scored = onnxTransformer.Transform(preparedTrain);
        var (head, drop) = ClassificationColumns.SoftmaxTail(context, scored, labelColumn, labels, options.ScoreColumnName,
            options.PredictedLabelColumnName, [.. input.TemporaryColumns]);
        return (OnnxServing.Chain(preprocessing, onnxTransformer, head, drop), onnx);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        CnnInput.Check(inputSchema, Options);
        var label = inputSchema.First(c => c.Name == Options.LabelColumnName);
        var columns = inputSchema.ToDictionary(c => c.Name);
        ClassificationColumns.AddMulticlassOutputs(columns, label, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        if (Options.GradCamColumnName is { } camColumn)
            columns[camColumn] = MLNetInternals.SchemaColumn(camColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }
}

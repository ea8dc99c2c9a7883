using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>What fitting a CNN produced: the ML.NET model, the training history and the exported ONNX graph.</summary>
/// <param name="Model">The fitted model: ML.NET and ONNX transformers only, so it saves with <c>mlContext.Model.Save</c> and predicts without TorchSharp.</param>
/// <param name="History">Loss and metrics per epoch, the epoch kept and the device used.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through.</param>
/// <param name="ParameterCount">Trainable parameters of the network.</param>
public sealed record CnnFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount);

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
    private const string LogitsColumn = "DeepVariants.Logits";
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
    public CnnFitResult Train(IDataView trainData, IDataView? validationData = null)
    {
        var trained = CnnTraining.Train(_context, Options, trainData, validationData);
        using var network = trained.Network;
        if (Options.GradCamClass is { } explained && (explained < 0 || explained >= trained.Labels.ClassCount))
            throw new ArgumentOutOfRangeException(nameof(Options.GradCamClass), explained, $"GradCamClass must be a class index from 0 to {trained.Labels.ClassCount - 1}.");
        var gradCam = Options.GradCamColumnName is { } camColumn ? (camColumn, (long?)Options.GradCamClass) : ((string, long?)?)null;
        byte[] onnx = network.ExportOnnx(trained.Input.TensorColumn, embeddingOutput: null, logitsOutput: LogitsColumn, gradCam);
        string[] outputs = gradCam is null ? [LogitsColumn] : [LogitsColumn, gradCam.Value.Item1];
        var onnxTransformer = OnnxServing.Apply(_context, onnx, [trained.Input.TensorColumn], outputs, trained.PreparedTrain);
        var scored = onnxTransformer.Transform(trained.PreparedTrain);
        var head = MLNetInternals.CreateSoftmaxHead(_context.Environment, scored.Schema, LogitsColumn, trained.LabelColumn,
            trained.Labels.ClassCount, trained.Labels.ClassNames, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        var drop = _context.Transforms.DropColumns([LogitsColumn, .. trained.Input.TemporaryColumns]).Fit(head.Transform(scored));
        var model = OnnxServing.Chain(trained.Preprocessing, onnxTransformer, head, drop);
        return new CnnFitResult(model, trained.History, onnx, network.ParameterCount);
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

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// Trains a CNN as a classifier on the label, then emits its penultimate layer as a float vector column that
/// any ML.NET trainer can consume. The fitted model serves through ONNX Runtime and saves like any ML.NET model.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
///     .Append(mlContext.Transforms.DeepVariants.CnnFeaturizer(imageHeight: 28, imageWidth: 28, outputColumnName: "Embedding"))
///     .Append(mlContext.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"));
/// </code>
/// </example>
public sealed class CnnFeaturizerEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private readonly ModelContext _context;

    internal CnnFeaturizerEstimator(ModelContext context, CnnFeaturizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        Options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public CnnFeaturizerOptions Options { get; }

    /// <summary>Trains on <paramref name="input"/> and returns the featurizing model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Trains and returns the model with its training history and ONNX graph.</summary>
    public CnnFitResult Train(IDataView trainData, IDataView? validationData = null)
    {
        if (string.IsNullOrWhiteSpace(Options.OutputColumnName))
            throw new ArgumentException("OutputColumnName must name a column.", nameof(Options.OutputColumnName));
        var trained = CnnTraining.Train(_context, Options, trainData, validationData);
        using var network = trained.Network;
        byte[] onnx = network.ExportOnnx(trained.Input.TensorColumn, embeddingOutput: Options.OutputColumnName, logitsOutput: null);
        var onnxTransformer = OnnxServing.Apply(_context, onnx, [trained.Input.TensorColumn], [Options.OutputColumnName], trained.PreparedTrain);
        ITransformer? drop = trained.Input.TemporaryColumns.Count == 0
            ? null
            : _context.Transforms.DropColumns(trained.Input.TemporaryColumns.ToArray()).Fit(onnxTransformer.Transform(trained.PreparedTrain));
        var model = OnnxServing.Chain(trained.Preprocessing, onnxTransformer, drop);
        return new CnnFitResult(model, trained.History, onnx, network.ParameterCount);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        CnnInput.Check(inputSchema, Options);
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[Options.OutputColumnName] = MLNetInternals.SchemaColumn(Options.OutputColumnName,
            SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }
}

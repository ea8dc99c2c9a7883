using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// Trains a CNN image classifier with TorchSharp and returns it as an ML.NET model that serves through ONNX
/// Runtime. Outputs <c>Score</c> (class probabilities) and a key-typed <c>PredictedLabel</c>, so
/// <c>mlContext.MulticlassClassification.Evaluate</c> works on its output unchanged.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.DeepVariants.CnnClassifier(imageHeight: 28, imageWidth: 28, epochs: 3)
///     .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
/// var model = pipeline.Fit(train);                       // a text Label is keyed inside the model's fit
/// var metrics = mlContext.MulticlassClassification.Evaluate(model.Transform(keyedTest));
/// mlContext.Model.Save(model, train.Schema, "cnn.zip");
/// </code>
/// </example>
public sealed class CnnClassifierEstimator : DeepVariantsEstimator<CnnClassifierOptions, FitResult>
{
    internal CnnClassifierEstimator(ModelContext context, CnnClassifierOptions options) : base(context, options, "DeepVariants.Cnn") { }

    internal FitResult Train(IDataView trainData, IDataView? validationData, TrainingExtension extension) => Run(trainData, validationData, extension);

    private protected override FitTask CreateTask(SchemaView schema) => CnnTask.Create(Context, schema, Options, embeddingColumn: null);
}

/// <summary>
/// Trains a CNN as a classifier on the label, then emits its penultimate layer as a float vector column that
/// any ML.NET trainer can consume. The fitted model serves through ONNX Runtime and saves like any ML.NET model.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.DeepVariants.CnnFeaturizer(imageHeight: 28, imageWidth: 28, outputColumnName: "Embedding")
///     .Append(mlContext.Transforms.Conversion.MapValueToKey("Label"))
///     .Append(mlContext.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"));
/// </code>
/// </example>
public sealed class CnnFeaturizerEstimator : DeepVariantsEstimator<CnnFeaturizerOptions, FitResult>
{
    internal CnnFeaturizerEstimator(ModelContext context, CnnFeaturizerOptions options) : base(context, options, "DeepVariants.Cnn") { }

    private protected override FitTask CreateTask(SchemaView schema)
    {
        if (string.IsNullOrWhiteSpace(Options.OutputColumnName))
            throw new ArgumentException("OutputColumnName must name a column.", nameof(Options.OutputColumnName));
        return CnnTask.Create(Context, schema, Options, embeddingColumn: Options.OutputColumnName);
    }
}

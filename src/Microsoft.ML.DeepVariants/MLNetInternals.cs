using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// The one place that reaches ML.NET internals. ML.NET 5 gives third-party components no public way to
/// read a catalog's environment (seed, GPU settings) or to build its standard multiclass prediction
/// transformer around given weights. Each member fails with a clear message if ML.NET changes;
/// MLNetInternalsTests exercises every one of them.
/// </summary>
internal static class MLNetInternals
{
    private const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>The environment (the MLContext's LocalEnvironment) behind any ML.NET catalog.</summary>
    public static IHostEnvironment GetEnvironment(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var property = catalog.GetType().GetInterfaces()
            .FirstOrDefault(i => i.FullName == "Microsoft.ML.Data.IInternalCatalog")
            ?.GetProperty("Environment", Instance);
        return property?.GetValue(catalog) as IHostEnvironment
            ?? throw Changed($"{catalog.GetType().Name} no longer exposes its environment through IInternalCatalog");
    }

    /// <summary>A <see cref="TransformsCatalog"/> over an environment, for catalogs that have none (the trainers catalog).</summary>
    public static TransformsCatalog CreateTransformsCatalog(IHostEnvironment environment)
    {
        var constructor = typeof(TransformsCatalog).GetConstructor(Instance, [typeof(IHostEnvironment)])
            ?? throw Changed("TransformsCatalog(IHostEnvironment) is gone");
        return (TransformsCatalog)constructor.Invoke([environment]);
    }

    /// <summary>The MLContext seed (null when the context was made without one).</summary>
    public static int? GetSeed(IHostEnvironment environment) => ReadSetting<int?>(environment, "Seed");

    /// <summary>MLContext.GpuDeviceId.</summary>
    public static int? GetGpuDeviceId(IHostEnvironment environment) => ReadSetting<int?>(environment, "GpuDeviceId");

    /// <summary>MLContext.FallbackToCpu.</summary>
    public static bool GetFallbackToCpu(IHostEnvironment environment) => ReadSetting<bool>(environment, "FallbackToCpu");

    private static T ReadSetting<T>(IHostEnvironment environment, string name)
    {
        var property = environment.GetType().GetProperty(name, Instance)
            ?? environment.GetType().GetInterfaces().Select(i => i.GetProperty(name, Instance)).FirstOrDefault(p => p != null)
            ?? throw Changed($"the ML.NET environment no longer has a '{name}' setting");
        return (T)property.GetValue(environment)!;
    }

    /// <summary>
    /// ML.NET's own multiclass tail (the one LbfgsMaximumEntropy produces) over a logits column: an identity-weight
    /// maximum-entropy model, so Score = softmax(logits) and PredictedLabel is the arg-max as a key with the label's key
    /// values. Its training schema is made here (the logits and a label column of the label's key type and annotations),
    /// so the head never reads the data's label: it predicts on rows that have none, and saves and loads with plain ML.NET.
    /// </summary>
    public static ITransformer CreateSoftmaxHead(IHostEnvironment environment, string logitsColumn, LabelInfo labels, string labelName,
        string scoreColumn = "Score", string predictedLabelColumn = "PredictedLabel")
    {
        int classCount = labels.ClassCount;
        var weights = new VBuffer<float>[classCount];
        for (int k = 0; k < classCount; k++)
            weights[k] = new VBuffer<float>(classCount, 1, [1f], [k]);

        var modelConstructor = typeof(MaximumEntropyModelParameters).GetConstructors(Instance)
            .SingleOrDefault(c => c.GetParameters().Select(p => p.ParameterType).SequenceEqual(
                [typeof(IHostEnvironment), typeof(VBuffer<float>[]), typeof(float[]), typeof(int), typeof(int), typeof(string[]), typeof(ModelStatisticsBase)]))
            ?? throw Changed("MaximumEntropyModelParameters(env, weights, bias, classes, features, names, stats) is gone");
        var model = (MaximumEntropyModelParameters)modelConstructor.Invoke(
            [environment, weights, new float[classCount], classCount, classCount, labels.ClassNames, null]);

        var transformerConstructor = typeof(MulticlassPredictionTransformer<MaximumEntropyModelParameters>).GetConstructors(Instance)
            .SingleOrDefault(c => c.GetParameters().Length == 7 && c.GetParameters()[2].ParameterType == typeof(DataViewSchema))
            ?? throw Changed("MulticlassPredictionTransformer(env, model, schema, feature, label, score, predictedLabel) is gone");
        return (ITransformer)transformerConstructor.Invoke(
            [environment, model, HeadSchema(logitsColumn, labels, labelName), logitsColumn, labelName, scoreColumn, predictedLabelColumn]);
    }

    // The logits column and a label column of the label's key type, carrying its key values (the class names when it has none).
    private static DataViewSchema HeadSchema(string logitsColumn, LabelInfo labels, string labelName)
    {
        var annotations = labels.Annotations;
        if (annotations?.Schema.GetColumnOrNull("KeyValues") is null)
        {
            var builder = new DataViewSchema.Annotations.Builder();
            string[] names = labels.ClassNames;
            builder.Add("KeyValues", new VectorDataViewType(TextDataViewType.Instance, names.Length), (ref VBuffer<ReadOnlyMemory<char>> value) =>
                value = new VBuffer<ReadOnlyMemory<char>>(names.Length, names.Select(n => n.AsMemory()).ToArray()));
            annotations = builder.ToAnnotations();
        }
        var schema = new DataViewSchema.Builder();
        schema.AddColumn(logitsColumn, new VectorDataViewType(NumberDataViewType.Single, labels.ClassCount));
        schema.AddColumn(labelName, new KeyDataViewType(typeof(uint), labels.ClassCount), annotations);
        return schema.ToSchema();
    }

    /// <summary>
    /// ML.NET's regression tail over a one-value vector column: Score = that value, as a scalar. ML.NET's ONNX
    /// transformer can only output vectors, and its anomaly detectors emit a scalar Score, so this turns a
    /// reconstruction error into one. It saves and loads with plain ML.NET.
    /// </summary>
    public static ITransformer CreateScalarScoreHead(IHostEnvironment environment, DataViewSchema trainSchema, string oneValueColumn)
    {
        var modelConstructor = typeof(LinearRegressionModelParameters).GetConstructors(Instance)
            .SingleOrDefault(c => c.GetParameters().Select(p => p.ParameterType).SequenceEqual(
                [typeof(IHostEnvironment), typeof(VBuffer<float>).MakeByRefType(), typeof(float)]))
            ?? throw Changed("LinearRegressionModelParameters(env, in weights, bias) is gone");
        var model = (LinearRegressionModelParameters)modelConstructor.Invoke([environment, new VBuffer<float>(1, [1f]), 0f]);
        var transformerConstructor = typeof(RegressionPredictionTransformer<LinearRegressionModelParameters>).GetConstructors(Instance)
            .SingleOrDefault(c => c.GetParameters().Length == 4 && c.GetParameters()[2].ParameterType == typeof(DataViewSchema))
            ?? throw Changed("RegressionPredictionTransformer(env, model, schema, feature) is gone");
        return (ITransformer)transformerConstructor.Invoke([environment, model, trainSchema, oneValueColumn]);
    }

    /// <summary>
    /// ML.NET's calibrated binary tail over a one-value logit column, as logistic regression produces it: a linear model
    /// of weight 1 and bias 0 (Score = the logit), a Platt calibrator of slope -1 and offset 0 (Probability =
    /// sigmoid(logit)) and PredictedLabel = Score &gt; 0, so <c>BinaryClassification.Evaluate</c> reads it unchanged. It saves
    /// and loads with plain ML.NET.
    /// </summary>
    public static ITransformer CreateBinaryLogitHead(IHostEnvironment environment, DataViewSchema trainSchema, string oneValueColumn)
    {
        var linearConstructor = typeof(LinearBinaryModelParameters).GetConstructors(Instance)
            .SingleOrDefault(c => c.GetParameters().Length == 4 && c.GetParameters()[1].ParameterType == typeof(VBuffer<float>).MakeByRefType())
            ?? throw Changed("LinearBinaryModelParameters(env, in weights, bias, stats) is gone");
        var linear = (LinearBinaryModelParameters)linearConstructor.Invoke([environment, new VBuffer<float>(1, [1f]), 0f, null]);
        var plattConstructor = typeof(Calibrators.PlattCalibrator).GetConstructor(Instance, [typeof(IHostEnvironment), typeof(double), typeof(double)])
            ?? throw Changed("PlattCalibrator(env, slope, offset) is gone");
        var platt = (Calibrators.PlattCalibrator)plattConstructor.Invoke([environment, -1.0, 0.0]);
        var calibratedType = typeof(Calibrators.CalibratedModelParametersBase).Assembly
            .GetType("Microsoft.ML.Calibrators.ParameterMixingCalibratedModelParameters`2")?.MakeGenericType(typeof(LinearBinaryModelParameters), typeof(Calibrators.PlattCalibrator))
            ?? throw Changed("ParameterMixingCalibratedModelParameters<TSubModel, TCalibrator> is gone");
        var calibratedConstructor = calibratedType.GetConstructors(Instance).SingleOrDefault(c => c.GetParameters().Length == 3)
            ?? throw Changed("ParameterMixingCalibratedModelParameters(env, predictor, calibrator) is gone");
        var model = calibratedConstructor.Invoke([environment, linear, platt]);
        var modelType = typeof(Calibrators.CalibratedModelParametersBase<LinearBinaryModelParameters, Calibrators.PlattCalibrator>);
        var transformerConstructor = typeof(BinaryPredictionTransformer<>).MakeGenericType(modelType).GetConstructors(Instance)
            .SingleOrDefault(c => c.GetParameters().Select(p => p.ParameterType).SequenceEqual(
                [typeof(IHostEnvironment), modelType, typeof(DataViewSchema), typeof(string), typeof(float), typeof(string)]))
            ?? throw Changed("BinaryPredictionTransformer(env, model, schema, feature, threshold, thresholdColumn) is gone");
        return (ITransformer)transformerConstructor.Invoke([environment, model, trainSchema, oneValueColumn, 0f, "Score"]);
    }

    /// <summary>
    /// The rows of <paramref name="sources"/> one after the other, as one lazy data view (ML.NET's own AppendRowsDataView;
    /// the sources must have the same schema). A sweep refits its best configuration on the training and validation rows this way.
    /// </summary>
    public static IDataView AppendRows(IHostEnvironment environment, params IDataView[] sources)
    {
        var type = typeof(IDataView).Assembly.GetType("Microsoft.ML.Data.AppendRowsDataView")
            ?? typeof(MLContext).Assembly.GetType("Microsoft.ML.Data.AppendRowsDataView")
            ?? throw Changed("AppendRowsDataView is gone");
        var create = type.GetMethod("Create", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic,
            [typeof(IHostEnvironment), typeof(DataViewSchema), typeof(IDataView[])])
            ?? throw Changed("AppendRowsDataView.Create(env, schema, sources) is gone");
        return (IDataView)create.Invoke(null, [environment, sources[0].Schema, sources])!;
    }

    /// <summary>A schema-shape column (its constructor is internal to ML.NET), for GetOutputSchema.</summary>
    public static SchemaShape.Column SchemaColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType,
        bool isKey, SchemaShape? annotations = null)
    {
        var constructor = typeof(SchemaShape.Column).GetConstructor(Instance,
            [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)])
            ?? throw Changed("SchemaShape.Column(name, kind, itemType, isKey, annotations) is gone");
        return (SchemaShape.Column)constructor.Invoke([name, kind, itemType, isKey, annotations]);
    }

    private static InvalidOperationException Changed(string what) =>
        new($"DeepVariants.ML needs an ML.NET 5.0 internal that has changed: {what}. Use the Microsoft.ML version this package was built against.");
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.DeepVariants.Tabular;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Passes each epoch's validation metric from the training loop to the sweep (synchronously, so a stop takes effect before the next epoch).</summary>
internal sealed class EpochReporter(TrialContext context) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        if (value.IsEpochEnd)
            context.ReportEpoch(value.Epoch, value.ValidationMetric
                ?? throw new InvalidOperationException("The trial trained without validation data, so it has no metric to report."));
    }
}

/// <summary>
/// Image-classification trials: CNN classifiers from <see cref="SearchSpaces.Cnn"/> configurations, trained on the
/// training data and scored by validation accuracy after every epoch.
/// </summary>
/// <remarks>
/// When the data were prepared by a fitted <c>preprocessing</c> transformer (loading and resizing images, say), pass
/// it with the raw data's schema: the refitted model is saved with it in front, so it predicts from raw rows.
/// </remarks>
/// <example><code>var runner = new CnnTrialRunner(mlContext, train, validation, imageHeight: 28, imageWidth: 28);</code></example>
public sealed class CnnTrialRunner(MLContext mlContext, IDataView train, IDataView validation, int imageHeight, int imageWidth, int channels = 1,
    string featureColumnName = "Features", string labelColumnName = "Label", TorchDeviceKind device = TorchDeviceKind.Auto,
    ITransformer? preprocessing = null, DataViewSchema? inputSchema = null)
    : ClassifierTrialRunner(mlContext, train, validation, featureColumnName, labelColumnName, device, preprocessing, inputSchema)
{
    private protected override TrainingOptions Options(Configuration configuration) =>
        SearchSpaces.ToCnnOptions(configuration, imageHeight, imageWidth, channels).Also(o => (o.FeatureColumnName, o.LabelColumnName) = (FeatureColumnName, LabelColumnName));

    private protected override IDeepVariantsEstimator Estimator(MLContext context, TrainingOptions options) =>
        context.Transforms.DeepVariants.CnnClassifier((Cnn.CnnClassifierOptions)options);
}

/// <summary>Sequence-classification trials: LSTM/GRU classifiers from <see cref="SearchSpaces.Sequence"/> configurations, scored by validation accuracy.</summary>
/// <example><code>var runner = new SequenceTrialRunner(mlContext, train, validation, channels: 12);</code></example>
public sealed class SequenceTrialRunner(MLContext mlContext, IDataView train, IDataView validation, int channels,
    string featureColumnName = "Series", string labelColumnName = "Label", TorchDeviceKind device = TorchDeviceKind.Auto)
    : ClassifierTrialRunner(mlContext, train, validation, featureColumnName, labelColumnName, device, null, null)
{
    private protected override TrainingOptions Options(Configuration configuration) =>
        SearchSpaces.ToSequenceOptions(configuration, channels).Also(o => (o.FeatureColumnName, o.LabelColumnName) = (FeatureColumnName, LabelColumnName));

    private protected override IDeepVariantsEstimator Estimator(MLContext context, TrainingOptions options) =>
        context.Transforms.DeepVariants.SequenceClassifier((SequenceClassifierOptions)options);
}

/// <summary>
/// Tabular trials: networks from <see cref="SearchSpaces.Tabular"/> configurations over the columns and labels of
/// <paramref name="columns"/>, scored after every epoch by the validation metric: accuracy for a classification, the
/// negative mean squared error of the standardized label for a regression.
/// </summary>
/// <example><code>var runner = new TabularTrialRunner(mlContext, train, validation, new TabularNetworkOptions { NumericColumnNames = ["Features"], LabelColumnName = "Label" });</code></example>
public sealed class TabularTrialRunner(MLContext mlContext, IDataView train, IDataView validation, TabularNetworkOptions columns,
    TorchDeviceKind device = TorchDeviceKind.Auto) : ITrialRunner
{
    private readonly MLContext _mlContext = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
    private readonly IDataView _train = train ?? throw new ArgumentNullException(nameof(train));
    private readonly IDataView _validation = validation ?? throw new ArgumentNullException(nameof(validation));
    private readonly TabularNetworkOptions _columns = (columns ?? throw new ArgumentNullException(nameof(columns))).Labels.Count == 0
        ? columns : throw new ArgumentException("A tabular sweep scores one task; leave Labels empty and set LabelColumnName and Task.", nameof(columns));

    /// <inheritdoc/>
    public void Run(Configuration configuration, TrialContext context)
    {
        var options = Configure(configuration, context.MaxEpochs, context.Seed);
        options.Threads = context.Threads;
        options.Progress = new EpochReporter(context);
        options.CancellationToken = context.CancellationToken;
        new MLContext(context.Seed).Transforms.DeepVariants.TabularNetwork(options).Train(_train, _validation);
    }

    /// <inheritdoc/>
    public void Refit(Configuration configuration, int epochs, int seed, string modelPath)
    {
        var all = MLNetInternals.AppendRows(MLNetInternals.GetEnvironment(_mlContext.Data), _train, _validation);
        var model = new MLContext(seed).Transforms.DeepVariants.TabularNetwork(Configure(configuration, epochs, seed)).Train(all).Model;
        ModelFiles.Save(_mlContext, model, all.Schema, modelPath);
    }

    private TabularNetworkOptions Configure(Configuration configuration, int epochs, int seed)
    {
        var options = SearchSpaces.ToTabularOptions(configuration, _columns);
        options.Epochs = epochs;
        options.Seed = seed;
        options.Device = device;
        return options;
    }
}

/// <summary>What the classifier trial runners share: reporting each epoch's validation accuracy, and the refit on training plus validation data.</summary>
public abstract class ClassifierTrialRunner : ITrialRunner
{
    private readonly MLContext _mlContext;
    private readonly IDataView _train, _validation;
    private readonly TorchDeviceKind _device;
    private readonly ITransformer? _preprocessing;
    private readonly DataViewSchema? _inputSchema;

    private protected ClassifierTrialRunner(MLContext mlContext, IDataView train, IDataView validation, string featureColumn, string labelColumn,
        TorchDeviceKind device, ITransformer? preprocessing, DataViewSchema? inputSchema)
    {
        _mlContext = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        _train = train ?? throw new ArgumentNullException(nameof(train));
        _validation = validation ?? throw new ArgumentNullException(nameof(validation));
        (FeatureColumnName, LabelColumnName, _device, _preprocessing, _inputSchema) = (featureColumn, labelColumn, device, preprocessing, inputSchema);
    }

    /// <summary>The input column.</summary>
    private protected string FeatureColumnName { get; }

    /// <summary>The key label column.</summary>
    private protected string LabelColumnName { get; }

    /// <inheritdoc/>
    public void Run(Configuration configuration, TrialContext context)
    {
        var options = Configure(configuration, context.MaxEpochs, context.Seed);
        options.Threads = context.Threads;
        options.Progress = new EpochReporter(context);
        options.CancellationToken = context.CancellationToken;
        Estimator(new MLContext(context.Seed), options).Train(_train, _validation);
    }

    /// <inheritdoc/>
    public void Refit(Configuration configuration, int epochs, int seed, string modelPath)
    {
        var all = DataViewRows.Concatenate(_mlContext, _train, _validation, FeatureColumnName, LabelColumnName);
        var model = Estimator(new MLContext(seed), Configure(configuration, epochs, seed)).Train(all).Model;
        if (_preprocessing is not null && _inputSchema is not null)
            ModelFiles.Save(_mlContext, new TransformerChain<ITransformer>(_preprocessing, model), _inputSchema, modelPath);
        else
            ModelFiles.Save(_mlContext, model, all.Schema, modelPath);
    }

    /// <summary>The estimator's options for a configuration (columns included).</summary>
    private protected abstract TrainingOptions Options(Configuration configuration);

    /// <summary>The estimator that trains with <paramref name="options"/>.</summary>
    private protected abstract IDeepVariantsEstimator Estimator(MLContext context, TrainingOptions options);

    private TrainingOptions Configure(Configuration configuration, int epochs, int seed)
    {
        var options = Options(configuration);
        options.Epochs = epochs;
        options.Seed = seed;
        options.Device = _device;
        return options;
    }
}

internal static class OptionsExtensions
{

    public static T Also<T>(this T value, Action<T> action)
    {
        action(value);
        return value;
    }
}

internal static class ModelFiles
{
    /// <summary>Saves to a temporary name, then moves, so a crash never leaves half a model.</summary>
    public static void Save(MLContext mlContext, ITransformer model, DataViewSchema schema, string path)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        mlContext.Model.Save(model, schema, full + ".tmp");
        File.Move(full + ".tmp", full, overwrite: true);
    }
}

/// <summary>Training plus validation rows as one IDataView (ML.NET has no public way to append data views).</summary>
internal static class DataViewRows
{
    // The label travels as its key value's text and is mapped back with the same key order, so the refit model
    // predicts the same classes, with the same names, as the trials did.
    public static IDataView Concatenate(MLContext mlContext, IDataView first, IDataView second, string featureColumn, string labelColumn)
    {
        var feature = first.Schema[featureColumn];
        var label = first.Schema[labelColumn];
        if (label.Type is not KeyDataViewType key)
            throw new ArgumentOutOfRangeException(labelColumn, $"Refitting needs a key label column '{labelColumn}', got {label.Type}.");
        string[] names = Enumerable.Range(1, (int)key.Count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        if (label.Annotations.Schema.GetColumnOrNull("KeyValues") is { Type: VectorDataViewType { ItemType: TextDataViewType } })
        {
            VBuffer<ReadOnlyMemory<char>> values = default;
            label.GetKeyValues(ref values);
            names = values.DenseValues().Select(v => v.ToString()).ToArray();
        }
        var rows = new List<Row>();
        foreach (var data in new[] { first, second })
        {
            using var cursor = data.GetRowCursor([data.Schema[featureColumn], data.Schema[labelColumn]]);
            var getFeatures = cursor.GetGetter<VBuffer<float>>(data.Schema[featureColumn]);
            var getLabel = cursor.GetGetter<uint>(data.Schema[labelColumn]);
            VBuffer<float> features = default;
            uint value = 0;
            while (cursor.MoveNext())
            {
                getFeatures(ref features);
                getLabel(ref value);
                if (value == 0)
                    throw new ArgumentOutOfRangeException(labelColumn, $"Label column '{labelColumn}' has a missing value; every row needs a label to refit on.");
                rows.Add(new Row { Features = features.DenseValues().ToArray(), Label = names[value - 1] });
            }
        }
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnName = featureColumn;
        schema[nameof(Row.Features)].ColumnType = feature.Type;
        schema[nameof(Row.Label)].ColumnName = labelColumn;
        var combined = mlContext.Data.LoadFromEnumerable(rows, schema);
        var order = mlContext.Data.LoadFromEnumerable(names.Select(n => new KeyName { Label = n }));
        return mlContext.Transforms.Conversion.MapValueToKey(labelColumn, labelColumn, keyData: order).Fit(combined).Transform(combined);
    }

    private sealed class Row
    {
        public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class KeyName
    {
        public string Label { get; set; } = "";
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>What fitting a sequence classifier produced: the ML.NET model, the training history and the ONNX graph.</summary>
/// <param name="Model">The fitted model: ML.NET and ONNX transformers (and, for a variable-length column, the padding step).</param>
/// <param name="History">Loss and metrics per epoch, the epoch kept and the device used.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through (ONNX's LSTM or GRU operators).</param>
/// <param name="ParameterCount">Trainable parameters of the network.</param>
/// <param name="MaxLength">The longest series, in steps, the model accepts.</param>
public sealed record SequenceFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount, int MaxLength);

/// <summary>
/// An LSTM or GRU classifier of multivariate series of any length, trained with TorchSharp and served through
/// ONNX's own LSTM and GRU operators. Steps past a series' end are masked, so padding never changes a prediction.
/// Outputs <c>Score</c> (class probabilities) and a key-typed <c>PredictedLabel</c>.
/// </summary>
/// <remarks>
/// A model fitted on a variable-length column pads it with ML.NET's CustomMapping; before loading such a model,
/// call <c>mlContext.ComponentCatalog.RegisterAssembly(typeof(SequenceClassifierEstimator).Assembly)</c>.
/// </remarks>
/// <example>
/// <code>
/// var train = TimeSeriesFile.Load(mlContext, "JapaneseVowels_TRAIN.ts");
/// var model = mlContext.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions
/// {
///     Channels = 12, Epochs = 40, Architecture = new SequenceArchitecture { HiddenSize = 64, Pooling = SequencePooling.Attention },
/// }).Fit(train);
/// var metrics = mlContext.MulticlassClassification.Evaluate(model.Transform(TimeSeriesFile.Load(mlContext, "JapaneseVowels_TEST.ts")),
///     labelColumnName: "Label");
/// </code>
/// </example>
public sealed class SequenceClassifierEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private const string LogitsColumn = ClassificationColumns.LogitsColumn;
    private readonly ModelContext _context;

    internal SequenceClassifierEstimator(ModelContext context, SequenceClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        Options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public SequenceClassifierOptions Options { get; }

    /// <summary>Trains on <paramref name="input"/> and returns the ML.NET model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Trains, validating (and early stopping, when enabled) on <paramref name="validationData"/>, and returns the model with its history and ONNX graph.</summary>
    public SequenceFitResult Train(IDataView trainData, IDataView? validationData = null)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        Options.Validate();
        var log = _context.Logger("DeepVariants.Sequences");
        string column = Options.FeatureColumnName;
        int channels = Options.Channels;
        int fixedSize = SeriesReader.RequireSeriesColumn(trainData.Schema, column, channels);

        (string labelColumn, var train, var validation, _) = ClassificationColumns.KeyedLabel(_context, Options.LabelColumnName, trainData, validationData,
            type => type is PrimitiveDataViewType, "a key, text, number or boolean label");
        var labels = DataViewReader.RequireKeyLabel(train.Schema, labelColumn);
        var trainSeries = SeriesReader.Read(train, column, channels, labelColumn);
        int maxLength = fixedSize > 0 ? fixedSize / channels : Options.MaxLength > 0 ? Options.MaxLength : trainSeries.Longest;
        var validationSeries = validation is null ? null : SeriesReader.Read(validation, column, channels, labelColumn);
        trainSeries.CheckLongest(maxLength, "training");
        validationSeries?.CheckLongest(maxLength, "validation");
        if (trainSeries.Labels.Distinct().Count() < 2)
            throw new ArgumentException($"Label column '{Options.LabelColumnName}' has a single class in the training data; a classifier needs at least two.", nameof(trainData));

        using var trainSet = trainSeries.ToDataset(maxLength);
        using var validationSet = validationSeries?.ToDataset(maxLength);
        int seed = _context.ResolveSeed(Options.Seed);
        var device = TorchDevices.Resolve(Options.Device, _context.Environment, log);
        random.manual_seed(seed);
        using var network = new SequenceNetwork(Options.Architecture, channels, labels.ClassCount);
        if (Options.NormalizeChannels)
            network.FitChannelScaling(trainSet.Inputs);
        log($"Training a {Options.Architecture.Cell} sequence classifier ({network.ParameterCount:N0} parameters) on {trainSet.Count:N0} series of up to {maxLength} steps, {labels.ClassCount} classes, device {device}, seed {seed}.");
        var history = TorchTrainer.Train(network, trainSet, validationSet, new ClassificationObjective(), Options, device, seed, log);

        // A variable-length column is padded (with NaN) to a fixed size first: ML.NET's ONNX transformer takes fixed sizes only.
        ITransformer? padding = null;
        IDataView prepared = train;
        string onnxInput = column;
        int inputSize = fixedSize;
        if (fixedSize == 0)
        {
            inputSize = SeriesPadding.SizeFor((long)maxLength * channels);
            padding = SeriesPadding.Estimator(_context, column, inputSize).Fit(train);
            prepared = padding.Transform(train);
            onnxInput = SeriesPadding.PaddedColumn;
        }
        byte[] onnx = network.ExportOnnx(onnxInput, inputSize, LogitsColumn);
        var onnxTransformer = OnnxServing.Apply(_context, onnx, [onnxInput], [LogitsColumn], prepared);
        var scored = onnxTransformer.Transform(prepared);
        string[] temporary = padding is null ? [] : [SeriesPadding.InputColumn, SeriesPadding.PaddedColumn];
        var (head, drop) = ClassificationColumns.SoftmaxTail(_context, scored, labelColumn, labels, Options.ScoreColumnName,
            Options.PredictedLabelColumnName, temporary);
        var model = OnnxServing.Chain(padding, onnxTransformer, head, drop);
        return new SequenceFitResult(model, history, onnx, network.ParameterCount, fixedSize > 0 ? fixedSize / channels : inputSize / channels);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        var columns = inputSchema.ToDictionary(c => c.Name);
        string column = Options.FeatureColumnName;
        if (!columns.TryGetValue(column, out var series))
            throw DataViewReader.MissingColumn(column);
        if (series.ItemType != NumberDataViewType.Single || series.Kind == SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(column,
                $"Schema mismatch for input column '{column}': expected a Vector<Single> of steps x {Options.Channels} values, got {series.Kind} of {series.ItemType}.");
        if (!columns.TryGetValue(Options.LabelColumnName, out var label))
            throw DataViewReader.MissingColumn(Options.LabelColumnName);
        ClassificationColumns.AddMulticlassOutputs(columns, label, Options.ScoreColumnName, Options.PredictedLabelColumnName);
        return new SchemaShape(columns.Values);
    }
}

using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>What fitting a sequence classifier produced: the common result, and the length training padded series to.</summary>
/// <param name="Model">The fitted model: ML.NET and ONNX transformers only.</param>
/// <param name="History">Loss and metrics per epoch, the epoch kept and the device used.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through (ONNX's LSTM or GRU operators).</param>
/// <param name="ParameterCount">Trainable parameters of the network.</param>
/// <param name="MaxLength">The steps training batches were padded to: the column's steps for a fixed-length column, else MaxLength or the longest training series. Predictions take series of any length.</param>
public sealed record SequenceFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount, int MaxLength)
    : FitResult(Model, History, OnnxModel, ParameterCount);

/// <summary>
/// An LSTM or GRU classifier of multivariate series of any length, trained with TorchSharp and served through
/// ONNX's own LSTM and GRU operators. Steps past a series' end are masked, so padding never changes a prediction.
/// Outputs <c>Score</c> (class probabilities) and a key-typed <c>PredictedLabel</c>. A model fitted on a
/// variable-length column takes it as it is (ML.NET's ONNX transformer feeds a vector of unknown size to the graph's
/// one free dimension), so a saved model loads and predicts with plain ML.NET.
/// </summary>
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
public sealed class SequenceClassifierEstimator : DeepVariantsEstimator<SequenceClassifierOptions, SequenceFitResult>
{
    internal SequenceClassifierEstimator(ModelContext context, SequenceClassifierOptions options) : base(context, options, "DeepVariants.Sequences") { }

    private protected override FitTask CreateTask(SchemaView schema) => SequenceTask.Create(schema, Options);

    /// <summary>The sequence classifier's part of a fit: series padded with NaN to the longest, a recurrent network, its ONNX graph.</summary>
    private sealed class SequenceTask : FitTask
    {
        private readonly SequenceClassifierOptions _options;
        private readonly int _fixedSize;

        private SequenceTask(SequenceClassifierOptions options, int fixedSize)
        {
            _options = options;
            _fixedSize = fixedSize;
        }

        /// <summary>The steps training batches hold (known once the training data is read).</summary>
        public int MaxLength { get; private set; }

        public static SequenceTask Create(SchemaView schema, SequenceClassifierOptions o)
        {
            var series = schema.Require(o.FeatureColumnName);
            if (!series.IsFloatVector)
                throw schema.Mismatch(series, $"a Vector<Single> of steps x {o.Channels} values");
            bool fixedLength = series.Kind == SchemaShape.Column.VectorKind.Vector;
            if (schema.HasSizes && fixedLength && series.Size % o.Channels != 0)
                throw schema.Mismatch(series, $"a Vector<Single> whose size is a multiple of Channels ({o.Channels})");
            var label = ClassLabels.Check(schema, o.LabelColumnName);
            return new SequenceTask(o, fixedLength ? series.Size : 0)
            {
                Label = label,
                Tail = new ServingTail.Multiclass(o.ScoreColumnName, o.PredictedLabelColumnName),
                Description = $"a {o.Architecture.Cell} sequence classifier",
                InputColumn = o.FeatureColumnName,
            };
        }

        public override RowReader Reader(IDataView prepared, string role)
        {
            string column = _options.FeatureColumnName;
            int channels = _options.Channels;
            // Validation batches hold their own longest series: the network takes any length.
            int steps = _fixedSize > 0 ? _fixedSize / channels
                : role == "training" && _options.MaxLength > 0 ? _options.MaxLength
                : role == "training" && MaxLength > 0 ? MaxLength
                : SeriesFeatures.Longest(prepared, column, channels, role);
            if (role == "training")
                MaxLength = steps;
            return new RowReader(new SeriesFeatures(prepared.Schema[column], channels, steps),
                new ClassTarget(prepared.Schema[Fit.Label!.KeyColumn], Fit.Label.UserColumn));
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network) =>
            new SequenceFitResult(result.Model, result.History, result.OnnxModel, result.ParameterCount, MaxLength) { Trained = result.Trained };

        public override nn.Module<Tensor, Tensor> CreateNetwork() => new SequenceNetwork(_options.Architecture, _options.Channels, Fit.Label!.Info.ClassCount);

        public override long? CountParameters() => _options.Architecture.ParameterCount(_options.Channels, Fit.Label!.Info.ClassCount);

        public override string ShrinkHint => "a smaller HiddenSize or fewer Layers in Architecture";

        public override void Initialize(nn.Module<Tensor, Tensor> network)
        {
            if (_options.NormalizeChannels)
                ((SequenceNetwork)network).FitChannelScaling(Fit.TrainSource);
        }

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            string column = _options.FeatureColumnName, logits = ClassificationColumns.LogitsColumn;
            byte[] onnx = ((SequenceNetwork)network).ExportOnnx(column, _fixedSize > 0 ? _fixedSize : null, logits);
            return new OnnxExport(onnx, [column], [logits]);
        }
    }
}

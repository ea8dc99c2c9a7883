using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>What fitting a sequence classifier produced: the common result, and the length training padded series to.</summary>
/// <param name="Model">The fitted model: ML.NET and ONNX transformers only.</param>
/// <param name="History">Loss and metrics per epoch, the epoch kept and the device used.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through.</param>
/// <param name="ParameterCount">Trainable parameters of the network.</param>
/// <param name="MaxLength">The steps training batches were padded to: the column's steps for a fixed-length column, else MaxLength or the longest training series. Predictions take series of any length.</param>
public sealed record SequenceFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount, int MaxLength)
    : FitResult(Model, History, OnnxModel, ParameterCount);

/// <summary>
/// A classifier of multivariate series of any length: recurrent (LSTM, GRU), temporal convolution (FCN, ResNet,
/// InceptionTime) or Transformer (<see cref="SequenceArchitecture.Family"/>), trained with TorchSharp and served through
/// ONNX. Steps past a series' end are masked, so padding never changes a prediction.
/// Outputs <c>Score</c> (class probabilities), a key-typed <c>PredictedLabel</c>, and with
/// <see cref="SequenceClassifierOptions.AttentionColumnName"/> one attention weight per step. A model fitted on a
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

    /// <summary>The sequence classifier's part of a fit: series padded with NaN to the longest, a network of the chosen family, its ONNX graph.</summary>
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
            if (schema.HasSizes && fixedLength)
                CheckKernels(o, series.Size / o.Channels, $"column '{o.FeatureColumnName}' holds {series.Size / o.Channels} steps");
            var label = ClassLabels.Check(schema, o.LabelColumnName);
            var a = o.Architecture;
            var extra = o.AttentionColumnName is { } attention
                ? [MLNetInternals.SchemaColumn(attention, fixedLength ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector,
                    NumberDataViewType.Single, false)]
                : Array.Empty<SchemaShape.Column>();
            return new SequenceTask(o, fixedLength ? series.Size : 0)
            {
                Label = label,
                Tail = new ServingTail.Multiclass(o.ScoreColumnName, o.PredictedLabelColumnName),
                ExtraOutputs = extra,
                Description = a.Family switch
                {
                    SequenceFamily.TemporalConvolution => $"a {a.Preset} temporal CNN{(a.EnsembleSize > 1 ? $" ensemble of {a.EnsembleSize}" : "")}",
                    SequenceFamily.Transformer => "a Transformer sequence classifier",
                    _ => $"a {a.Cell} sequence classifier",
                },
                InputColumn = o.FeatureColumnName,
            };
        }

        // A convolution kernel longer than every series would read mostly padding: refused, naming the knob, before training.
        private static void CheckKernels(SequenceClassifierOptions o, int longest, string where)
        {
            var a = o.Architecture;
            if (a.Family != SequenceFamily.TemporalConvolution || a.Kernels[0] <= longest)
                return;
            throw new ArgumentOutOfRangeException(a.Preset == TemporalConvolutionPreset.InceptionTime ? nameof(SequenceArchitecture.KernelSize) : nameof(SequenceArchitecture.Preset),
                a.Kernels[0], $"The {a.Preset} kernel of {a.Kernels[0]} steps is longer than the longest series ({where}). " +
                (a.Preset == TemporalConvolutionPreset.InceptionTime
                    ? $"Set Architecture.KernelSize to at most {longest}."
                    : $"{a.Preset} has kernels of 8, 5 and 3 steps; use Preset = InceptionTime with KernelSize at most {longest}, or another family."));
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
            {
                MaxLength = steps;
                CheckKernels(_options, steps, $"{steps} steps in column '{column}'");
            }
            return new RowReader(new SeriesFeatures(prepared.Schema[column], channels, steps),
                new ClassTarget(prepared.Schema[Fit.Label!.KeyColumn], Fit.Label.UserColumn));
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network) =>
            new SequenceFitResult(result.Model, result.History, result.OnnxModel, result.ParameterCount, MaxLength) { Trained = result.Trained };

        public override nn.Module<Tensor, Tensor> CreateNetwork() => SequenceNetwork.Create(_options.Architecture, _options.Channels, Fit.Label!.Info.ClassCount);

        public override ITrainingObjective Objective => _options.Architecture is { Family: SequenceFamily.TemporalConvolution, EnsembleSize: > 1 }
            ? new EnsembleObjective(Fit.Label!.Info.ClassCount)
            : base.Objective;

        public override long? CountParameters() => _options.Architecture.ParameterCount(_options.Channels, Fit.Label!.Info.ClassCount);

        public override string ShrinkHint => _options.Architecture.Family switch
        {
            SequenceFamily.TemporalConvolution => "fewer Filters, a smaller Depth or Bottleneck, or a smaller EnsembleSize in Architecture",
            SequenceFamily.Transformer => "a smaller ModelWidth or FeedForwardSize, or fewer Layers in Architecture",
            _ => "a smaller HiddenSize or fewer Layers in Architecture",
        };

        public override void Initialize(nn.Module<Tensor, Tensor> network)
        {
            if (_options.NormalizeChannels)
                ((SequenceNetwork)network).FitChannelScaling(Fit.TrainSource);
        }

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            string column = _options.FeatureColumnName, logits = ClassificationColumns.LogitsColumn;
            string? attention = _options.AttentionColumnName;
            byte[] onnx = ((SequenceNetwork)network).ExportOnnx(column, _fixedSize > 0 ? _fixedSize : null, logits, attention);
            return new OnnxExport(onnx, [column], attention is null ? [logits] : [logits, attention]);
        }
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// What a GAN's fit returns. <see cref="FitResult.Model"/> is the generator as an ML.NET model: it reads a latent
/// column (and, when conditional, the class key column) and writes the image column, through ML.NET's ONNX transformer,
/// so it saves and loads like any model and samples without TorchSharp.
/// </summary>
/// <param name="Model">The generator: <see cref="LatentColumnName"/> (and <see cref="ConditionColumnName"/>) to <see cref="GeneratedColumnName"/>.</param>
/// <param name="History">The discriminator's loss per epoch (<see cref="Losses"/> has both networks').</param>
/// <param name="OnnxModel">The generator's ONNX graph.</param>
/// <param name="ParameterCount">Trainable parameters of both networks.</param>
/// <param name="Losses">Both losses and the discriminator's accuracy per epoch.</param>
/// <param name="GeneratorParameterCount">Parameters of the generator alone, what the model serves.</param>
/// <param name="LatentSize">Dimensions of the latent.</param>
/// <param name="OutputSize">Values of one generated image, channel-major.</param>
/// <param name="ClassNames">The conditioning classes in key order (key value 1 first); empty for an unconditional GAN.</param>
public sealed record GanFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount,
    IReadOnlyList<GanEpoch> Losses, long GeneratorParameterCount, int LatentSize, int OutputSize, IReadOnlyList<string> ClassNames)
    : FitResult(Model, History, OnnxModel, ParameterCount)
{
    /// <summary>The generator's input column, a Vector&lt;Single, LatentSize&gt;.</summary>
    public string LatentColumnName { get; init; } = "Latent";

    /// <summary>The generator's output column, a Vector&lt;Single, OutputSize&gt; in [0, 1].</summary>
    public string GeneratedColumnName { get; init; } = "Generated";

    /// <summary>The class key column the generator reads, or null for an unconditional GAN.</summary>
    public string? ConditionColumnName { get; init; }

    /// <summary>
    /// <paramref name="count"/> samples: latents from N(0, I) drawn with <paramref name="seed"/> (the same seed gives
    /// the same samples), for the class of 0-based index <paramref name="classIndex"/>, or, when it is null, for the
    /// classes in turn (sample i of class i mod K). Columns: the latent, the class key (conditional), the image.
    /// </summary>
    /// <example><code>var shoes = fit.Generate(mlContext, count: 16, seed: 1, classIndex: 7).GetColumn&lt;float[]&gt;("Generated");</code></example>
    public IDataView Generate(MLContext mlContext, int count, int seed, int? classIndex = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var latents = LatentPoints.Prior(count, LatentSize, seed);
        return Model.Transform(Latents(mlContext, latents, Classes(count, classIndex)));
    }

    /// <summary>The images at <paramref name="steps"/> evenly spaced latents from <paramref name="from"/> to <paramref name="to"/>, both included, for one class (conditional).</summary>
    /// <example><code>var path = fit.Interpolate(mlContext, first, second, steps: 8, classIndex: 0);</code></example>
    public IReadOnlyList<float[]> Interpolate(MLContext mlContext, float[] from, float[] to, int steps, int? classIndex = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (from.Length != LatentSize || to.Length != LatentSize)
            throw new ArgumentException($"The latents have {from.Length} and {to.Length} values; expected LatentSize {LatentSize}.", nameof(from));
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 2);
        if (ClassNames.Count > 0 && classIndex is null)
            throw new ArgumentNullException(nameof(classIndex), "A conditional generator interpolates within one class: give classIndex.");
        var latents = LatentPoints.Line(from, to, steps);
        return Model.Transform(Latents(mlContext, latents, Classes(steps, classIndex))).GetColumn<float[]>(GeneratedColumnName).ToList();
    }

    private uint[]? Classes(int count, int? classIndex)
    {
        if (ClassNames.Count == 0)
            return classIndex is null ? null
                : throw new ArgumentException("This GAN is unconditional; classIndex must be null.", nameof(classIndex));
        if (classIndex is < 0 || classIndex >= ClassNames.Count)
            throw new ArgumentOutOfRangeException(nameof(classIndex), classIndex, $"classIndex must be from 0 to {ClassNames.Count - 1} (the classes: {string.Join(", ", ClassNames)}).");
        return Enumerable.Range(0, count).Select(i => (uint)(classIndex ?? i % ClassNames.Count)).ToArray();
    }

    // Rows of the latent column and, when conditional, the class key column: the generator's input.
    private IDataView Latents(MLContext mlContext, IReadOnlyList<float[]> latents, uint[]? classes) =>
        GanInputs.Create(mlContext, latents, classes, LatentSize, LatentColumnName, ConditionColumnName, ClassNames.Count);
}

/// <summary>Views of the generator's input columns.</summary>
internal static class GanInputs
{
    /// <summary>
    /// Latents and, when <paramref name="conditionColumn"/> is set, 0-based class indices as a key column of
    /// <paramref name="classCount"/> classes (ML.NET's enumerable loading stores a key-typed value v as key v + 1).
    /// </summary>
    public static IDataView Create(MLContext mlContext, IReadOnlyList<float[]> latents, uint[]? classes, int latentSize, string latentColumn, string? conditionColumn, int classCount)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        // The definition finds columns by their current name: take both before renaming either.
        var latent = schema[nameof(Row.Latent)];
        var key = schema[nameof(Row.Class)];
        latent.ColumnName = latentColumn;
        latent.ColumnType = new VectorDataViewType(NumberDataViewType.Single, latentSize);
        var rows = latents.Select((l, i) => new Row { Latent = l, Class = classes?[i] ?? 0 }).ToList();
        if (conditionColumn is null)
            schema.Remove(key);
        else
        {
            key.ColumnName = conditionColumn;
            key.ColumnType = new KeyDataViewType(typeof(uint), classCount);
        }
        return mlContext.Data.LoadFromEnumerable(rows, schema);
    }

    private sealed class Row
    {
        public float[] Latent { get; set; } = [];
        public uint Class { get; set; }
    }
}

/// <summary>
/// A DCGAN (Radford et al. 2016), unconditional or conditioned on a key column of classes, trained with the stabilisers
/// <see cref="GanOptions"/> lists. The fitted model is the generator: from a latent column (and the class column) to an
/// image column in [0, 1]. <see cref="GanFitResult.Generate"/> samples it; <see cref="GenerativePlots"/> draws the samples;
/// <see cref="GenerativeMetrics"/> scores them.
/// </summary>
/// <example>
/// <code>
/// var fit = mlContext.Transforms.DeepVariants.Gan(new GanOptions { ImageHeight = 28, ImageWidth = 28, ConditionColumnName = "Label", Epochs = 20 }).Train(train);
/// IDataView samples = fit.Generate(mlContext, count: 100, seed: 1);   // Latent, Label, Generated
/// </code>
/// </example>
public sealed class GanEstimator : DeepVariantsEstimator<GanOptions, GanFitResult>
{
    internal GanEstimator(ModelContext context, GanOptions options) : base(context, options, "DeepVariants.Gan") { }

    private protected override FitTask CreateTask(SchemaView schema) => GanTask.Create(schema, Options);

    private sealed class GanTask : FitTask
    {
        private const string ClassValueColumn = "DeepVariants.ClassOneHot";
        private readonly GanOptions _options;
        private IReadOnlyList<GanEpoch> _epochs = [];

        private GanTask(GanOptions options) => _options = options;

        private int Size => _options.Channels * _options.ImageHeight * _options.ImageWidth;

        private int ClassCount => Fit.Label?.Info.ClassCount ?? 0;

        public static GanTask Create(SchemaView schema, GanOptions o)
        {
            var feature = schema.Require(o.FeatureColumnName);
            int size = o.Channels * o.ImageHeight * o.ImageWidth;
            if (!feature.IsFloatVector || feature.Kind != SchemaShape.Column.VectorKind.Vector || (schema.HasSizes && feature.Size != size))
                throw schema.Mismatch(feature, $"Vector<Single, {size}> ({o.Channels}x{o.ImageHeight}x{o.ImageWidth}, values in [0, 1])");
            ColumnInfo? label = null;
            if (o.ConditionColumnName is { } condition)
            {
                var column = schema.Require(condition);
                if (!column.IsKey || !column.IsScalar)
                    throw new ArgumentOutOfRangeException(nameof(GanOptions.ConditionColumnName),
                        $"ConditionColumnName '{condition}' is a {column.TypeText} column{SchemaView.In(schema.Role)}; a conditional GAN reads a key column of classes " +
                        $"(mlContext.Transforms.Conversion.MapValueToKey(\"{condition}\") makes one).");
                label = column;
            }
            var vector = SchemaShape.Column.VectorKind.Vector;
            return new GanTask(o)
            {
                Label = label,
                ExtraOutputs = [MLNetInternals.SchemaColumn(o.GeneratedColumnName, vector, NumberDataViewType.Single, false)],
                Description = $"a {(label is null ? "" : "conditional ")}DCGAN (latent {o.LatentSize}, width {o.Width}, depth {o.Depth}, {o.Loss} loss" +
                    (o.SpectralNormalization ? ", spectral normalisation" : "") + ")",
                InputColumn = o.FeatureColumnName,
            };
        }

        public override RowReader Reader(IDataView prepared, string role)
        {
            FeatureReader features = new UnitIntervalFeatures(new VectorFeatures(prepared.Schema[_options.FeatureColumnName], [Size]), _options.FeatureColumnName,
                "a GAN's generator writes values in [0, 1], so the real images must be in [0, 1] too (scale pixels by 1/255)");
            TargetReader targets = Fit.Label is { } label
                ? new ClassTarget(prepared.Schema[label.KeyColumn], label.UserColumn)
                : new SameAsFeatures([Size]);
            return new RowReader(features, targets);
        }

        public override nn.Module<Tensor, Tensor> CreateNetwork() => new GanNetworks(_options, ClassCount);

        public override string ShrinkHint => "a smaller Width, Depth or LatentSize";

        public override ITrainingObjective Objective => new AdversarialObjective();

        public override TrainingHistory Train(TrainingRun run)
        {
            if (run.Validation is not null)
                throw new ArgumentException("A GAN trains without validation data (no loss of either network tells a better generator); pass none.", "validationData");
            var (history, epochs) = GanTraining.Train((GanNetworks)run.Model, run, _options, ClassCount > 0);
            _epochs = epochs;
            return history;
        }

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            var o = _options;
            string? classValue = ClassCount > 0 ? ClassValueColumn : null;
            byte[] onnx = ((GanNetworks)network).Served.ExportOnnx(o.LatentColumnName, classValue, o.GeneratedColumnName);
            return new OnnxExport(onnx, classValue is null ? [o.LatentColumnName] : [o.LatentColumnName, classValue], [o.GeneratedColumnName]);
        }

        public override bool ServesItsExport => false;

        // The model reads latents, not training rows: its ONNX transformer is fitted on an empty view of the generator's
        // inputs. A class key goes in one-hot, through ML.NET's key-to-vector mapping (a missing key is all zeros).
        public override (TransformerChain<ITransformer> Model, byte[] Onnx) Serve(nn.Module<Tensor, Tensor> network)
        {
            var export = Export(network);
            var ml = new MLContext(Fit.Seed);
            var empty = GanInputs.Create(ml, [], null, _options.LatentSize, _options.LatentColumnName, _options.ConditionColumnName, Math.Max(1, ClassCount));
            if (ClassCount == 0)
                return (OnnxServing.Chain(OnnxServing.Apply(Fit.Context, export.Bytes, export.Inputs, export.Outputs, empty)), export.Bytes);
            var toValue = Fit.Context.Transforms.Conversion.MapKeyToVector(ClassValueColumn, _options.ConditionColumnName).Fit(empty);
            var withValue = toValue.Transform(empty);
            var onnx = OnnxServing.Apply(Fit.Context, export.Bytes, export.Inputs, export.Outputs, withValue);
            var drop = Fit.Context.Transforms.DropColumns(ClassValueColumn).Fit(onnx.Transform(withValue));
            return (OnnxServing.Chain(toValue, onnx, drop), export.Bytes);
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network)
        {
            long generatorParameters = ((GanNetworks)network).Generator.parameters().Sum(p => p.numel());
            return new GanFitResult(result.Model, result.History, result.OnnxModel, result.ParameterCount, _epochs, generatorParameters,
                _options.LatentSize, Size, Fit.Label?.Info.ClassNames ?? [])
            {
                LatentColumnName = _options.LatentColumnName,
                GeneratedColumnName = _options.GeneratedColumnName,
                ConditionColumnName = ClassCount > 0 ? _options.ConditionColumnName : null,
                Trained = result.Trained,
            };
        }
    }
}

/// <summary>
/// Stands for a GAN's two losses where the shared machinery asks for one objective: <see cref="GanTraining"/> computes
/// both itself, so the single-loss loop (the one pruning and distillation fine-tune with) refuses a GAN here.
/// </summary>
internal sealed class AdversarialObjective : ITrainingObjective
{
    public Tensor Loss(Tensor output, Tensor target) =>
        throw new NotSupportedException("A GAN trains its generator and discriminator against each other; it cannot be fine-tuned with one loss (pruning, distillation).");

    public double? MetricSum(Tensor output, Tensor target) => null;

    public long CountedRows(Tensor target) => target.shape[0];
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// What a variational autoencoder's fit returns: the model (latent mean and log-variance, reconstruction and Score,
/// the negative ELBO, per row) and the generator, its decoder alone as an ONNX graph from a latent to an image.
/// </summary>
/// <param name="Model">The fitted model.</param>
/// <param name="History">Loss (the negative ELBO) per epoch.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through.</param>
/// <param name="ParameterCount">Trainable parameters.</param>
/// <param name="GeneratorOnnx">The decoder's ONNX graph: input <see cref="LatentColumnName"/> [L], output <see cref="GeneratedColumnName"/> [D].</param>
/// <param name="LatentSize">Dimensions of the latent.</param>
/// <param name="OutputSize">Values the generator writes, the input's size.</param>
public sealed record VariationalAutoencoderFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount,
    byte[] GeneratorOnnx, int LatentSize, int OutputSize) : FitResult(Model, History, OnnxModel, ParameterCount)
{
    /// <summary>The generator's input column: a Vector&lt;Single, LatentSize&gt;.</summary>
    public const string LatentColumnName = "Latent";

    /// <summary>The generator's output column: a Vector&lt;Single, OutputSize&gt;, what the model's input holds (an image, channel-major).</summary>
    public const string GeneratedColumnName = "Generated";

    /// <summary>
    /// The generator as an ML.NET transformer: it adds <see cref="GeneratedColumnName"/> to rows that have a
    /// <see cref="LatentColumnName"/> column, through ML.NET's ONNX transformer (saved and loaded like any model).
    /// </summary>
    /// <example><code>var images = fit.CreateGenerator(mlContext).Transform(latents);</code></example>
    public ITransformer CreateGenerator(MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var empty = Latents(mlContext, []);
        using var stream = new MemoryStream(GeneratorOnnx, writable: false);
        return mlContext.Transforms.ApplyOnnxModel([GeneratedColumnName], [LatentColumnName], stream, shapeDictionary: null,
            gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100).Fit(empty);
    }

    /// <summary>
    /// <paramref name="count"/> samples of the model: latents drawn from the prior N(0, I) with <paramref name="seed"/>
    /// (columns <see cref="LatentColumnName"/>), decoded (column <see cref="GeneratedColumnName"/>).
    /// </summary>
    /// <example><code>var samples = fit.Generate(mlContext, count: 16, seed: 1).GetColumn&lt;float[]&gt;("Generated");</code></example>
    public IDataView Generate(MLContext mlContext, int count, int seed)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var latents = LatentPoints.Prior(count, LatentSize, seed);
        return CreateGenerator(mlContext).Transform(Latents(mlContext, latents));
    }

    /// <summary>
    /// The decoded images at <paramref name="steps"/> evenly spaced points on the line from the latent
    /// <paramref name="from"/> to <paramref name="to"/> (both included), in order: how the model morphs one into the other.
    /// </summary>
    /// <example><code>var path = fit.Interpolate(mlContext, meanOfShirt, meanOfShoe, steps: 8);</code></example>
    public IReadOnlyList<float[]> Interpolate(MLContext mlContext, float[] from, float[] to, int steps)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (from.Length != LatentSize || to.Length != LatentSize)
            throw new ArgumentException($"The latents have {from.Length} and {to.Length} values; expected LatentSize {LatentSize}.", nameof(from));
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 2);
        var latents = LatentPoints.Line(from, to, steps);
        return CreateGenerator(mlContext).Transform(Latents(mlContext, latents)).GetColumn<float[]>(GeneratedColumnName).ToList();
    }

    // Rows of one Latent column of LatentSize values, the generator's input.
    private IDataView Latents(MLContext mlContext, IReadOnlyList<float[]> latents)
    {
        var schema = SchemaDefinition.Create(typeof(LatentRow));
        schema[nameof(LatentRow.Latent)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, LatentSize);
        return mlContext.Data.LoadFromEnumerable(latents.Select(l => new LatentRow { Latent = l }).ToList(), schema);
    }

    private sealed class LatentRow
    {
        public float[] Latent { get; set; } = [];
    }
}

/// <summary>
/// A variational autoencoder (Kingma and Welling 2014), dense or convolutional, with a Gaussian latent, a β weight on
/// the KL term and a Bernoulli or Gaussian reconstruction. The fitted model outputs per row the latent mean and
/// log-variance, the reconstruction decoded from the mean, and <c>Score</c>, the negative evidence lower bound: an
/// anomaly score, higher for rows unlike the training data. <see cref="VariationalAutoencoderFitResult.CreateGenerator"/>
/// maps latents to images.
/// </summary>
/// <example>
/// <code>
/// var fit = mlContext.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions { LatentSize = 16, Epochs = 10 }).Train(train);
/// IDataView scored = fit.Model.Transform(test);              // LatentMean, LatentLogVariance, Reconstruction, Score
/// IDataView samples = fit.Generate(mlContext, 16, seed: 1);  // Latent, Generated
/// </code>
/// </example>
public sealed class VariationalAutoencoderEstimator : DeepVariantsEstimator<VariationalAutoencoderOptions, VariationalAutoencoderFitResult>
{
    internal VariationalAutoencoderEstimator(ModelContext context, VariationalAutoencoderOptions options) : base(context, options, "DeepVariants.VariationalAutoencoder") { }

    private protected override FitTask CreateTask(SchemaView schema) => VaeTask.Create(schema, Options);

    private sealed class VaeTask : FitTask
    {
        private const string ScoreColumn = "DeepVariants.NegativeElbo";
        private readonly VariationalAutoencoderOptions _options;

        private VaeTask(VariationalAutoencoderOptions options) => _options = options;

        public int Size { get; private init; }

        public static VaeTask Create(SchemaView schema, VariationalAutoencoderOptions o)
        {
            var feature = schema.Require(o.FeatureColumnName);
            if (!feature.IsFloatVector || feature.Kind != SchemaShape.Column.VectorKind.Vector)
                throw schema.Mismatch(feature, "a Vector<Single> of known size");
            int imageSize = o.Channels * o.ImageHeight * o.ImageWidth;
            if (schema.HasSizes && o.Kind == VariationalAutoencoderKind.Convolutional && feature.Size != imageSize)
                throw schema.Mismatch(feature, $"Vector<Single, {imageSize}> ({o.Channels}x{o.ImageHeight}x{o.ImageWidth})");
            var vector = SchemaShape.Column.VectorKind.Vector;
            return new VaeTask(o)
            {
                Size = feature.Size,
                Tail = new ServingTail.ScalarScore(ScoreColumn),
                ExtraOutputs =
                [
                    MLNetInternals.SchemaColumn(o.LatentMeanColumnName, vector, NumberDataViewType.Single, false),
                    MLNetInternals.SchemaColumn(o.LatentLogVarianceColumnName, vector, NumberDataViewType.Single, false),
                    MLNetInternals.SchemaColumn(o.ReconstructionColumnName, vector, NumberDataViewType.Single, false),
                ],
                Description = $"a {o.Kind} variational autoencoder (latent {o.LatentSize}, beta {o.Beta})",
                InputColumn = o.FeatureColumnName,
            };
        }

        public override RowReader Reader(IDataView prepared, string role)
        {
            FeatureReader features = new VectorFeatures(prepared.Schema[_options.FeatureColumnName], [Size]);
            if (_options.Likelihood == ReconstructionLikelihood.Bernoulli)
                features = new UnitIntervalFeatures(features, _options.FeatureColumnName, "a Bernoulli likelihood reads values in [0, 1] (scale pixels by 1/255), or set Likelihood to Gaussian");
            return new RowReader(features, new SameAsFeatures([Size]));
        }

        public override ITrainingObjective Objective => new VariationalAutoencoderObjective(Size, _options.LatentSize, _options.Beta, _options.Likelihood);

        public override nn.Module<Tensor, Tensor> CreateNetwork() => VariationalAutoencoderNetwork.Create(_options, Size);

        public override long? CountParameters() => VariationalAutoencoderNetwork.CountParameters(_options, Size);

        public override string ShrinkHint => "a smaller Width, Depth or LatentSize";

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            var o = _options;
            byte[] onnx = ((VariationalAutoencoderNetwork)network).ExportOnnx(o.FeatureColumnName, o.LatentMeanColumnName, o.LatentLogVarianceColumnName,
                o.ReconstructionColumnName, ScoreColumn);
            return new OnnxExport(onnx, [o.FeatureColumnName], [o.LatentMeanColumnName, o.LatentLogVarianceColumnName, o.ReconstructionColumnName, ScoreColumn]);
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network)
        {
            byte[] generator = ((VariationalAutoencoderNetwork)network).ExportGenerator(VariationalAutoencoderFitResult.LatentColumnName,
                VariationalAutoencoderFitResult.GeneratedColumnName);
            return new VariationalAutoencoderFitResult(result.Model, result.History, result.OnnxModel, result.ParameterCount, generator, _options.LatentSize, Size)
            {
                Trained = result.Trained,
            };
        }
    }
}

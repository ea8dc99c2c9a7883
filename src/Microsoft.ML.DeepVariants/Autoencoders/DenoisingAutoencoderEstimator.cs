using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Autoencoders;

/// <summary>
/// A denoising autoencoder (Vincent et al. 2008): trained on corrupted inputs against clean targets, it learns
/// to remove the corruption. The fitted model outputs the denoised vector (same shape as the input), the code
/// (a feature vector for downstream trainers) and <c>Score</c>, the mean squared reconstruction error of the row,
/// as an anomaly score (higher is more unusual), like ML.NET's anomaly detectors.
/// </summary>
/// <example>
/// <code>
/// var denoiser = mlContext.Transforms.DeepVariants.DenoisingAutoencoder(new DenoisingAutoencoderOptions
/// {
///     Kind = AutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28,
///     NoiseStandardDeviation = 0.4f, InputMinimum = 0, InputMaximum = 1,
/// }).Fit(train);
/// var cleaned = denoiser.Transform(noisyImages);   // Denoised, Code, Score
/// </code>
/// </example>
public sealed class DenoisingAutoencoderEstimator : DeepVariantsEstimator<DenoisingAutoencoderOptions, FitResult>
{
    internal DenoisingAutoencoderEstimator(ModelContext context, DenoisingAutoencoderOptions options) : base(context, options, "DeepVariants.Autoencoder") { }

    private protected override FitTask CreateTask(SchemaView schema) => AutoencoderTask.Create(schema, Options);

    /// <summary>The autoencoder's part of a fit: a float vector in, its reconstruction (and code) out, the error as a scalar Score.</summary>
    private sealed class AutoencoderTask : FitTask
    {
        private readonly DenoisingAutoencoderOptions _options;

        private AutoencoderTask(DenoisingAutoencoderOptions options) => _options = options;

        private const string ErrorColumn = "DeepVariants.ReconstructionError";

        public int Size { get; private init; }

        public static AutoencoderTask Create(SchemaView schema, DenoisingAutoencoderOptions o)
        {
            var feature = schema.Require(o.FeatureColumnName);
            if (!feature.IsFloatVector || feature.Kind != SchemaShape.Column.VectorKind.Vector)
                throw schema.Mismatch(feature, "a Vector<Single> of known size");
            int imageSize = o.Channels * o.ImageHeight * o.ImageWidth;
            if (schema.HasSizes && o.Kind == AutoencoderKind.Convolutional && feature.Size != imageSize)
                throw schema.Mismatch(feature, $"Vector<Single, {imageSize}> ({o.Channels}x{o.ImageHeight}x{o.ImageWidth})");
            if (o.CleanColumnName is not null)
            {
                var clean = schema.Require(o.CleanColumnName);
                if (!clean.IsFloatVector || (schema.HasSizes && clean.Size != feature.Size))
                    throw schema.Mismatch(clean, schema.HasSizes ? $"Vector<Single, {feature.Size}> (the size of '{o.FeatureColumnName}')" : "a Vector<Single> of known size");
            }
            return new AutoencoderTask(o)
            {
                Size = feature.Size,
                Tail = new ServingTail.ScalarScore(ErrorColumn),
                ExtraOutputs =
                [
                    MLNetInternals.SchemaColumn(o.DenoisedColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false),
                    MLNetInternals.SchemaColumn(o.CodeColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false),
                ],
                Description = $"a {o.Kind} denoising autoencoder (code {o.CodeSize})",
                InputColumn = o.FeatureColumnName,
            };
        }

        // Targets are the clean column when given, else the inputs themselves (stored once).
        public override RowReader Reader(IDataView prepared, string role) => new(
            new VectorFeatures(prepared.Schema[_options.FeatureColumnName], [Size]),
            _options.CleanColumnName is { } clean ? new VectorTarget(prepared.Schema[clean], Size) : new SameAsFeatures([Size]));

        public override ITrainingObjective Objective => new ReconstructionObjective();

        public override Func<Tensor, Tensor>? Corrupt => Corruption.Any(_options) ? x => Corruption.Apply(x, _options) : null;

        public override nn.Module<Tensor, Tensor> CreateNetwork() => AutoencoderNetwork.Create(_options, Size);

        public override long? CountParameters() => AutoencoderNetwork.CountParameters(_options, Size);

        public override string ShrinkHint => "a smaller Width, Depth or CodeSize";

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            var o = _options;
            byte[] onnx = ((AutoencoderNetwork)network).ExportOnnx(o.FeatureColumnName, o.DenoisedColumnName, o.CodeColumnName, ErrorColumn);
            return new OnnxExport(onnx, [o.FeatureColumnName], [o.DenoisedColumnName, o.CodeColumnName, ErrorColumn]);
        }
    }
}

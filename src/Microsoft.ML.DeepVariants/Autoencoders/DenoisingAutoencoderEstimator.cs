using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Autoencoders;

/// <summary>What fitting an autoencoder produced.</summary>
/// <param name="Model">ML.NET and ONNX transformers only: saves with <c>mlContext.Model.Save</c> and predicts without TorchSharp.</param>
/// <param name="History">Reconstruction loss per epoch.</param>
/// <param name="OnnxModel">The exported graph.</param>
/// <param name="ParameterCount">Trainable parameters.</param>
public sealed record AutoencoderFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount);

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
public sealed class DenoisingAutoencoderEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private const string ErrorColumn = "DeepVariants.ReconstructionError";
    private readonly ModelContext _context;

    internal DenoisingAutoencoderEstimator(ModelContext context, DenoisingAutoencoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        Options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public DenoisingAutoencoderOptions Options { get; }

    /// <summary>Trains on <paramref name="input"/> and returns the ML.NET model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Trains, validating (and early stopping on the validation loss, when enabled) on <paramref name="validationData"/>.</summary>
    public AutoencoderFitResult Train(IDataView trainData, IDataView? validationData = null)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        var o = Options;
        o.Validate();
        var log = _context.Logger("DeepVariants.Autoencoder");
        int size = InputSize(trainData.Schema);
        using var train = Read(trainData, size);
        if (train.Count == 0)
            throw new ArgumentException($"The training data is empty: column '{o.FeatureColumnName}' has no rows.", nameof(trainData));
        using var validation = validationData is null ? null : Read(validationData, size);

        int seed = _context.ResolveSeed(o.Seed);
        var device = TorchDevices.Resolve(o.Device, _context.Environment, log);
        random.manual_seed(seed);
        using var network = AutoencoderNetwork.Create(o, size);
        log($"Training a {o.Kind} denoising autoencoder ({network.ParameterCount:N0} parameters, code {o.CodeSize}) on {train.Count:N0} rows, device {device}, seed {seed}.");
        // The reconstruction objective has no metric, so early stopping watches the validation loss.
        var history = TorchTrainer.Train(network, train, validation, new ReconstructionObjective(), o, device, seed, log,
            corrupt: Corruption.Any(o) ? x => Corruption.Apply(x, o) : null);

        byte[] onnx = network.ExportOnnx(o.FeatureColumnName, o.DenoisedColumnName, o.CodeColumnName, ErrorColumn);
        var onnxTransformer = OnnxServing.Apply(_context, onnx, [o.FeatureColumnName], [o.DenoisedColumnName, o.CodeColumnName, ErrorColumn], trainData);
        var scored = onnxTransformer.Transform(trainData);
        var score = MLNetInternals.CreateScalarScoreHead(_context.Environment, scored.Schema, ErrorColumn);
        var drop = _context.Transforms.DropColumns(ErrorColumn).Fit(score.Transform(scored));
        return new AutoencoderFitResult(OnnxServing.Chain(onnxTransformer, score, drop), history, onnx, network.ParameterCount);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        var feature = inputSchema.FirstOrDefault(c => c.Name == Options.FeatureColumnName);
        if (feature.Name != Options.FeatureColumnName)
            throw DataViewReader.MissingColumn(Options.FeatureColumnName);
        if (feature.ItemType != NumberDataViewType.Single || feature.Kind != SchemaShape.Column.VectorKind.Vector)
            throw new ArgumentOutOfRangeException(Options.FeatureColumnName,
                $"Schema mismatch for input column '{Options.FeatureColumnName}': expected a Vector<Single> of known size, got {feature.Kind} of {feature.ItemType}.");
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (string vector in new[] { Options.DenoisedColumnName, Options.CodeColumnName })
            columns[vector] = MLNetInternals.SchemaColumn(vector, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        columns["Score"] = MLNetInternals.SchemaColumn("Score", SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }

    private int InputSize(DataViewSchema schema)
    {
        string column = Options.FeatureColumnName;
        var col = schema.GetColumnOrNull(column) ?? throw DataViewReader.MissingColumn(column);
        if (col.Type is not VectorDataViewType { ItemType: var item, Size: > 0 } vector || item != NumberDataViewType.Single)
            throw DataViewReader.SchemaMismatch(column, "a Vector<Single> of known size", col.Type);
        if (Options.Kind == AutoencoderKind.Convolutional && vector.Size != Options.Channels * Options.ImageHeight * Options.ImageWidth)
            throw DataViewReader.SchemaMismatch(column,
                $"Vector<Single, {Options.Channels * Options.ImageHeight * Options.ImageWidth}> ({Options.Channels}x{Options.ImageHeight}x{Options.ImageWidth})", col.Type);
        if (Options.CleanColumnName is not null)
            DataViewReader.RequireFloatVector(schema, Options.CleanColumnName, vector.Size);
        return vector.Size;
    }

    // Inputs are the feature column; targets are the clean column when given, else the inputs themselves.
    private TensorDataset Read(IDataView data, int size)
    {
        var inputs = DataViewReader.Read(data, Options.FeatureColumnName, size, null, [size]);
        if (Options.CleanColumnName is null)
            return new TensorDataset(inputs.Inputs, inputs.Inputs.alias());
        var clean = DataViewReader.Read(data, Options.CleanColumnName, size, null, [size]);
        inputs.Targets.Dispose();
        clean.Targets.Dispose();
        return new TensorDataset(inputs.Inputs, clean.Inputs);
    }
}

using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Distillation;
using Microsoft.ML.DeepVariants.Factorization;
using Microsoft.ML.DeepVariants.Quantization;
using Microsoft.ML.DeepVariants.Generative;
using Microsoft.ML.DeepVariants.Graphs;
using Microsoft.ML.DeepVariants.Pruning;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.DeepVariants.Tabular;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Adds <c>mlContext.Transforms.DeepVariants</c> and the CNN trainer on <c>mlContext.MulticlassClassification.Trainers</c>.
/// </summary>
/// <example>
/// <code>
/// using Microsoft.ML.DeepVariants;
/// var cnn = mlContext.Transforms.DeepVariants.CnnClassifier(imageHeight: 28, imageWidth: 28);
/// var same = mlContext.MulticlassClassification.Trainers.Cnn(imageHeight: 28, imageWidth: 28);
/// </code>
/// </example>
public static class DeepVariantsCatalogExtensions
{
    extension(TransformsCatalog catalog)
    {
        /// <summary>The DeepVariants components: deep-learning estimators trained with TorchSharp, served through ONNX.</summary>
        public DeepVariantsCatalog DeepVariants => new(new ModelContext(catalog));
    }

    extension(MulticlassClassificationCatalog.MulticlassClassificationTrainers trainers)
    {
        /// <summary>A CNN image classifier as a multiclass trainer; the same estimator as <see cref="DeepVariantsCatalog.CnnClassifier(CnnClassifierOptions)"/>.</summary>
        public CnnClassifierEstimator Cnn(CnnClassifierOptions options) =>
            new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), options);

        /// <summary>A CNN image classifier as a multiclass trainer, with the common settings.</summary>
        public CnnClassifierEstimator Cnn(int imageHeight, int imageWidth, int channels = 1,
            string labelColumnName = "Label", string featureColumnName = "Features",
            CnnFamily family = CnnFamily.LeNet, int epochs = 5, int batchSize = 128, float learningRate = 1e-3f) =>
            trainers.Cnn(DeepVariantsCatalog.ClassifierOptions(imageHeight, imageWidth, channels, labelColumnName, featureColumnName,
                family, epochs, batchSize, learningRate));

        /// <summary>A tabular network as a multiclass trainer over a feature vector: Score and a key-typed PredictedLabel, as ML.NET's multiclass trainers write them.</summary>
        /// <example><code>var model = mlContext.MulticlassClassification.Trainers.TabularNetwork("Label", "Features", epochs: 30).Fit(train);</code></example>
        public TabularNetworkEstimator TabularNetwork(string labelColumnName = "Label", string featureColumnName = "Features", int epochs = 20, int width = 256, int depth = 3) =>
            new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), DeepVariantsCatalog.TabularOptions(labelColumnName, featureColumnName, TabularTaskKind.Multiclass, epochs, width, depth));

        /// <summary>A tabular network as a multiclass trainer with every setting in <paramref name="options"/>.</summary>
        public TabularNetworkEstimator TabularNetwork(TabularNetworkOptions options) => new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), options);
    }

    extension(BinaryClassificationCatalog.BinaryClassificationTrainers trainers)
    {
        /// <summary>A tabular network as a binary trainer over a feature vector and a Boolean label: Score (the logit), Probability and PredictedLabel, as ML.NET's calibrated binary trainers write them.</summary>
        /// <example><code>var metrics = mlContext.BinaryClassification.Evaluate(mlContext.BinaryClassification.Trainers.TabularNetwork().Fit(train).Transform(test));</code></example>
        public TabularNetworkEstimator TabularNetwork(string labelColumnName = "Label", string featureColumnName = "Features", int epochs = 20, int width = 256, int depth = 3) =>
            new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), DeepVariantsCatalog.TabularOptions(labelColumnName, featureColumnName, TabularTaskKind.Binary, epochs, width, depth));

        /// <summary>A tabular network as a binary trainer with every setting in <paramref name="options"/>.</summary>
        public TabularNetworkEstimator TabularNetwork(TabularNetworkOptions options) => new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), options);
    }

    extension(RegressionCatalog.RegressionTrainers trainers)
    {
        /// <summary>A tabular network as a regression trainer over a feature vector: Score, the predicted value, as ML.NET's regression trainers write it.</summary>
        /// <example><code>var metrics = mlContext.Regression.Evaluate(mlContext.Regression.Trainers.TabularNetwork("price").Fit(train).Transform(test), "price");</code></example>
        public TabularNetworkEstimator TabularNetwork(string labelColumnName = "Label", string featureColumnName = "Features", int epochs = 20, int width = 256, int depth = 3) =>
            new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), DeepVariantsCatalog.TabularOptions(labelColumnName, featureColumnName, TabularTaskKind.Regression, epochs, width, depth));

        /// <summary>A tabular network as a regression trainer with every setting in <paramref name="options"/>.</summary>
        public TabularNetworkEstimator TabularNetwork(TabularNetworkOptions options) => new(new ModelContext(MLNetInternals.GetEnvironment(trainers)), options);
    }
}

/// <summary>The DeepVariants estimators, reached as <c>mlContext.Transforms.DeepVariants</c>.</summary>
public sealed class DeepVariantsCatalog
{
    private readonly ModelContext _context;

    internal DeepVariantsCatalog(ModelContext context) => _context = context;

    /// <summary>Trains a CNN image classifier; outputs <c>Score</c> and a key-typed <c>PredictedLabel</c>.</summary>
    /// <param name="imageHeight">Image height (0 to take it from an image column).</param>
    /// <param name="imageWidth">Image width (0 to take it from an image column).</param>
    /// <param name="channels">1 for grayscale, 3 for RGB.</param>
    /// <param name="labelColumnName">The label: a key, or a value MapValueToKey accepts.</param>
    /// <param name="featureColumnName">An image column, or a float vector of channels x height x width values (CHW).</param>
    /// <param name="family">The network family, with its default knobs.</param>
    /// <param name="epochs">Passes over the training data.</param>
    /// <param name="batchSize">Rows per mini-batch.</param>
    /// <param name="learningRate">Adam's learning rate.</param>
    /// <example>
    /// <code>
    /// var model = mlContext.Transforms.DeepVariants.CnnClassifier(28, 28, epochs: 2)   // a text Label is keyed inside the fit
    ///     .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"))
    ///     .Fit(train);
    /// </code>
    /// </example>
    public CnnClassifierEstimator CnnClassifier(int imageHeight, int imageWidth, int channels = 1,
        string labelColumnName = "Label", string featureColumnName = "Features",
        CnnFamily family = CnnFamily.LeNet, int epochs = 5, int batchSize = 128, float learningRate = 1e-3f) =>
        CnnClassifier(ClassifierOptions(imageHeight, imageWidth, channels, labelColumnName, featureColumnName, family, epochs, batchSize, learningRate));

    /// <summary>Trains a CNN image classifier with every setting in <paramref name="options"/>.</summary>
    public CnnClassifierEstimator CnnClassifier(CnnClassifierOptions options) => new(_context, options);

    /// <summary>Trains a CNN on the label and emits its penultimate layer (the embedding) as <paramref name="outputColumnName"/>.</summary>
    /// <param name="imageHeight">Image height (0 to take it from an image column).</param>
    /// <param name="imageWidth">Image width (0 to take it from an image column).</param>
    /// <param name="outputColumnName">The embedding column.</param>
    /// <param name="channels">1 for grayscale, 3 for RGB.</param>
    /// <param name="labelColumnName">The label the CNN learns from.</param>
    /// <param name="featureColumnName">An image column, or a float vector of channels x height x width values (CHW).</param>
    /// <param name="family">The network family, with its default knobs.</param>
    /// <param name="epochs">Passes over the training data.</param>
    /// <example>
    /// <code>
    /// var pipeline = mlContext.Transforms.DeepVariants.CnnFeaturizer(28, 28, "Embedding")
    ///     .Append(mlContext.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"));
    /// </code>
    /// </example>
    public CnnFeaturizerEstimator CnnFeaturizer(int imageHeight, int imageWidth, string outputColumnName = "Embedding", int channels = 1,
        string labelColumnName = "Label", string featureColumnName = "Features", CnnFamily family = CnnFamily.LeNet, int epochs = 5) =>
        CnnFeaturizer(new CnnFeaturizerOptions
        {
            ImageHeight = imageHeight, ImageWidth = imageWidth, OutputColumnName = outputColumnName, Channels = channels,
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Architecture = new CnnArchitecture { Family = family }, Epochs = epochs,
        });

    /// <summary>Trains a CNN featurizer with every setting in <paramref name="options"/>.</summary>
    public CnnFeaturizerEstimator CnnFeaturizer(CnnFeaturizerOptions options) => new(_context, options);

    /// <summary>
    /// A denoising autoencoder: outputs the denoised vector, the code and <c>Score</c>, the reconstruction error
    /// (an anomaly score). Corruption (Gaussian, salt and pepper, masking) applies during training only.
    /// </summary>
    /// <example>
    /// <code>
    /// var model = mlContext.Transforms.DeepVariants.DenoisingAutoencoder(new DenoisingAutoencoderOptions
    /// {
    ///     Kind = AutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28,
    ///     NoiseStandardDeviation = 0.4f, InputMinimum = 0, InputMaximum = 1,
    /// }).Fit(train);
    /// </code>
    /// </example>
    public DenoisingAutoencoderEstimator DenoisingAutoencoder(DenoisingAutoencoderOptions options) => new(_context, options);

    /// <summary>
    /// A variational autoencoder: per row the latent mean and log-variance, the reconstruction and <c>Score</c>, the
    /// negative evidence lower bound (an anomaly score); its fit result also holds the generator, latents to images.
    /// </summary>
    /// <example>
    /// <code>
    /// var fit = mlContext.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions
    /// {
    ///     Kind = VariationalAutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, LatentSize = 16, Epochs = 10,
    /// }).Train(train);
    /// IDataView samples = fit.Generate(mlContext, count: 16, seed: 1);
    /// </code>
    /// </example>
    public VariationalAutoencoderEstimator VariationalAutoencoder(VariationalAutoencoderOptions options) => new(_context, options);

    /// <summary>
    /// A DCGAN, unconditional or conditioned on a key column of classes, with the usual stabilisers as options; the
    /// fitted model is the generator, from a latent column (and the class column) to an image column.
    /// </summary>
    /// <example>
    /// <code>
    /// var fit = mlContext.Transforms.DeepVariants.Gan(new GanOptions { ImageHeight = 28, ImageWidth = 28, ConditionColumnName = "Label" }).Train(train);
    /// IDataView samples = fit.Generate(mlContext, count: 64, seed: 1);
    /// </code>
    /// </example>
    public GanEstimator Gan(GanOptions options) => new(_context, options);

    /// <summary>
    /// Image-to-image translation (pix2pix): a U-Net that maps a source image column to a paired target column, trained
    /// on L1 plus a PatchGAN discriminator's adversarial loss (or L1 alone).
    /// </summary>
    /// <example>
    /// <code>
    /// var fit = mlContext.Transforms.DeepVariants.ImageToImage(new ImageToImageOptions
    /// {
    ///     SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28,
    /// }).Train(pairs);
    /// </code>
    /// </example>
    public ImageToImageEstimator ImageToImage(ImageToImageOptions options) => new(_context, options);

    /// <summary>
    /// A graph convolutional network node classifier (Kipf and Welling 2017) over the graph whose edges are
    /// <paramref name="edges"/>; fit it on the nodes. Defaults reproduce the paper's Cora setting.
    /// </summary>
    /// <param name="edges">Edges: source and target node ids, optionally a weight. Undirected; self-loops dropped, duplicates merged.</param>
    /// <param name="options">Columns, layers and training settings; Kipf and Welling's when null.</param>
    /// <example>
    /// <code>
    /// var (nodes, edges) = Cora.Load(mlContext, "data/cora");
    /// var model = mlContext.Transforms.DeepVariants.GcnNodeClassifier(edges, new GcnOptions()).Fit(nodes);
    /// </code>
    /// </example>
    public GcnNodeClassifierEstimator GcnNodeClassifier(IDataView edges, GcnOptions? options = null) => new(_context, edges, options ?? new GcnOptions());

    /// <summary>
    /// An LSTM or GRU classifier of (multivariate, variable-length) series; outputs <c>Score</c> and a key-typed
    /// <c>PredictedLabel</c>. Padding after a series' end never changes its prediction.
    /// </summary>
    /// <example>
    /// <code>
    /// var train = TimeSeriesFile.Load(mlContext, "BasicMotions_TRAIN.ts");
    /// var model = mlContext.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions { Channels = 6, Epochs = 50 }).Fit(train);
    /// </code>
    /// </example>
    public SequenceClassifierEstimator SequenceClassifier(SequenceClassifierOptions options) => new(_context, options);

    /// <summary>An LSTM or GRU sequence classifier with the common settings.</summary>
    /// <param name="channels">Values per step; the column holds them step-major.</param>
    /// <param name="cell">LSTM or GRU.</param>
    /// <param name="hiddenSize">Hidden units per direction.</param>
    /// <param name="pooling">Last state, mean over valid steps, or attention.</param>
    /// <param name="featureColumnName">The series column.</param>
    /// <param name="labelColumnName">The label column.</param>
    /// <param name="epochs">Passes over the training data.</param>
    /// <example>
    /// <code>
    /// var model = mlContext.Transforms.DeepVariants.SequenceClassifier(channels: 12, cell: RecurrentCell.Gru).Fit(train);
    /// </code>
    /// </example>
    public SequenceClassifierEstimator SequenceClassifier(int channels, RecurrentCell cell = RecurrentCell.Lstm, int hiddenSize = 64,
        SequencePooling pooling = SequencePooling.Last, string featureColumnName = "Series", string labelColumnName = "Label", int epochs = 30) =>
        SequenceClassifier(new SequenceClassifierOptions
        {
            Channels = channels, FeatureColumnName = featureColumnName, LabelColumnName = labelColumnName, Epochs = epochs,
            Architecture = new SequenceArchitecture { Cell = cell, HiddenSize = hiddenSize, Pooling = pooling },
        });

    /// <summary>
    /// A frozen featurizer from a pretrained ONNX backbone (ResNet18 from <c>PretrainedBackboneOptions.ResNet18()</c>, or any
    /// graph of the operators the importer reads), cut at a chosen value. Transforming a data view runs in batches; the
    /// saved model is ML.NET's ONNX transformer over the cut graph.
    /// </summary>
    /// <example>
    /// <code>
    /// var featurizer = mlContext.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(PretrainedBackboneOptions.ResNet18()));
    /// </code>
    /// </example>
    public PretrainedFeaturizerEstimator PretrainedFeaturizer(PretrainedFeaturizerOptions options) => new(_context, options);

    /// <summary>
    /// Fine-tunes a classifier on a pretrained ONNX backbone: frozen, the last blocks or named nodes unfrozen, or fully
    /// trained, at a smaller learning rate than the new head; persisted as ONNX like every other model.
    /// </summary>
    /// <example>
    /// <code>
    /// var model = mlContext.Transforms.DeepVariants.PretrainedClassifier(new PretrainedClassifierOptions
    /// {
    ///     Backbone = PretrainedBackboneOptions.ResNet18(), Training = BackboneTraining.LastBlocks, TrainableBlocks = 1, Epochs = 3,
    /// }).Fit(train);
    /// </code>
    /// </example>
    public PretrainedClassifierEstimator PretrainedClassifier(PretrainedClassifierOptions options) => new(_context, options);

    /// <summary>
    /// Knowledge distillation: trains the CNN student that <paramref name="options"/> describe on the softened
    /// class scores of <paramref name="teacher"/> (any fitted ML.NET transformer that adds a score column to the same
    /// rows) and on the labels. The student is an ordinary CNN classifier afterwards.
    /// </summary>
    /// <example>
    /// <code>
    /// var student = mlContext.Transforms.DeepVariants.Distill(teacher, new DistillationOptions
    /// {
    ///     Student = new CnnClassifierOptions { ImageHeight = 28, ImageWidth = 28, Epochs = 5 },
    ///     Temperature = 2, Alpha = 0.5,
    /// }).Fit(train);
    /// </code>
    /// </example>
    public DistillationEstimator Distill(ITransformer teacher, DistillationOptions options) => new(_context, teacher, options);

    /// <summary>
    /// Knowledge distillation from a fitted DeepVariants CNN: its scores, and with <see cref="DistillationOptions.FeatureLoss"/>
    /// its last feature maps too (FitNets hints or attention transfer).
    /// </summary>
    /// <example>
    /// <code>
    /// var teacher = mlContext.Transforms.DeepVariants.CnnClassifier(bigOptions).Train(train);
    /// var student = mlContext.Transforms.DeepVariants.Distill(teacher, new DistillationOptions
    /// {
    ///     Student = smallOptions, FeatureLoss = FeatureLoss.Attention,
    /// }).Fit(train);
    /// </code>
    /// </example>
    public DistillationEstimator Distill(FitResult teacher, DistillationOptions options)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        return new(_context, teacher.Model, options, teacher);
    }

    /// <summary>Knowledge distillation into <paramref name="student"/> at temperature <paramref name="temperature"/>, with weight <paramref name="alpha"/> on the teacher's term.</summary>
    /// <param name="teacher">A fitted model that adds a class-score column named "Score" to the training rows.</param>
    /// <param name="student">The student CNN classifier's options.</param>
    /// <param name="temperature">Softmax temperature of the soft term.</param>
    /// <param name="alpha">Weight of the soft term, in [0, 1]; 0 is plain training.</param>
    /// <example>
    /// <code>
    /// var student = mlContext.Transforms.DeepVariants.Distill(teacher, smallCnnOptions, temperature: 2, alpha: 0.5).Fit(train);
    /// </code>
    /// </example>
    public DistillationEstimator Distill(ITransformer teacher, CnnClassifierOptions student, double temperature = 2, double alpha = 0.5) =>
        Distill(teacher, new DistillationOptions { Student = student, Temperature = temperature, Alpha = alpha });

    /// <summary>
    /// Trains a deep network on table columns (numbers, categories), for one label or several at once; see
    /// <see cref="TabularNetworkEstimator"/>. Outputs ML.NET's columns for each task's kind.
    /// </summary>
    /// <example>
    /// <code>
    /// var model = mlContext.Transforms.DeepVariants.TabularNetwork(new TabularNetworkOptions
    /// {
    ///     NumericColumnNames = ["carat", "depth"], CategoricalColumnNames = ["cut"], LabelColumnName = "price", Task = TabularTaskKind.Regression,
    /// }).Fit(train);
    /// </code>
    /// </example>
    public TabularNetworkEstimator TabularNetwork(TabularNetworkOptions options) => new(_context, options);

    internal static TabularNetworkOptions TabularOptions(string label, string features, TabularTaskKind task, int epochs, int width, int depth) => new()
    {
        LabelColumnName = label, NumericColumnNames = [features], Task = task, Epochs = epochs, Width = width, Depth = depth,
    };

    /// <summary>
    /// Magnitude pruning of a fitted classifier (the <see cref="FitResult"/> that <c>Train</c> returns): zeroes the
    /// smallest weights to the target sparsity, optionally fine-tunes, and reports sparsity per layer and accuracy.
    /// </summary>
    /// <example>
    /// <code>
    /// var result = mlContext.Transforms.DeepVariants.Prune(fitted, new PruningOptions { Sparsity = 0.8, Epochs = 1 }).Train(train, test);
    /// </code>
    /// </example>
    public PruningEstimator Prune(FitResult fitted, PruningOptions options) => new(_context, fitted, options);

    /// <summary>Magnitude pruning to <paramref name="sparsity"/> (global threshold), then <paramref name="fineTuneEpochs"/> epochs of fine-tuning.</summary>
    /// <param name="fitted">The fitted classifier, as <c>Train</c> returns it.</param>
    /// <param name="sparsity">The share of convolution and linear weights set to zero.</param>
    /// <param name="fineTuneEpochs">Epochs of fine-tuning with the pruned weights held at zero.</param>
    /// <example>
    /// <code>
    /// var pruned = mlContext.Transforms.DeepVariants.Prune(fitted, sparsity: 0.5).Fit(train);
    /// </code>
    /// </example>
    public PruningEstimator Prune(FitResult fitted, double sparsity = 0.5, int fineTuneEpochs = 0) =>
        Prune(fitted, new PruningOptions { Sparsity = sparsity, Epochs = fineTuneEpochs });

    /// <summary>
    /// Channel pruning of a fitted CNN classifier (LeNet, VGG): removes whole convolution filters, their batch-norm
    /// channels and the next layer's inputs, then fine-tunes; the served graph is really smaller.
    /// </summary>
    /// <example>
    /// <code>
    /// var thin = mlContext.Transforms.DeepVariants.PruneChannels(fitted, new ChannelPruningOptions { Ratio = 0.5 }).Train(train, test);
    /// </code>
    /// </example>
    public ChannelPruningEstimator PruneChannels(FitResult fitted, ChannelPruningOptions options) => new(_context, fitted, options);

    /// <summary>
    /// Low-rank factorization of a fitted CNN classifier: each dense or convolution layer becomes two thinner layers
    /// from its truncated SVD, by a rank or an energy fraction, then fine-tunes.
    /// </summary>
    /// <example>
    /// <code>
    /// var small = mlContext.Transforms.DeepVariants.Factorize(fitted, new LowRankOptions { EnergyFraction = 0.9 }).Train(train, test);
    /// </code>
    /// </example>
    public FactorizationEstimator Factorize(FitResult fitted, LowRankOptions options) => new(_context, fitted, options);

    /// <summary>
    /// Post-training int8 quantization of a fitted model (the <see cref="FitResult"/> that <c>Train</c> returns):
    /// activation ranges calibrated on the first rows of <paramref name="calibration"/>, weights int8 per channel, the
    /// graph in the QDQ form ONNX Runtime runs with integer kernels, served by ML.NET like the float model.
    /// </summary>
    /// <example>
    /// <code>
    /// QuantizationResult int8 = mlContext.Transforms.DeepVariants.QuantizeInt8(fitted, train, new QuantizationOptions { CalibrationRows = 256 });
    /// Console.WriteLine($"{int8.Report.SizeRatio:P0} of the float graph's size");
    /// </code>
    /// </example>
    public QuantizationResult QuantizeInt8(FitResult fitted, IDataView calibration, QuantizationOptions? options = null) =>
        Int8Quantization.Quantize(_context, fitted, calibration, options ?? new QuantizationOptions());

    internal static CnnClassifierOptions ClassifierOptions(int imageHeight, int imageWidth, int channels, string labelColumnName,
        string featureColumnName, CnnFamily family, int epochs, int batchSize, float learningRate) => new()
    {
        ImageHeight = imageHeight, ImageWidth = imageWidth, Channels = channels, LabelColumnName = labelColumnName,
        FeatureColumnName = featureColumnName, Architecture = new CnnArchitecture { Family = family }, Epochs = epochs, BatchSize = batchSize,
        LearningRate = learningRate,
    };
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>One epoch of image-to-image training.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="DiscriminatorLoss">The PatchGAN's mean loss (0 when the L1 loss trains alone).</param>
/// <param name="AdversarialLoss">The generator's mean adversarial loss (0 when the L1 loss trains alone).</param>
/// <param name="L1Loss">The mean absolute difference between the translated images and the targets.</param>
public sealed record ImageToImageEpoch(int Epoch, double DiscriminatorLoss, double AdversarialLoss, double L1Loss);

/// <summary>What an image-to-image fit returns: the model (source column to translated column) and both networks' losses per epoch.</summary>
/// <param name="Model">The fitted model: the U-Net through ML.NET's ONNX transformer.</param>
/// <param name="History">The generator's total loss per epoch.</param>
/// <param name="OnnxModel">The U-Net's ONNX graph.</param>
/// <param name="ParameterCount">Trainable parameters of both networks.</param>
/// <param name="Losses">The discriminator's, the adversarial and the L1 loss per epoch.</param>
public sealed record ImageToImageFitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount,
    IReadOnlyList<ImageToImageEpoch> Losses) : FitResult(Model, History, OnnxModel, ParameterCount);

/// <summary>
/// Image-to-image translation, pix2pix (Isola et al. 2017): a U-Net generator, with skip connections from each encoder
/// level to the decoder level of the same size, learns to map a source image column to a paired target column, trained
/// on λ times the L1 distance plus the non-saturating adversarial loss of a PatchGAN discriminator that judges
/// (source, image) pairs patch by patch. The fitted model maps the source column to the translated one through ML.NET's
/// ONNX transformer. With <see cref="ImageToImageOptions.AdversarialWeight"/> 0 it is the same U-Net trained on L1 alone.
/// </summary>
/// <example>
/// <code>
/// var fit = mlContext.Transforms.DeepVariants.ImageToImage(new ImageToImageOptions
/// {
///     SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28, Epochs = 5,
/// }).Train(pairs);
/// IDataView translated = fit.Model.Transform(testPairs);   // adds "Translated"
/// </code>
/// </example>
public sealed class ImageToImageEstimator : DeepVariantsEstimator<ImageToImageOptions, ImageToImageFitResult>
{
    internal ImageToImageEstimator(ModelContext context, ImageToImageOptions options) : base(context, options, "DeepVariants.ImageToImage") { }

    private protected override FitTask CreateTask(SchemaView schema) => ImageToImageTask.Create(schema, Options);

    private sealed class ImageToImageTask : FitTask
    {
        private readonly ImageToImageOptions _options;
        private IReadOnlyList<ImageToImageEpoch> _epochs = [];

        private ImageToImageTask(ImageToImageOptions options) => _options = options;

        private int SourceSize => _options.SourceChannels * _options.ImageHeight * _options.ImageWidth;
        private int TargetSize => _options.TargetChannels * _options.ImageHeight * _options.ImageWidth;

        public static ImageToImageTask Create(SchemaView schema, ImageToImageOptions o)
        {
            foreach (var (name, channels) in new[] { (o.SourceColumnName, o.SourceChannels), (o.TargetColumnName, o.TargetChannels) })
            {
                var column = schema.Require(name);
                int size = channels * o.ImageHeight * o.ImageWidth;
                if (!column.IsFloatVector || column.Kind != SchemaShape.Column.VectorKind.Vector || (schema.HasSizes && column.Size != size))
                    throw schema.Mismatch(column, $"Vector<Single, {size}> ({channels}x{o.ImageHeight}x{o.ImageWidth}, values in [0, 1])");
            }
            return new ImageToImageTask(o)
            {
                ExtraOutputs = [MLNetInternals.SchemaColumn(o.OutputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)],
                Description = $"a U-Net (depth {o.Depth}, width {o.Width}) " + (o.AdversarialWeight > 0
                    ? $"with a PatchGAN discriminator (pix2pix, L1 weight {o.L1Weight}, adversarial weight {o.AdversarialWeight})"
                    : "on the L1 loss alone"),
                InputColumn = o.SourceColumnName,
            };
        }

        public override RowReader Reader(IDataView prepared, string role)
        {
            const string Why = "the U-Net reads and writes images in [0, 1] (scale pixels by 1/255)";
            var source = new UnitIntervalFeatures(new VectorFeatures(prepared.Schema[_options.SourceColumnName], [SourceSize]), _options.SourceColumnName, Why);
            return new RowReader(source, new VectorTarget(prepared.Schema[_options.TargetColumnName], TargetSize));
        }

        public override nn.Module<Tensor, Tensor> CreateNetwork() => new ImageToImageNetworks(_options);

        public override string ShrinkHint => "a smaller Width or Depth";

        public override ITrainingObjective Objective => new AdversarialObjective();

        public override TrainingHistory Train(TrainingRun run)
        {
            if (run.Validation is not null)
                throw new ArgumentException("Image-to-image translation trains without validation data; pass none.", "validationData");
            var (history, epochs) = TorchTrainer.WithThreads(_options, () => Pix2Pix((ImageToImageNetworks)run.Model, run, _options));
            _epochs = epochs;
            return history;
        }

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            var o = _options;
            var unet = ((ImageToImageNetworks)network).Generator;
            unet.eval();
            using var scope = NewDisposeScope();
            var b = new OnnxGraphBuilder("DeepVariantsImageToImage");
            string input = b.AddInput(o.SourceColumnName, batched: false, SourceSize);
            string row = b.AddNode("Reshape", [input, b.AddInitializer("row_shape", [1L, SourceSize])]);
            string output = OnnxModuleExporter.Export(b, unet, row, rand(2, SourceSize, device: unet.parameters().First().device));
            b.AddOutput(b.AddNode("Reshape", [output, b.AddInitializer("flat", [(long)TargetSize])]), o.OutputColumnName, batched: false, TargetSize);
            return new OnnxExport(b.ToBytes(), [o.SourceColumnName], [o.OutputColumnName]);
        }

        public override FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network) =>
            new ImageToImageFitResult(result.Model, result.History, result.OnnxModel, result.ParameterCount, _epochs) { Trained = result.Trained };

        // Per batch: the PatchGAN's step on (source, target) against (source, translated), then the generator's step on
        // λ·L1 plus the adversarial loss; without a discriminator, the generator's step on λ·L1 alone.
        private static (TrainingHistory, IReadOnlyList<ImageToImageEpoch>) Pix2Pix(ImageToImageNetworks networks, TrainingRun run, ImageToImageOptions o)
        {
            networks.to(run.Device);
            var generator = networks.Generator;
            var discriminator = networks.Discriminator;
            using var generatorSteps = new AdamOptimizer([new ParameterGroup(generator.parameters().ToList(), o.LearningRate, o.WeightDecay)], false, o.AdamBeta1);
            using var discriminatorSteps = discriminator is null ? null
                : new AdamOptimizer([new ParameterGroup(discriminator.parameters().ToList(), o.LearningRate, o.WeightDecay)], false, o.AdamBeta1);
            var epochs = new List<ImageToImageEpoch>();
            string advice = $"Lower LearningRate ({o.LearningRate:G3}).";
            double discriminatorSum = 0, adversarialSum = 0, l1Sum = 0;

            void StartEpoch(double scale)
            {
                generatorSteps.Groups[0].LearningRate = o.LearningRate * scale;
                if (discriminatorSteps is not null)
                    discriminatorSteps.Groups[0].LearningRate = o.LearningRate * scale;
                networks.train();
                (discriminatorSum, adversarialSum, l1Sum) = (0, 0, 0);
            }

            double Step(Tensor source, Tensor target, int epoch, int batch)
            {
                var translated = generator.call(source);
                var l1 = nn.functional.l1_loss(translated, target);
                l1Sum += AdversarialLoop.Finite(l1.item<float>(), "L1", epoch, batch, advice);
                var total = l1.Times(o.L1Weight);
                if (discriminator is not null)
                {
                    discriminatorSteps!.ZeroGrad();
                    var onReal = discriminator.Score(source, target);
                    var onFake = discriminator.Score(source, translated.detach());
                    var loss = nn.functional.softplus(onReal.neg()).mean().Plus(nn.functional.softplus(onFake).mean()).Times(0.5);
                    discriminatorSum += AdversarialLoop.Finite(loss.item<float>(), "discriminator", epoch, batch, advice);
                    loss.backward();
                    discriminatorSteps.Step();
                    var adversarial = nn.functional.softplus(discriminator.Score(source, translated).neg()).mean();
                    adversarialSum += adversarial.item<float>();
                    total = total.Plus(adversarial.Times(o.AdversarialWeight));
                }
                generatorSteps.ZeroGrad();
                double value = AdversarialLoop.Finite(total.item<float>(), "generator", epoch, batch, advice);
                total.backward();
                generatorSteps.Step();
                return value;
            }

            string EndEpoch(int epoch, int batches)
            {
                epochs.Add(new ImageToImageEpoch(epoch, discriminatorSum / batches, adversarialSum / batches, l1Sum / batches));
                return $"L1 {l1Sum / batches:F4}" + (discriminator is null ? "" : $", discriminator loss {discriminatorSum / batches:F4}, adversarial loss {adversarialSum / batches:F4}");
            }

            var history = AdversarialLoop.Run(run, o, StartEpoch, Step, EndEpoch);
            networks.eval();
            return (history, epochs);
        }
    }
}

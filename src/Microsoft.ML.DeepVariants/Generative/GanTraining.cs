using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>One GAN epoch: both losses and how often the discriminator told real from generated.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="DiscriminatorLoss">The discriminator's mean loss (its last step per batch).</param>
/// <param name="GeneratorLoss">The generator's mean loss.</param>
/// <param name="DiscriminatorAccuracy">Share of real images scored above 0 and generated ones below, in the discriminator's steps: near 1, it wins; near 0.5, the generator fools it.</param>
public sealed record GanEpoch(int Epoch, double DiscriminatorLoss, double GeneratorLoss, double DiscriminatorAccuracy);

/// <summary>
/// The adversarial loop: per batch, <see cref="GanOptions.DiscriminatorSteps"/> discriminator steps on the real images
/// against fresh samples, then one generator step (and the weight average's update), each network with its own Adam.
/// Conditional samples take the real batch's classes, so the classes are drawn as often as the data holds them. The
/// data source, the seed, cancellation, progress and the native-memory policy are the shared loop's.
/// </summary>
internal static class GanTraining
{
    private static readonly TorchSharp.Scalar Two = Scalars.Of(2.0);

    public static (TrainingHistory History, IReadOnlyList<GanEpoch> Epochs) Train(GanNetworks networks, TrainingRun run, GanOptions o, bool conditional) =>
        TorchTrainer.WithThreads(o, () => TrainWithThreads(networks, run, o, conditional));

    private static (TrainingHistory, IReadOnlyList<GanEpoch>) TrainWithThreads(GanNetworks networks, TrainingRun run, GanOptions o, bool conditional)
    {
        var device = run.Device;
        networks.to(device);
        var generator = networks.Generator;
        var discriminator = networks.Discriminator;
        float discriminatorRate = o.DiscriminatorLearningRate ?? o.LearningRate;
        using var generatorSteps = new AdamOptimizer([new ParameterGroup(generator.parameters().ToList(), o.LearningRate, o.WeightDecay)], false, o.AdamBeta1);
        using var discriminatorSteps = new AdamOptimizer([new ParameterGroup(discriminator.parameters().ToList(), discriminatorRate, o.WeightDecay)], false, o.AdamBeta1);
        var epochs = new List<GanEpoch>();
        double realTarget = 1 - o.LabelSmoothing;
        string advice = $"Lower the learning rates (LearningRate {o.LearningRate:G3}, DiscriminatorLearningRate {o.DiscriminatorLearningRate?.ToString("G3") ?? "the same"}), or set SpectralNormalization.";
        double discriminatorSum = 0, generatorSum = 0, correct = 0, judged = 0;

        void StartEpoch(double scale)
        {
            generatorSteps.Groups[0].LearningRate = o.LearningRate * scale;
            discriminatorSteps.Groups[0].LearningRate = discriminatorRate * scale;
            networks.train();
            (discriminatorSum, generatorSum, correct, judged) = (0, 0, 0, 0);
        }

        double Step(Tensor images, Tensor targets, int epoch, int batch)
        {
            var real = images.mul(Two).sub(Scalars.One);
            var classes = conditional ? targets : null;
            long n = real.shape[0];
            double discriminatorLoss = 0;
            for (int k = 0; k < o.DiscriminatorSteps; k++)
            {
                Tensor fake;
                using (no_grad())
                    fake = generator.Generate(randn(n, o.LatentSize, device: device), classes);
                discriminatorSteps.ZeroGrad();
                var onReal = discriminator.Score(real, classes);
                var onFake = discriminator.Score(fake, classes);
                var loss = o.Loss == GanLoss.Hinge
                    ? nn.functional.relu(onReal.neg().Plus(1.0)).mean().Plus(nn.functional.relu(onFake.Plus(1.0)).mean())
                    : nn.functional.softplus(onReal).sub(onReal.Times(realTarget)).mean().Plus(nn.functional.softplus(onFake).mean());
                discriminatorLoss = AdversarialLoop.Finite(loss.item<float>(), "discriminator", epoch, batch, advice);
                loss.backward();
                discriminatorSteps.Step();
                using (no_grad())
                    correct += onReal.gt(Scalars.Zero).sum().item<long>() + onFake.lt(Scalars.Zero).sum().item<long>();
                judged += 2 * n;
            }

            generatorSteps.ZeroGrad();
            var judgement = discriminator.Score(generator.Generate(randn(n, o.LatentSize, device: device), classes), classes);
            var generatorLoss = o.Loss == GanLoss.Hinge ? judgement.mean().neg() : nn.functional.softplus(judgement.neg()).mean();
            double generatorValue = AdversarialLoop.Finite(generatorLoss.item<float>(), "generator", epoch, batch, advice);
            generatorLoss.backward();
            generatorSteps.Step();
            networks.UpdateAverage(o.GeneratorAverageDecay);
            discriminatorSum += discriminatorLoss;
            generatorSum += generatorValue;
            return discriminatorLoss;
        }

        string EndEpoch(int epoch, int batches)
        {
            epochs.Add(new GanEpoch(epoch, discriminatorSum / batches, generatorSum / batches, correct / judged));
            return $"discriminator loss {discriminatorSum / batches:F4}, generator loss {generatorSum / batches:F4}, discriminator accuracy {correct / judged:F3}";
        }

        var history = AdversarialLoop.Run(run, o, StartEpoch, Step, EndEpoch);
        networks.Served.EstimateNormalizationStatistics(batches: 100, batchSize: Math.Max(2, o.BatchSize), device);
        discriminator.eval();
        run.Log?.Invoke("Re-estimated the served generator's batch-normalisation statistics on 100 batches of latents from the prior.");
        return (history, epochs);
    }
}

using System.Diagnostics;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// The epochs and batches that both adversarial trainers (the GAN's, pix2pix's) share: shuffled batches from any
/// <see cref="IBatchSource"/>, each in its own dispose scope, the learning-rate schedule, cancellation, progress, the
/// native-memory policy and one history entry per epoch. A trainer supplies what happens at an epoch's start (its
/// optimizers' rates, train mode), in one batch (both networks' steps) and at an epoch's end (what it records).
/// </summary>
internal static class AdversarialLoop
{
    /// <param name="run">The data, device, seed and log.</param>
    /// <param name="o">The options: epochs, batch size, schedule, progress, cancellation.</param>
    /// <param name="startEpoch">Called with the epoch's learning-rate scale (the schedule's rate over <see cref="TrainingOptions.LearningRate"/>).</param>
    /// <param name="step">One batch: inputs and targets on the device, the epoch and the 1-based batch; returns the loss that progress reports.</param>
    /// <param name="endEpoch">Called with the epoch and its batch count; returns the figures of its log line.</param>
    public static TrainingHistory Run(TrainingRun run, TrainingOptions o, Action<double> startEpoch, Func<Tensor, Tensor, int, int, double> step, Func<int, int, string> endEpoch)
    {
        int batches = (int)Math.Min((run.Train.Rows + o.BatchSize - 1) / o.BatchSize, o.StepsPerEpoch ?? int.MaxValue);
        var history = new List<TrainingProgress>();
        var clock = Stopwatch.StartNew();
        for (int epoch = 1; epoch <= o.Epochs; epoch++)
        {
            double lr = TorchTrainer.LearningRateAt(o, epoch);
            startEpoch(lr / o.LearningRate);
            double lossSum = 0;
            int b = 0;
            foreach (var batch in run.Train.Batches(o.BatchSize, shuffle: true, run.Seed, epoch, o.CancellationToken))
            {
                using (batch)
                {
                    o.CancellationToken.ThrowIfCancellationRequested();
                    // Batch normalisation needs two rows; a last batch of one is left out of this epoch.
                    if (batch.Rows < 2)
                        continue;
                    using (NewDisposeScope())
                        lossSum += step(batch.Inputs.to(run.Device), batch.Targets.to(run.Device), epoch, b + 1);
                    NativeAllocator.ReleaseIfGrown();
                    b++;
                    o.Progress?.Report(new TrainingProgress(epoch, o.Epochs, b, batches, lossSum / b, null, null, lr, clock.Elapsed, IsEpochEnd: false));
                }
                if (b == batches)
                    break;
            }
            if (b == 0)
                throw new ArgumentException($"Epoch {epoch} had no batch of two or more rows; adversarial training needs at least two training rows.", "trainData");
            NativeAllocator.ReleaseAtEpochEnd(compactHeap: epoch == 1 && o.Epochs - epoch >= 2);
            var summary = new TrainingProgress(epoch, o.Epochs, b, batches, lossSum / b, null, null, lr, clock.Elapsed, IsEpochEnd: true);
            history.Add(summary);
            o.Progress?.Report(summary);
            run.Log?.Invoke($"Epoch {epoch}/{o.Epochs}: {endEpoch(epoch, b)}, {clock.Elapsed.TotalSeconds:F1} s");
        }
        return new TrainingHistory(history, history.Count, StoppedEarly: false, run.Device.ToString());
    }

    /// <summary>
    /// The loss, unless it is NaN or infinite: adversarial losses swing by design, so only those count as divergence,
    /// and there is no best epoch to go back to.
    /// </summary>
    public static double Finite(double loss, string what, int epoch, int batch, string advice) => double.IsFinite(loss) ? loss
        : throw new InvalidOperationException($"Training stopped: the {what} loss became {loss} (epoch {epoch}, batch {batch}). {advice}");
}

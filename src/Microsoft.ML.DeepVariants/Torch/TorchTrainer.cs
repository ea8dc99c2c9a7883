using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>What a model is trained to do: its loss, and an optional metric (higher is better) summed over a batch.</summary>
internal interface ITrainingObjective
{
    /// <summary>Mean loss over the batch's counted rows (a scalar tensor that autograd can differentiate).</summary>
    Tensor Loss(Tensor output, Tensor target);

    /// <summary>The metric summed over the batch's counted rows (for example the count of correct predictions), or null when there is none.</summary>
    double? MetricSum(Tensor output, Tensor target);

    /// <summary>Rows of the batch that the loss and metric count (all of them, unless some targets are masked).</summary>
    long CountedRows(Tensor target);
}

/// <summary>
/// Cross-entropy on logits; the metric is accuracy. Targets of <see cref="Unlabelled"/> are masked out of the
/// loss, the metric and the counts, which is how a graph model trains on some nodes while it sees them all.
/// </summary>
internal sealed class ClassificationObjective : ITrainingObjective
{
    /// <summary>The target value of a row that has no label.</summary>
    public const long Unlabelled = -1;

    public Tensor Loss(Tensor output, Tensor target) => nn.functional.cross_entropy(output, target, ignore_index: Unlabelled);

    public double? MetricSum(Tensor output, Tensor target) => output.argmax(1).eq(target).sum().item<long>();

    public long CountedRows(Tensor target) => target.ne(Unlabelled).sum().item<long>();
}

/// <summary>Mean squared error between the output and the target (a reconstruction); no metric.</summary>
internal sealed class ReconstructionObjective : ITrainingObjective
{
    public Tensor Loss(Tensor output, Tensor target) => nn.functional.mse_loss(output, target);

    public double? MetricSum(Tensor output, Tensor target) => null;

    public long CountedRows(Tensor target) => target.shape[0];
}

/// <summary>A module whose weight decay applies to some of its parameters only (a GCN decays its first layer, as in Kipf and Welling 2017).</summary>
internal interface ISelectiveWeightDecay
{
    /// <summary>The parameters that <see cref="TrainingOptions.WeightDecay"/> applies to; the others are not decayed.</summary>
    IEnumerable<Parameter> DecayedParameters { get; }
}

/// <summary>A module whose parameters train at different learning rates (a pretrained backbone slower than its new head).</summary>
internal interface ILearningRateGroups
{
    /// <summary>The parameters to train, each group with its factor on <see cref="TrainingOptions.LearningRate"/>; parameters in no group are not trained.</summary>
    IEnumerable<(IReadOnlyList<Parameter> Parameters, double Factor)> LearningRateGroups { get; }
}

/// <summary>Everything one training run needs.</summary>
internal sealed class TrainingRun
{
    public required nn.Module<Tensor, Tensor> Model { get; init; }
    public required IBatchSource Train { get; init; }
    public IBatchSource? Validation { get; init; }
    public required ITrainingObjective Objective { get; init; }
    public required TrainingOptions Options { get; init; }
    public required Device Device { get; init; }
    public required int Seed { get; init; }
    public Action<string>? Log { get; init; }

    /// <summary>Draw each epoch's batches in a random order; false keeps the rows in order (a graph trains on all its nodes at once).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Applied to each training batch's inputs only (noise for a denoiser, augmentation for a classifier), never to validation.</summary>
    public Func<Tensor, Tensor>? Corrupt { get; init; }

    /// <summary>Recomputes a batch's targets from its (corrupted) inputs, as a teacher does for an augmented batch.</summary>
    public Func<Tensor, Tensor, Tensor>? BatchTargets { get; init; }

    /// <summary>Runs after every optimizer step (pruning re-applies its masks there).</summary>
    public Action? AfterStep { get; init; }

    /// <summary>Identifies the run (options, seed, network, data) in a checkpoint, so another run's checkpoint is refused.</summary>
    public string Fingerprint { get; init; } = "";
}

/// <summary>
/// The training loop every DeepVariants model uses: mini-batches from any <see cref="IBatchSource"/> (in memory or
/// streamed), Adam/AdamW/SGD, learning-rate schedules, validation, callbacks (early stopping, learning-rate reduction,
/// logging), a guard against NaN or infinite loss, cancellation, progress, and checkpoints from which a killed run
/// resumes. Every batch runs in its own dispose scope, so native memory stays flat across epochs.
/// </summary>
internal static class TorchTrainer
{
    public static TrainingHistory Train(TrainingRun run)
    {
        var (model, options, device, log) = (run.Model, run.Options, run.Device, run.Log);
        options.Validate();
        if (run.Train.Rows == 0)
            throw new ArgumentException("The training data has no rows.", nameof(run));

        model.to(device);
        var (optimizer, factors) = CreateOptimizer(model, options);
        using var disposeOptimizer = optimizer;
        var callbacks = options.Callbacks.ToList();
        if (options.EarlyStoppingPatience > 0)
            callbacks.Insert(0, new EarlyStopping { Patience = options.EarlyStoppingPatience });

        var checkpoint = options.CheckpointDirectory is { } directory ? new TrainingCheckpoint(directory, run.Fingerprint) : null;
        Dictionary<string, Tensor>? best = null;
        var state = checkpoint?.TryLoad(model, optimizer, out best);
        if (state is not null)
        {
            foreach (var callback in callbacks)
                if (state.Callbacks.TryGetValue(Key(callback, callbacks), out string? saved) && saved is not null)
                    callback.RestoreState(saved);
            log?.Invoke($"Resuming from the checkpoint in '{options.CheckpointDirectory}' after epoch {state.History.Count}.");
        }
        state ??= new TrainingCheckpoint.LoopState([], 0, double.NegativeInfinity, 1, false, null, []);
        var history = state.History;
        int firstEpoch = history.Count + 1;
        foreach (var callback in callbacks)
            callback.OnTrainingBegin(firstEpoch, options.Epochs);

        int batchSize = options.BatchSize;
        int batchesPerPass = (int)((run.Train.Rows + batchSize - 1) / batchSize);
        int batches = Math.Min(batchesPerPass, options.StepsPerEpoch ?? int.MaxValue);
        var elapsedBefore = history.Count > 0 ? history[^1].Elapsed : TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        long releasesBefore = NativeAllocator.Releases;
        TimeSpan Elapsed() => elapsedBefore + clock.Elapsed;

        try
        {
            for (int epoch = firstEpoch; epoch <= options.Epochs && state.StopReason is null; epoch++)
            {
                double lr = LearningRateAt(options, epoch) * state.LearningRateScale;
                SetLearningRate(optimizer, lr, factors);
                model.train();
                double lossSum = 0, metricSum = 0;
                long rowsSeen = 0;
                bool hasMetric = true;
                int b = 0;
                foreach (var batch in run.Train.Batches(batchSize, run.Shuffle, run.Seed, epoch, options.CancellationToken))
                {
                    using (batch)
                    {
                        options.CancellationToken.ThrowIfCancellationRequested();
                        using var scope = NewDisposeScope();
                        var x = batch.Inputs.to(device);
                        var y = batch.Targets.to(device);
                        if (run.Corrupt is not null)
                            x = run.Corrupt(x);
                        if (run.BatchTargets is not null)
                            y = run.BatchTargets(x, y);

                        optimizer.zero_grad();
                        var output = model.call(x);
                        var loss = run.Objective.Loss(output, y);
                        double value = loss.item<float>();
                        if (!double.IsFinite(value))
                            throw new InvalidOperationException(
                                $"Training stopped: the loss became {value} at epoch {epoch}, batch {b + 1}. " +
                                $"Lower the learning rate (LearningRate is {options.LearningRate}) or check the inputs for extreme values.");
                        loss.backward();
                        optimizer.step();
                        run.AfterStep?.Invoke();
                        NativeAllocator.ReleaseIfGrown();

                        long counted = run.Objective.CountedRows(y);
                        double? metric;
                        using (no_grad())
                            metric = run.Objective.MetricSum(output, y);
                        hasMetric &= metric.HasValue;
                        metricSum += metric ?? 0;
                        lossSum += value * counted;
                        rowsSeen += counted;
                        b++;
                        options.Progress?.Report(new TrainingProgress(epoch, options.Epochs, b, batches,
                            lossSum / Math.Max(1, rowsSeen), null, null, lr, Elapsed(), IsEpochEnd: false,
                            hasMetric && rowsSeen > 0 ? metricSum / rowsSeen : null));
                    }
                    if (b == batches)
                        break;
                }

                double? validationLoss = null, validationMetric = null;
                if (run.Validation is not null)
                    (validationLoss, validationMetric) = Evaluate(model, run.Validation, run.Objective, batchSize, device, options.CancellationToken);
                var summary = new TrainingProgress(epoch, options.Epochs, b, batches, lossSum / Math.Max(1, rowsSeen),
                    validationLoss, validationMetric, lr, Elapsed(), IsEpochEnd: true, hasMetric && rowsSeen > 0 ? metricSum / rowsSeen : null);
                history.Add(summary);
                options.Progress?.Report(summary);
                log?.Invoke(EpochLine(summary, firstEpoch, clock.Elapsed));

                bool isBest = false;
                if (run.Validation is not null)
                {
                    double score = options.EarlyStoppingCriterion == EarlyStoppingCriterion.ValidationLoss || validationMetric is null
                        ? -validationLoss!.Value
                        : validationMetric.Value;
                    if (score > state.BestScore)
                    {
                        isBest = true;
                        state = state with { BestScore = score, BestEpoch = epoch };
                        ReplaceSnapshot(ref best, model);
                    }
                }
                var end = new EpochEnd(summary, history, isBest, state.LearningRateScale, run.Validation is not null);
                foreach (var callback in callbacks)
                    callback.OnEpochEnd(end);
                state = state with { LearningRateScale = end.LearningRateScale, RestoreBest = state.RestoreBest || end.RestoreBestWeights, StopReason = end.StopReason };
                if (end.StopReason is not null)
                    log?.Invoke($"Early stopping after epoch {epoch}: {end.StopReason}" +
                        (state.RestoreBest && state.BestEpoch > 0 ? $"; restoring epoch {state.BestEpoch}." : "."));
                if (checkpoint is not null)
                {
                    var saved = state with { Callbacks = callbacks.ToDictionary(c => Key(c, callbacks), c => c.SaveState()) };
                    checkpoint.Save(saved, model, optimizer, best);
                }
            }

            // The model keeps the best epoch's weights only when a callback (early stopping) asked for them; otherwise the last.
            int bestEpoch = history.Count;
            if (state.RestoreBest && best is not null && state.BestEpoch > 0)
            {
                if (state.BestEpoch != history.Count)
                    RestoreSnapshot(model, best, device);
                bestEpoch = state.BestEpoch;
            }
            model.eval();
            bool stoppedEarly = state.StopReason is not null && history.Count < options.Epochs;
            var result = new TrainingHistory(history, bestEpoch, stoppedEarly, device.ToString());
            foreach (var callback in callbacks)
                callback.OnTrainingEnd(result);
            checkpoint?.Delete();
            if (NativeAllocator.Releases > releasesBefore)
                log?.Invoke($"Freed native memory went back to the system {NativeAllocator.Releases - releasesBefore} times during training (glibc kept it otherwise).");
            return result;
        }
        finally
        {
            if (best is not null)
                foreach (var tensor in best.Values)
                    tensor.Dispose();
        }
    }

    /// <summary>Mean loss and metric (per row) of a data set, in evaluation mode and without gradients.</summary>
    public static (double Loss, double? Metric) Evaluate(nn.Module<Tensor, Tensor> model, IBatchSource data,
        ITrainingObjective objective, int batchSize, Device device, CancellationToken token = default)
    {
        model.eval();
        using var noGrad = no_grad();
        double lossSum = 0, metricSum = 0;
        long counted = 0;
        bool hasMetric = true;
        foreach (var batch in data.Batches(batchSize, shuffle: false, seed: 0, epoch: 0, token))
        {
            using (batch)
            {
                using var scope = NewDisposeScope();
                var y = batch.Targets.to(device);
                long rows = objective.CountedRows(y);
                if (rows == 0)
                    continue;
                var output = model.call(batch.Inputs.to(device));
                lossSum += objective.Loss(output, y).item<float>() * rows;
                double? metric = objective.MetricSum(output, y);
                hasMetric &= metric.HasValue;
                metricSum += metric ?? 0;
                counted += rows;
            }
            NativeAllocator.ReleaseIfGrown();
        }
        if (counted == 0)
            throw new ArgumentException("The validation data has no labelled rows.", nameof(data));
        return (lossSum / counted, hasMetric ? metricSum / counted : null);
    }

    // "Epoch 3/10: loss 0.4121, metric 0.8512, validation loss 0.4410, validation metric 0.8400, lr 0.001, 12.4 s, ETA 29 s"
    private static string EpochLine(TrainingProgress e, int firstEpoch, TimeSpan thisRun)
    {
        int done = e.Epoch - firstEpoch + 1, left = e.Epochs - e.Epoch;
        double eta = thisRun.TotalSeconds / done * left;
        return $"Epoch {e.Epoch}/{e.Epochs}: loss {e.Loss:F4}" +
            (e.Metric is null ? "" : $", metric {e.Metric:F4}") +
            (e.ValidationLoss is null ? "" : $", validation loss {e.ValidationLoss:F4}") +
            (e.ValidationMetric is null ? "" : $", validation metric {e.ValidationMetric:F4}") +
            $", lr {e.LearningRate:G3}, {e.Elapsed.TotalSeconds:F1} s" + (left > 0 ? $", ETA {eta:F0} s" : "");
    }

    // Callbacks are told apart in a checkpoint by type and position among callbacks of the same type.
    private static string Key(TrainingCallback callback, List<TrainingCallback> all) =>
        $"{callback.GetType().FullName}#{all.Where(c => c.GetType() == callback.GetType()).ToList().IndexOf(callback)}";

    /// <summary>The learning rate of a 1-based epoch under the options' schedule.</summary>
    public static double LearningRateAt(TrainingOptions options, int epoch) => options.Schedule switch
    {
        LearningRateSchedule.Constant => options.LearningRate,
        LearningRateSchedule.Step => options.LearningRate * Math.Pow(options.StepGamma, (epoch - 1) / options.StepSize),
        LearningRateSchedule.Cosine => options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * (epoch - 1) / options.Epochs)),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Schedule, "Unknown learning-rate schedule."),
    };

    // Parameter groups, each with its weight decay and learning-rate factor: by default those weight decay applies to
    // and the rest (empty unless the module says otherwise); a module with learning-rate groups gives its own.
    private static (optim.Optimizer Optimizer, double[] Factors) CreateOptimizer(nn.Module model, TrainingOptions options)
    {
        double lr = options.LearningRate, decay = options.WeightDecay;
        List<(IEnumerable<Parameter> Parameters, double Decay, double Factor)> groups;
        if (model is ILearningRateGroups withRates)
        {
            groups = withRates.LearningRateGroups.Where(g => g.Parameters.Count > 0).Select(g => ((IEnumerable<Parameter>)g.Parameters, decay, g.Factor)).ToList();
        }
        else
        {
            var decayed = (model as ISelectiveWeightDecay)?.DecayedParameters.ToList() ?? model.parameters().ToList();
            var rest = model.parameters().Where(p => !decayed.Any(d => ReferenceEquals(d, p))).ToList();
            groups = [];
            if (decayed.Count > 0)
                groups.Add((decayed, decay, 1));
            if (rest.Count > 0)
                groups.Add((rest, 0, 1));
        }
        optim.Optimizer optimizer = options.Optimizer switch
        {
            OptimizerKind.Adam => optim.Adam(groups.Select(g => new Adam.ParamGroup(g.Parameters, lr * g.Factor, 0.9, 0.999, 1e-8, g.Decay, false, false)), lr),
            OptimizerKind.AdamW => optim.AdamW(groups.Select(g => new AdamW.ParamGroup(g.Parameters, lr * g.Factor, 0.9, 0.999, 1e-8, g.Decay, false, false)), lr),
            OptimizerKind.Sgd => optim.SGD(groups.Select(g => new SGD.ParamGroup(g.Parameters, lr * g.Factor, options.Momentum, 0, g.Decay, false, false)), lr),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Optimizer, "Unknown optimizer."),
        };
        return (optimizer, groups.Select(g => g.Factor).ToArray());
    }

    private static void SetLearningRate(optim.Optimizer optimizer, double lr, double[] factors)
    {
        int i = 0;
        foreach (var group in optimizer.ParamGroups)
            group.LearningRate = lr * factors[i++];
    }

    private static void ReplaceSnapshot(ref Dictionary<string, Tensor>? snapshot, nn.Module model)
    {
        if (snapshot is not null)
            foreach (var tensor in snapshot.Values)
                tensor.Dispose();
        snapshot = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().clone());
    }

    private static void RestoreSnapshot(nn.Module model, Dictionary<string, Tensor> snapshot, Device device)
    {
        using var noGrad = no_grad();
        var current = model.state_dict();
        foreach (var (name, saved) in snapshot)
            current[name].copy_(saved.to(device));
    }
}

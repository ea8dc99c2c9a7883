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

    /// <summary>True when outputs are class logits, so that predicting one class for every row is worth a warning.</summary>
    bool ClassifiesRows => false;

    /// <summary>Adds the classes predicted for, and the true classes of, the batch's counted rows (classifiers only).</summary>
    void AddClasses(Tensor output, Tensor target, ClassesSeen seen) { }

    /// <summary>Trainable parameters of the loss itself (a feature adaptor), optimized with the network's; not part of the model.</summary>
    IEnumerable<Parameter> Parameters => [];

    /// <summary>
    /// Called once before training with the network on its device (a loss that reads intermediate values registers its
    /// hooks here); the returned handle is disposed when training ends.
    /// </summary>
    IDisposable? Attach(nn.Module<Tensor, Tensor> model) => null;
}

/// <summary>
/// Cross-entropy on logits; the metric is accuracy. Targets of <see cref="Unlabelled"/> are masked out of the
/// loss, the metric and the counts, which is how a graph model trains on some nodes while it sees them all.
/// </summary>
internal sealed class ClassificationObjective : ITrainingObjective
{
    /// <summary>The target value of a row that has no label.</summary>
    public const long Unlabelled = -1;

    private static readonly TorchSharp.Scalar UnlabelledScalar = Scalars.Of(Unlabelled);

    public Tensor Loss(Tensor output, Tensor target) => nn.functional.cross_entropy(output, target, ignore_index: Unlabelled);

    public double? MetricSum(Tensor output, Tensor target) => output.argmax(1).eq(target).sum().item<long>();

    public long CountedRows(Tensor target) => target.ne(UnlabelledScalar).sum().item<long>();

    public bool ClassifiesRows => true;

    public void AddClasses(Tensor output, Tensor target, ClassesSeen seen)
    {
        if (seen.Predicted.Count > 1)
            return;
        using var scope = NewDisposeScope();
        var labelled = target.ne(UnlabelledScalar);
        seen.Predicted.UnionWith(output.argmax(1).masked_select(labelled).unique().Item1.data<long>().ToArray());
        seen.Actual.UnionWith(target.masked_select(labelled).unique().Item1.data<long>().ToArray());
        seen.Rows += labelled.sum().item<long>();
    }
}

/// <summary>The classes a classifier predicted for some training rows, and the rows' own classes.</summary>
internal sealed class ClassesSeen
{
    public HashSet<long> Predicted { get; } = [];
    public HashSet<long> Actual { get; } = [];
    public long Rows { get; set; }

    /// <summary>One class predicted for rows of several: the model learned no more than a constant.</summary>
    public bool OneClassForAll => Predicted.Count == 1 && Actual.Count > 1;
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

    /// <summary>Where warnings go (MLContext.Log as warnings); <see cref="Log"/> when null.</summary>
    public Action<string>? Warn { get; init; }

    /// <summary>Draw each epoch's batches in a random order; false keeps the rows in order (a graph trains on all its nodes at once).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Applied to each training batch's inputs only (noise for a denoiser, augmentation for a classifier), never to validation.</summary>
    public Func<Tensor, Tensor>? Corrupt { get; init; }

    /// <summary>Recomputes a batch's targets from its (corrupted) inputs, as a teacher does for an augmented batch.</summary>
    public Func<Tensor, Tensor, Tensor>? BatchTargets { get; init; }

    /// <summary>Replaces a training batch's inputs by ones made from the network and the targets (adversarial training), after corruption.</summary>
    public Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor>? Perturb { get; init; }

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
        run.Options.Validate();
        if (run.Train.Rows == 0)
            throw new ArgumentException("The training data has no rows.", nameof(run));
        return WithThreads(run.Options, () => TrainWithThreads(run));
    }

    /// <summary>Runs <paramref name="body"/> on the options' number of TorchSharp threads, restoring the previous number after.</summary>
    public static T WithThreads<T>(TrainingOptions options, Func<T> body)
    {
        int threads = options.Threads ?? TrainingOptions.DefaultThreads;
        int threadsBefore = get_num_threads();
        if (threads != threadsBefore)
            set_num_threads(threads);
        try
        {
            return body();
        }
        finally
        {
            if (threads != threadsBefore)
                set_num_threads(threadsBefore);
        }
    }

    private static TrainingHistory TrainWithThreads(TrainingRun run)
    {
        var (model, options, device, log) = (run.Model, run.Options, run.Device, run.Log);
        var warn = run.Warn ?? log;
        int batchSize = options.BatchSize;
        int batchesPerPass = (int)((run.Train.Rows + batchSize - 1) / batchSize);
        int batches = Math.Min(batchesPerPass, options.StepsPerEpoch ?? int.MaxValue);
        if ((long)options.Epochs * batches < options.MinimumSteps)
        {
            int epochs = (int)Math.Min(100L * options.Epochs, (options.MinimumSteps + batches - 1) / batches);
            log?.Invoke($"Training for {epochs} epochs rather than {options.Epochs}: {options.Epochs} epochs of {batches} batch{(batches == 1 ? "" : "es")} " +
                $"would take fewer than MinimumSteps ({options.MinimumSteps}) optimizer steps. Set MinimumSteps to 0 to train for exactly Epochs.");
            options = options.WithEpochs(epochs);
        }

        model.to(device);
        using var attached = run.Objective.Attach(model);
        var (optimizer, factors) = CreateOptimizer(model, options, run.Objective.Parameters.ToList());
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

        var elapsedBefore = history.Count > 0 ? history[^1].Elapsed : TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        long releasesBefore = NativeAllocator.Releases;
        TimeSpan Elapsed() => elapsedBefore + clock.Elapsed;
        var guard = new DivergenceGuard(options, state.StartingLoss);
        // Streamed data is checked for one-class predictions on the last epoch's batches (reading it again would decode
        // it again); data in memory is checked after training, in evaluation mode (see PredictedClasses).
        var lastEpochClasses = new ClassesSeen();
        bool collectWhileTraining = run.Objective.ClassifiesRows && run.Train is not InMemoryBatchSource;

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
                string? diverged = null;
                if (collectWhileTraining)
                    lastEpochClasses = new ClassesSeen();
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
                        if (run.Perturb is not null)
                            x = run.Perturb(model, x, y);

                        optimizer.ZeroGrad();
                        var output = model.call(x);
                        var loss = run.Objective.Loss(output, y);
                        double value = loss.item<float>();
                        if (state.StartingLoss is null)
                        {
                            state = state with { StartingLoss = value };
                            guard.Start(value);
                        }
                        if (guard.Check(value, $"training loss, epoch {epoch}, batch {b + 1}") is { } reason)
                        {
                            diverged = reason;
                            break;
                        }
                        loss.backward();
                        optimizer.Step();
                        run.AfterStep?.Invoke();
                        NativeAllocator.ReleaseIfGrown();

                        long counted = run.Objective.CountedRows(y);
                        double? metric;
                        using (no_grad())
                        {
                            metric = run.Objective.MetricSum(output, y);
                            if (collectWhileTraining)
                                run.Objective.AddClasses(output, y, lastEpochClasses);
                        }
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
                if (diverged is null && run.Validation is not null)
                {
                    (validationLoss, validationMetric) = Evaluate(model, run.Validation, run.Objective, batchSize, device, options.CancellationToken);
                    diverged = guard.Check(validationLoss.Value, $"validation loss, epoch {epoch}");
                }
                if (diverged is not null)
                {
                    state = Diverge(state, diverged, epoch, model, best, device, options, log);
                    break;
                }

                NativeAllocator.ReleaseAtEpochEnd(compactHeap: epoch == firstEpoch && options.Epochs - epoch >= 2);
                var summary = new TrainingProgress(epoch, options.Epochs, b, batches, lossSum / Math.Max(1, rowsSeen),
                    validationLoss, validationMetric, lr, Elapsed(), IsEpochEnd: true, hasMetric && rowsSeen > 0 ? metricSum / rowsSeen : null);
                history.Add(summary);
                options.Progress?.Report(summary);
                log?.Invoke(EpochLine(summary, firstEpoch, clock.Elapsed));

                // The best epoch so far: by the validation data when there is some, else by the training loss. Its
                // weights are kept so that early stopping, or the divergence guard, can go back to them.
                double score = run.Validation is null ? -summary.Loss
                    : options.EarlyStoppingCriterion == EarlyStoppingCriterion.ValidationLoss || validationMetric is null ? -validationLoss!.Value
                    : validationMetric.Value;
                bool isBest = score > state.BestScore;
                if (isBest)
                {
                    state = state with { BestScore = score, BestEpoch = epoch };
                    ReplaceSnapshot(ref best, model);
                }
                var end = new EpochEnd(summary, history, isBest && run.Validation is not null, state.LearningRateScale, run.Validation is not null);
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

            // The model keeps the best epoch's weights when a callback (early stopping) asked for them, or the guard
            // stopped a diverging run (which restored them already); otherwise the last epoch's.
            int bestEpoch = history.Count;
            if (state.Diverged)
                bestEpoch = state.BestEpoch;
            else if (state.RestoreBest && best is not null && state.BestEpoch > 0)
            {
                if (state.BestEpoch != history.Count)
                    RestoreSnapshot(model, best, device);
                bestEpoch = state.BestEpoch;
            }
            model.eval();
            var classes = !run.Objective.ClassifiesRows || state.Diverged ? null
                : run.Train is InMemoryBatchSource inMemory ? PredictedClasses(model, inMemory, run.Shuffle, run.Objective, batchSize, device)
                : lastEpochClasses;
            var warnings = Warnings(history, state, classes);
            foreach (string warning in warnings)
                warn?.Invoke(warning);
            bool stoppedEarly = state.StopReason is not null && history.Count < options.Epochs;
            var result = new TrainingHistory(history, bestEpoch, stoppedEarly, device.ToString())
            {
                StopReason = state.StopReason, Diverged = state.Diverged, Warnings = warnings,
            };
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

    // Stops a diverging run at its best finished epoch, or fails when none finished (there are no weights worth keeping).
    private static TrainingCheckpoint.LoopState Diverge(TrainingCheckpoint.LoopState state, string reason, int epoch, nn.Module model,
        Dictionary<string, Tensor>? best, Device device, TrainingOptions options, Action<string>? log)
    {
        string advice = $"Lower the learning rate (LearningRate is {options.LearningRate:G3}) or check the inputs for extreme values.";
        if (best is null || state.BestEpoch == 0)
            throw new InvalidOperationException($"Training stopped: {reason}, before any epoch finished, so no weights are worth keeping. {advice}");
        RestoreSnapshot(model, best, device);
        string stop = $"diverged: {reason}; the weights of epoch {state.BestEpoch}, the best so far, were restored. {advice}";
        log?.Invoke($"Training stopped at epoch {epoch}: {stop}");
        return state with { StopReason = stop, Diverged = true };
    }

    // What looks wrong with a finished fit: one predicted class for every row, a loss that never left its start.
    private static List<string> Warnings(List<TrainingProgress> history, TrainingCheckpoint.LoopState state, ClassesSeen? classes)
    {
        var warnings = new List<string>();
        if (classes is { OneClassForAll: true })
            warnings.Add($"The model predicts one class (class index {classes.Predicted.Single()}) for every one of the {classes.Rows:N0} training rows " +
                $"checked, which belong to {classes.Actual.Count} classes: it has learned " +
                "no more than the most frequent class. Train longer (Epochs, MinimumSteps), raise the learning rate, or check that the features carry information.");
        if (history.Count > 0 && state.StartingLoss is double start && double.IsFinite(start) && start > 0)
        {
            double last = history[^1].Loss;
            if (last >= 0.98 * start)
                warnings.Add($"The training loss never left its starting value ({start:G4} at the first batch, {last:G4} in the last epoch): the network " +
                    "learned next to nothing. Train longer (Epochs, MinimumSteps), raise the learning rate, or check that the features carry information.");
        }
        return warnings;
    }

    // The classes the fitted model (in evaluation mode) predicts for up to 4,096 training rows spread evenly over the
    // data (so data sorted by class is sampled across its classes), or, for data whose rows belong together (a graph
    // trains on all its nodes at once), in its own batches. Training-mode predictions would not do: they drift from
    // batch to batch while the bias moves.
    private static ClassesSeen PredictedClasses(nn.Module<Tensor, Tensor> model, InMemoryBatchSource data, bool rowsStandAlone,
        ITrainingObjective objective, int batchSize, Device device)
    {
        const long RowsChecked = 4096;
        var seen = new ClassesSeen();
        using var noGrad = no_grad();
        if (!rowsStandAlone)
        {
            foreach (var batch in data.Batches(batchSize, shuffle: false, seed: 0, epoch: 0, CancellationToken.None))
            {
                using (batch)
                {
                    using var scope = NewDisposeScope();
                    objective.AddClasses(model.call(batch.Inputs.to(device)), batch.Targets.to(device), seen);
                }
                if (seen.Rows >= RowsChecked)
                    break;
            }
            return seen;
        }
        long rows = Math.Min(RowsChecked, data.Rows);
        using var stride = (data.Rows / rows).ToScalar();
        for (long start = 0; start < rows && seen.Predicted.Count <= 1; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var index = Scalars.Range(start, Math.Min(rows, start + batchSize), int64, CPU).mul(stride);
            objective.AddClasses(model.call(data.Inputs.index_select(0, index).to(device)), data.Targets.index_select(0, index).to(device), seen);
        }
        return seen;
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
    private static (TrainingOptimizer Optimizer, double[] Factors) CreateOptimizer(nn.Module model, TrainingOptions options, List<Parameter> lossParameters)
    {
        double lr = options.LearningRate, decay = options.WeightDecay;
        List<(IReadOnlyList<Parameter> Parameters, double Decay, double Factor)> groups;
        if (model is ILearningRateGroups withRates)
        {
            groups = withRates.LearningRateGroups.Where(g => g.Parameters.Count > 0).Select(g => (g.Parameters, decay, g.Factor)).ToList();
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
        if (lossParameters.Count > 0)
            groups.Add((lossParameters, 0, 1));
        var parameterGroups = groups.Select(g => new ParameterGroup(g.Parameters, lr * g.Factor, g.Decay)).ToList();
        TrainingOptimizer optimizer = options.Optimizer switch
        {
            OptimizerKind.Adam => new AdamOptimizer(parameterGroups, decoupledWeightDecay: false),
            OptimizerKind.AdamW => new AdamOptimizer(parameterGroups, decoupledWeightDecay: true),
            OptimizerKind.Sgd => new SgdOptimizer(parameterGroups, options.Momentum),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Optimizer, "Unknown optimizer."),
        };
        return (optimizer, groups.Select(g => g.Factor).ToArray());
    }

    private static void SetLearningRate(TrainingOptimizer optimizer, double lr, double[] factors)
    {
        int i = 0;
        foreach (var group in optimizer.Groups)
            group.LearningRate = lr * factors[i++];
    }

    // Both run in a dispose scope, which keeps the temporaries (detach, cpu) reachable while native code reads them; a
    // temporary owned by no scope can be finalized by a garbage collection in the middle of the clone that reads it.
    private static void ReplaceSnapshot(ref Dictionary<string, Tensor>? snapshot, nn.Module model)
    {
        if (snapshot is not null)
            foreach (var tensor in snapshot.Values)
                tensor.Dispose();
        using var scope = NewDisposeScope();
        snapshot = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().clone());
        scope.Detach(snapshot.Values);
    }

    private static void RestoreSnapshot(nn.Module model, Dictionary<string, Tensor> snapshot, Device device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var current = model.state_dict();
        foreach (var (name, saved) in snapshot)
            current[name].copy_(saved.to(device));
    }
}

/// <summary>
/// Tells a diverging run from a noisy one: a loss that is NaN or infinite, or more than
/// <see cref="TrainingOptions.DivergenceFactor"/> times the loss training started from (the first batch's, before any
/// step), has diverged. A multiple of the start rather than of the best keeps a loss that falls to 0.001 and bounces to
/// 0.1 (noise on a nearly fitted problem) from counting as divergence.
/// </summary>
internal sealed class DivergenceGuard(TrainingOptions options, double? startingLoss)
{
    private double? _start = startingLoss;

    /// <summary>Records the starting loss (the first call of a run that did not resume wins).</summary>
    public void Start(double loss) => _start ??= loss;

    /// <summary>Why <paramref name="loss"/> (which loss, and where: <paramref name="where"/>) counts as divergence, or null when it does not.</summary>
    public string? Check(double loss, string where)
    {
        if (!double.IsFinite(loss))
            return $"the loss became {(double.IsNaN(loss) ? "NaN" : loss > 0 ? "infinite" : "negative infinite")} ({where})";
        if (_start is double start && double.IsFinite(start) && start > 0 && loss > options.DivergenceFactor * start)
            return $"the loss became {loss:G3}, more than {options.DivergenceFactor:G3} times (DivergenceFactor) its starting value {start:G3} ({where})";
        return null;
    }
}

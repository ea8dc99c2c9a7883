using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>Rows held as tensors on the CPU: inputs [N, ...] and targets [N, ...].</summary>
internal sealed class TensorDataset : IDisposable
{
    public TensorDataset(Tensor inputs, Tensor targets)
    {
        if (inputs.shape[0] != targets.shape[0])
            throw new ArgumentException($"Inputs have {inputs.shape[0]} rows but targets have {targets.shape[0]}.");
        Inputs = inputs;
        Targets = targets;
    }

    public Tensor Inputs { get; }
    public Tensor Targets { get; }
    public long Count => Inputs.shape[0];

    public void Dispose()
    {
        Inputs.Dispose();
        Targets.Dispose();
    }
}

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

/// <summary>
/// The training loop every DeepVariants model uses: shuffled mini-batches, Adam/AdamW/SGD, learning-rate
/// schedules, validation with early stopping and restore of the best weights, a guard against NaN or
/// infinite loss, cancellation and progress. Every batch runs in its own dispose scope, so native memory
/// stays flat across epochs.
/// </summary>
internal static class TorchTrainer
{
    // shuffle: draw each epoch's batches in a random order; false keeps the rows in order (a graph trains on all its nodes at once).
    // corrupt: applied to each training batch's inputs only (noise for a denoiser, augmentation for a classifier), never to validation.
    // batchTargets: recomputes a batch's targets from its (corrupted) inputs, as a teacher does for an augmented batch.
    // afterStep: runs after every optimizer step (pruning re-applies its masks there).
    public static TrainingHistory Train(nn.Module<Tensor, Tensor> model, TensorDataset train, TensorDataset? validation,
        ITrainingObjective objective, TrainingOptions options, Device device, int seed, Action<string>? log, bool shuffle = true,
        Func<Tensor, Tensor>? corrupt = null, Func<Tensor, Tensor, Tensor>? batchTargets = null, Action? afterStep = null)
    {
        options.Validate();
        if (train.Count == 0)
            throw new ArgumentException("The training data has no rows.", nameof(train));

        model.to(device);
        var (optimizer, factors) = CreateOptimizer(model, options);
        using var disposeOptimizer = optimizer;
        using var shuffler = new Generator((ulong)seed);
        int batches = (int)((train.Count + options.BatchSize - 1) / options.BatchSize);
        var history = new List<TrainingProgress>();
        var clock = Stopwatch.StartNew();
        Dictionary<string, Tensor>? best = null;
        double bestScore = double.NegativeInfinity;
        int bestEpoch = 0, epochsWithoutGain = 0;
        bool stoppedEarly = false;

        try
        {
            for (int epoch = 1; epoch <= options.Epochs; epoch++)
            {
                double lr = LearningRateAt(options, epoch);
                SetLearningRate(optimizer, lr, factors);
                model.train();
                double lossSum = 0;
                long rowsSeen = 0;
                using var order = shuffle ? randperm(train.Count, generator: shuffler) : arange(train.Count);

                for (int b = 0; b < batches; b++)
                {
                    options.CancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    long start = (long)b * options.BatchSize;
                    long length = Math.Min(options.BatchSize, train.Count - start);
                    var index = order.narrow(0, start, length);
                    var x = train.Inputs.index_select(0, index).to(device);
                    var y = train.Targets.index_select(0, index).to(device);
                    if (corrupt is not null)
                        x = corrupt(x);
                    if (batchTargets is not null)
                        y = batchTargets(x, y);

                    optimizer.zero_grad();
                    var loss = objective.Loss(model.call(x), y);
                    double value = loss.item<float>();
                    if (!double.IsFinite(value))
                        throw new InvalidOperationException(
                            $"Training stopped: the loss became {value} at epoch {epoch}, batch {b + 1}. " +
                            $"Lower the learning rate (LearningRate is {options.LearningRate}) or check the inputs for extreme values.");
                    loss.backward();
                    optimizer.step();
                    afterStep?.Invoke();

                    long counted = objective.CountedRows(y);
                    lossSum += value * counted;
                    rowsSeen += counted;
                    options.Progress?.Report(new TrainingProgress(epoch, options.Epochs, b + 1, batches,
                        lossSum / rowsSeen, null, null, lr, clock.Elapsed, IsEpochEnd: false));
                }

                double? validationLoss = null, validationMetric = null;
                if (validation is not null)
                    (validationLoss, validationMetric) = Evaluate(model, validation, objective, options.BatchSize, device);
                var summary = new TrainingProgress(epoch, options.Epochs, batches, batches, lossSum / rowsSeen,
                    validationLoss, validationMetric, lr, clock.Elapsed, IsEpochEnd: true);
                history.Add(summary);
                options.Progress?.Report(summary);
                log?.Invoke($"Epoch {epoch}/{options.Epochs}: loss {summary.Loss:F4}" +
                    (validationLoss is null ? "" : $", validation loss {validationLoss:F4}") +
                    (validationMetric is null ? "" : $", validation metric {validationMetric:F4}") +
                    $", lr {lr:G3}, {clock.Elapsed.TotalSeconds:F1} s");

                if (validation is not null)
                {
                    double score = options.EarlyStoppingCriterion == EarlyStoppingCriterion.ValidationLoss || validationMetric is null
                        ? -validationLoss!.Value
                        : validationMetric.Value;
                    if (score > bestScore)
                    {
                        bestScore = score;
                        bestEpoch = epoch;
                        epochsWithoutGain = 0;
                        if (options.EarlyStoppingPatience > 0)
                            ReplaceSnapshot(ref best, model);
                    }
                    else if (options.EarlyStoppingPatience > 0 && ++epochsWithoutGain >= options.EarlyStoppingPatience)
                    {
                        stoppedEarly = epoch < options.Epochs;
                        log?.Invoke($"Early stopping after epoch {epoch}: no gain for {epochsWithoutGain} epochs; restoring epoch {bestEpoch}.");
                        break;
                    }
                }
            }

            // The model keeps the best epoch's weights only when early stopping kept a snapshot; otherwise the last.
            if (best is not null && bestEpoch != history.Count)
                RestoreSnapshot(model, best, device);
            else if (best is null)
                bestEpoch = history.Count;
        }
        finally
        {
            if (best is not null)
                foreach (var tensor in best.Values)
                    tensor.Dispose();
        }
        model.eval();
        return new TrainingHistory(history, bestEpoch, stoppedEarly, device.ToString());
    }

    /// <summary>Mean loss and metric (per row) of a data set, in evaluation mode and without gradients.</summary>
    public static (double Loss, double? Metric) Evaluate(nn.Module<Tensor, Tensor> model, TensorDataset data,
        ITrainingObjective objective, int batchSize, Device device)
    {
        model.eval();
        using var noGrad = no_grad();
        double lossSum = 0, metricSum = 0;
        long counted = 0;
        bool hasMetric = true;
        for (long start = 0; start < data.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            long length = Math.Min(batchSize, data.Count - start);
            var x = data.Inputs.narrow(0, start, length).to(device);
            var y = data.Targets.narrow(0, start, length).to(device);
            long rows = objective.CountedRows(y);
            if (rows == 0)
                continue;
            var output = model.call(x);
            lossSum += objective.Loss(output, y).item<float>() * rows;
            double? metric = objective.MetricSum(output, y);
            hasMetric &= metric.HasValue;
            metricSum += metric ?? 0;
            counted += rows;
        }
        if (counted == 0)
            throw new ArgumentException("The validation data has no labelled rows.", nameof(data));
        return (lossSum / counted, hasMetric ? metricSum / counted : null);
    }

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

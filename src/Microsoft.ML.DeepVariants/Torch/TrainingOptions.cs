namespace Microsoft.ML.DeepVariants;

/// <summary>The optimizer a DeepVariants model trains with.</summary>
public enum OptimizerKind
{
    /// <summary>Adam (Kingma and Ba 2015); weight decay is added to the gradient (L2), as in PyTorch's Adam.</summary>
    Adam,
    /// <summary>AdamW: Adam with decoupled weight decay (Loshchilov and Hutter 2019).</summary>
    AdamW,
    /// <summary>Stochastic gradient descent with <see cref="TrainingOptions.Momentum"/> (Nesterov off).</summary>
    Sgd,
}

/// <summary>How the learning rate changes over the epochs.</summary>
public enum LearningRateSchedule
{
    /// <summary>The learning rate stays at <see cref="TrainingOptions.LearningRate"/>.</summary>
    Constant,
    /// <summary>Multiplied by <see cref="TrainingOptions.StepGamma"/> every <see cref="TrainingOptions.StepSize"/> epochs.</summary>
    Step,
    /// <summary>Cosine annealing from the learning rate to zero over all epochs.</summary>
    Cosine,
}

/// <summary>What early stopping watches on the validation data.</summary>
public enum EarlyStoppingCriterion
{
    /// <summary>The metric (accuracy for classifiers), higher is better; the loss when a model has no metric.</summary>
    ValidationMetric,
    /// <summary>The loss, lower is better.</summary>
    ValidationLoss,
}

/// <summary>
/// Training settings shared by every DeepVariants model. Defaults suit small image classifiers.
/// </summary>
/// <example>
/// <code>
/// var options = new CnnClassifierOptions { Epochs = 5, BatchSize = 128, LearningRate = 1e-3f,
///     Schedule = LearningRateSchedule.Cosine, EarlyStoppingPatience = 2 };
/// </code>
/// </example>
public class TrainingOptions
{
    /// <summary>Passes over the training data. Default 5.</summary>
    public int Epochs { get; set; } = 5;

    /// <summary>Rows per mini-batch, for training and for batched inference. Default 128.</summary>
    public int BatchSize { get; set; } = 128;

    /// <summary>Initial learning rate. Default 0.001.</summary>
    public float LearningRate { get; set; } = 1e-3f;

    /// <summary>The optimizer. Default <see cref="OptimizerKind.Adam"/>.</summary>
    public OptimizerKind Optimizer { get; set; } = OptimizerKind.Adam;

    /// <summary>Momentum for <see cref="OptimizerKind.Sgd"/>. Default 0.9.</summary>
    public float Momentum { get; set; } = 0.9f;

    /// <summary>L2 weight decay (decoupled for AdamW). Default 0.</summary>
    public float WeightDecay { get; set; }

    /// <summary>Learning-rate schedule. Default <see cref="LearningRateSchedule.Constant"/>.</summary>
    public LearningRateSchedule Schedule { get; set; } = LearningRateSchedule.Constant;

    /// <summary>Epochs between decays for <see cref="LearningRateSchedule.Step"/>. Default 3.</summary>
    public int StepSize { get; set; } = 3;

    /// <summary>Decay factor for <see cref="LearningRateSchedule.Step"/>. Default 0.1.</summary>
    public float StepGamma { get; set; } = 0.1f;

    /// <summary>
    /// Stop when the validation metric has not improved for this many epochs, and restore the best
    /// weights. Needs validation data; 0 turns early stopping off. Default 0.
    /// </summary>
    public int EarlyStoppingPatience { get; set; }

    /// <summary>What early stopping and the choice of the best epoch watch. Default <see cref="EarlyStoppingCriterion.ValidationMetric"/>.</summary>
    public EarlyStoppingCriterion EarlyStoppingCriterion { get; set; } = EarlyStoppingCriterion.ValidationMetric;

    /// <summary>Seed for weight initialisation, shuffling and dropout; the MLContext seed when null.</summary>
    public int? Seed { get; set; }

    /// <summary>Where to train. Default <see cref="TorchDeviceKind.Auto"/>.</summary>
    public TorchDeviceKind Device { get; set; } = TorchDeviceKind.Auto;

    /// <summary>Receives an event after every batch and every epoch.</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>Cancels training between batches (the fit then throws <see cref="OperationCanceledException"/>).</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>A copy that trains in batches of <paramref name="batchSize"/> rows (a graph trains on all its nodes at once).</summary>
    internal TrainingOptions WithBatchSize(int batchSize)
    {
        var copy = (TrainingOptions)MemberwiseClone();
        copy.BatchSize = batchSize;
        return copy;
    }

    /// <summary>The fewest epochs that make sense: 1, or 0 where training is optional (pruning's fine-tuning).</summary>
    protected virtual int MinimumEpochs => 1;

    /// <summary>Throws, naming the option, when a setting cannot work.</summary>
    public virtual void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Epochs, MinimumEpochs, nameof(Epochs));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize, nameof(BatchSize));
        if (!(LearningRate > 0) || float.IsInfinity(LearningRate))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be a finite number greater than zero.");
        if (!(WeightDecay >= 0) || float.IsInfinity(WeightDecay))
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be a finite number, zero or more.");
        if (!(Momentum >= 0) || Momentum >= 1)
            throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must be in [0, 1).");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(StepSize, nameof(StepSize));
        if (!(StepGamma > 0) || StepGamma > 1)
            throw new ArgumentOutOfRangeException(nameof(StepGamma), StepGamma, "StepGamma must be in (0, 1].");
        ArgumentOutOfRangeException.ThrowIfNegative(EarlyStoppingPatience, nameof(EarlyStoppingPatience));
    }
}

/// <summary>One training event: after a batch (<see cref="IsEpochEnd"/> false) or at the end of an epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Epochs planned.</param>
/// <param name="Batch">1-based batch within the epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="Loss">Mean training loss so far in this epoch.</param>
/// <param name="ValidationLoss">Validation loss at the end of the epoch, when validation data was given.</param>
/// <param name="ValidationMetric">Validation metric (accuracy for classifiers) at the end of the epoch, when validation data was given.</param>
/// <param name="LearningRate">Learning rate used in this epoch.</param>
/// <param name="Elapsed">Time since training started.</param>
/// <param name="IsEpochEnd">True for the event that closes an epoch.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Batch, int Batches, double Loss,
    double? ValidationLoss, double? ValidationMetric, double LearningRate, TimeSpan Elapsed, bool IsEpochEnd);

/// <summary>What a fit did, epoch by epoch.</summary>
/// <param name="Epochs">One entry per completed epoch.</param>
/// <param name="BestEpoch">The epoch whose weights the model keeps (the last, unless early stopping restored an earlier one).</param>
/// <param name="StoppedEarly">True when early stopping ended training before the planned epochs.</param>
/// <param name="Device">The TorchSharp device that trained the model, such as "cpu" or "cuda:0".</param>
public sealed record TrainingHistory(IReadOnlyList<TrainingProgress> Epochs, int BestEpoch, bool StoppedEarly, string Device);

using System.Text.Json.Serialization;

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

/// <summary>How training reads its data.</summary>
public enum DataLoadingMode
{
    /// <summary>In memory when the rows fit under <see cref="TrainingOptions.InMemoryLimitBytes"/>, else streamed.</summary>
    Auto,
    /// <summary>Every row is read once into native tensors before training.</summary>
    InMemory,
    /// <summary>Batches are read from the data view on a background thread during training, a few at a time.</summary>
    Streaming,
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

    /// <summary>
    /// In memory or streamed. Default <see cref="DataLoadingMode.Auto"/>: in memory when the data fits under
    /// <see cref="InMemoryLimitBytes"/>, else streamed from the data view (image columns then decode batch by batch).
    /// </summary>
    public DataLoadingMode DataLoading { get; set; } = DataLoadingMode.Auto;

    /// <summary>The most bytes of rows held in memory under <see cref="DataLoadingMode.Auto"/>; null for a quarter of the memory available to the process.</summary>
    public long? InMemoryLimitBytes { get; set; }

    /// <summary>
    /// Streaming only: rows in the shuffle buffer each row is drawn from (0 or 1: no buffer). Null (the default) sizes it
    /// by memory: as many rows as fit in 256 MB, at least 4,096 (so small rows are shuffled over a large part of the data,
    /// big images over fewer rows).
    /// </summary>
    public int? ShuffleBufferRows { get; set; }

    /// <summary>The memory the default shuffle buffer may take.</summary>
    internal const long ShuffleBufferBytes = 256L << 20;

    /// <summary>Streaming only: batches read ahead of training. Default 4.</summary>
    public int PrefetchBatches { get; set; } = 4;

    /// <summary>
    /// The fewest optimizer steps a fit takes: when <see cref="Epochs"/> passes over the data give fewer (a small data
    /// set in large batches), training runs more epochs, up to 100 times <see cref="Epochs"/>, and says so in the log.
    /// 0 trains for exactly <see cref="Epochs"/>. Default 0; the sequence classifier's default is 300.
    /// </summary>
    public int MinimumSteps { get; set; }

    /// <summary>
    /// The most trainable parameters a network may have; a larger architecture is refused, with its count, before
    /// anything is allocated. Default 100,000,000 (about 400 MB of weights and 1.6 GB with Adam's state and gradients).
    /// </summary>
    public long MaxParameters { get; set; } = 100_000_000;

    /// <summary>
    /// The divergence guard: a training batch, epoch or validation loss that is NaN, infinite, or more than this many
    /// times the loss training started from stops training; the best epoch's weights so far are restored (the lowest
    /// validation loss or best metric, else the lowest training loss) and the history says why, or the fit fails when no
    /// epoch finished. <see cref="double.PositiveInfinity"/> keeps only the NaN and infinity checks. Default 100.
    /// </summary>
    public double DivergenceFactor { get; set; } = 100;

    /// <summary>
    /// Threads TorchSharp computes with while this model trains (restored afterwards). Null (the default) uses the
    /// cores this process may use (<see cref="Environment.ProcessorCount"/>, which honours container limits), or
    /// <c>OMP_NUM_THREADS</c> when that is set. Set it to 1 when other work keeps the CPU busy (trials running side by
    /// side, a busy build machine): competing for cores slows TorchSharp's parallel kernels far more than it gains.
    /// </summary>
    public int? Threads { get; set; }

    /// <summary>The threads a fit computes with when <see cref="Threads"/> is null: <c>OMP_NUM_THREADS</c> when set, else <see cref="Environment.ProcessorCount"/>.</summary>
    public static int DefaultThreads =>
        int.TryParse(Environment.GetEnvironmentVariable("OMP_NUM_THREADS"), out int omp) && omp > 0 ? omp : Environment.ProcessorCount;

    /// <summary>Batches per epoch, like Keras's <c>steps_per_epoch</c>; null for one full pass over the data. Each epoch starts a new pass.</summary>
    public int? StepsPerEpoch { get; set; }

    /// <summary>
    /// When set, the weights, optimizer, schedule, callbacks, random generators and history are written here after every
    /// epoch (to a temporary file, then moved), and a fit started again with the same options and data continues from
    /// the last finished epoch, like Keras's <c>BackupAndRestore</c>. The checkpoint is deleted when training ends.
    /// </summary>
    [JsonIgnore]
    public string? CheckpointDirectory { get; set; }

    /// <summary>Called at the start and end of training and after every epoch; a callback can stop training or lower the learning rate.</summary>
    /// <example><code>options.Callbacks.Add(new ReduceLearningRateOnPlateau { Patience = 3 });</code></example>
    [JsonIgnore]
    public IList<TrainingCallback> Callbacks { get; set; } = new List<TrainingCallback>();

    /// <summary>Receives an event after every batch and every epoch.</summary>
    [JsonIgnore]
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>Cancels training between batches (the fit then throws <see cref="OperationCanceledException"/>).</summary>
    [JsonIgnore]
    public CancellationToken CancellationToken { get; set; }

    /// <summary>A copy that trains in batches of <paramref name="batchSize"/> rows (a graph trains on all its nodes at once).</summary>
    internal TrainingOptions WithBatchSize(int batchSize)
    {
        var copy = (TrainingOptions)MemberwiseClone();
        copy.BatchSize = batchSize;
        return copy;
    }

    /// <summary>A copy that trains for <paramref name="epochs"/> epochs (more than asked, to reach <see cref="MinimumSteps"/>).</summary>
    internal TrainingOptions WithEpochs(int epochs)
    {
        var copy = (TrainingOptions)MemberwiseClone();
        copy.Epochs = epochs;
        return copy;
    }

    /// <summary>Throws, naming the option, unless each of <paramref name="columns"/> (option name, value) names a column.</summary>
    internal static void RequireColumnNames(params (string Option, string? Value)[] columns)
    {
        foreach (var (option, value) in columns)
            if (string.IsNullOrWhiteSpace(value))
                throw new ArgumentException($"{option} must name a column.", option);
    }

    /// <summary>
    /// For a trainer with a loop of its own (two networks and two Adams, such as a GAN's): refuses, by name, the settings
    /// that only the shared loop reads, rather than ignoring them. <paramref name="trainer"/> starts the messages.
    /// </summary>
    private protected void RequireAdversarialLoopSettings(string trainer)
    {
        if (Optimizer != OptimizerKind.Adam)
            throw new ArgumentException($"{trainer} trains both networks with Adam (set AdamBeta1 to change it); Optimizer must be Adam.", nameof(Optimizer));
        if (EarlyStoppingPatience > 0)
            throw new ArgumentException($"{trainer} has no validation loss that tells a better model; EarlyStoppingPatience must be 0.", nameof(EarlyStoppingPatience));
        if (CheckpointDirectory is not null)
            throw new ArgumentException($"{trainer} does not write checkpoints yet; CheckpointDirectory must be null.", nameof(CheckpointDirectory));
        if (Callbacks.Count > 0)
            throw new ArgumentException($"{trainer} reports through Progress, not callbacks; Callbacks must be empty.", nameof(Callbacks));
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
        if (!Enum.IsDefined(DataLoading))
            throw new ArgumentOutOfRangeException(nameof(DataLoading), DataLoading, "Unknown data loading mode.");
        if (InMemoryLimitBytes is <= 0)
            throw new ArgumentOutOfRangeException(nameof(InMemoryLimitBytes), InMemoryLimitBytes, "InMemoryLimitBytes must be null or above zero.");
        if (ShuffleBufferRows is < 0)
            throw new ArgumentOutOfRangeException(nameof(ShuffleBufferRows), ShuffleBufferRows, "ShuffleBufferRows must be null (sized by memory), 0 or more.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(PrefetchBatches, nameof(PrefetchBatches));
        ArgumentOutOfRangeException.ThrowIfNegative(MinimumSteps, nameof(MinimumSteps));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxParameters, nameof(MaxParameters));
        if (!(DivergenceFactor > 1))
            throw new ArgumentOutOfRangeException(nameof(DivergenceFactor), DivergenceFactor, "DivergenceFactor must be above 1 (PositiveInfinity keeps only the NaN and infinity checks).");
        if (Threads is < 1 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(Threads), Threads, "Threads must be null (the cores available) or from 1 to 1,024.");
        if (StepsPerEpoch is <= 0)
            throw new ArgumentOutOfRangeException(nameof(StepsPerEpoch), StepsPerEpoch, "StepsPerEpoch must be null (a full pass) or above zero.");
        if (CheckpointDirectory is not null && (string.IsNullOrWhiteSpace(CheckpointDirectory) || File.Exists(CheckpointDirectory)))
            throw new ArgumentException($"CheckpointDirectory '{CheckpointDirectory}' must name a folder (it is created when missing), not a file.", nameof(CheckpointDirectory));
        if (Callbacks is null || Callbacks.Any(c => c is null))
            throw new ArgumentNullException(nameof(Callbacks), "Callbacks must be a list without null entries.");
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
/// <param name="Metric">Training metric so far in this epoch (accuracy for classifiers), when the model has one.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Batch, int Batches, double Loss,
    double? ValidationLoss, double? ValidationMetric, double LearningRate, TimeSpan Elapsed, bool IsEpochEnd, double? Metric = null);

/// <summary>What a fit did, epoch by epoch.</summary>
/// <param name="Epochs">One entry per completed epoch.</param>
/// <param name="BestEpoch">The epoch whose weights the model keeps (the last, unless early stopping or the divergence guard restored an earlier one).</param>
/// <param name="StoppedEarly">True when early stopping ended training before the planned epochs.</param>
/// <param name="Device">The TorchSharp device that trained the model, such as "cpu" or "cuda:0".</param>
public sealed record TrainingHistory(IReadOnlyList<TrainingProgress> Epochs, int BestEpoch, bool StoppedEarly, string Device)
{
    /// <summary>Why training ended before its planned epochs (early stopping, a callback, the divergence guard), or null.</summary>
    public string? StopReason { get; init; }

    /// <summary>True when the divergence guard stopped training (<see cref="TrainingOptions.DivergenceFactor"/>); <see cref="BestEpoch"/> is then the epoch restored.</summary>
    public bool Diverged { get; init; }

    /// <summary>What looked wrong with this fit (every prediction one class, a loss that never moved), also written to MLContext.Log as warnings.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

using System.Globalization;
using System.Text.Json;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Something that watches training, like a Keras callback: it hears when training begins and ends and when each epoch
/// ends, and at an epoch's end it may stop training, lower the learning rate or ask for the best weights back. Add
/// callbacks to <see cref="TrainingOptions.Callbacks"/>. A callback that keeps state between epochs returns it from
/// <see cref="SaveState"/>, so that a run resumed from a checkpoint (<see cref="TrainingOptions.CheckpointDirectory"/>)
/// continues exactly.
/// </summary>
/// <example>
/// <code>
/// options.Callbacks.Add(new EpochCallback(e =>
/// {
///     if (e.Progress.ValidationMetric > 0.95) e.StopTraining("95% is enough");
/// }));
/// </code>
/// </example>
public abstract class TrainingCallback
{
    /// <summary>Training begins at <paramref name="firstEpoch"/> (above 1 when resumed) of <paramref name="epochs"/>.</summary>
    public virtual void OnTrainingBegin(int firstEpoch, int epochs) { }

    /// <summary>An epoch ended: its figures and what the callback may change.</summary>
    public virtual void OnEpochEnd(EpochEnd epoch) { }

    /// <summary>Training ended (planned epochs done, or stopped).</summary>
    public virtual void OnTrainingEnd(TrainingHistory history) { }

    /// <summary>The callback's state between epochs, for checkpoints; null when it keeps none.</summary>
    public virtual string? SaveState() => null;

    /// <summary>Puts back a state that <see cref="SaveState"/> returned.</summary>
    public virtual void RestoreState(string state) { }
}

/// <summary>The end of one epoch, as callbacks see it.</summary>
public sealed class EpochEnd
{
    internal EpochEnd(TrainingProgress progress, IReadOnlyList<TrainingProgress> history, bool isBest, double learningRateScale, bool hasValidation)
    {
        Progress = progress;
        History = history;
        IsBestEpoch = isBest;
        LearningRateScale = learningRateScale;
        HasValidation = hasValidation;
    }

    /// <summary>This epoch's figures.</summary>
    public TrainingProgress Progress { get; }

    /// <summary>Every finished epoch, this one last.</summary>
    public IReadOnlyList<TrainingProgress> History { get; }

    /// <summary>True when this epoch is the best so far on the validation data (by <see cref="TrainingOptions.EarlyStoppingCriterion"/>).</summary>
    public bool IsBestEpoch { get; }

    /// <summary>True when the fit has validation data.</summary>
    public bool HasValidation { get; }

    /// <summary>Multiplies the schedule's learning rate from the next epoch on (1 unless a callback lowered it).</summary>
    public double LearningRateScale { get; set; }

    /// <summary>Why training should stop after this epoch, or null.</summary>
    public string? StopReason { get; private set; }

    /// <summary>When set, training ends with the best validation epoch's weights rather than the last.</summary>
    public bool RestoreBestWeights { get; set; }

    /// <summary>Stops training after this epoch, for <paramref name="reason"/>.</summary>
    public void StopTraining(string reason) => StopReason ??= reason;
}

/// <summary>Calls a delegate at the end of every epoch (Keras's <c>LambdaCallback</c>).</summary>
/// <example><code>options.Callbacks.Add(new EpochCallback(e => Console.WriteLine(e.Progress.Loss)));</code></example>
public sealed class EpochCallback(Action<EpochEnd> onEpochEnd) : TrainingCallback
{
    /// <inheritdoc/>
    public override void OnEpochEnd(EpochEnd epoch) => onEpochEnd(epoch);
}

/// <summary>
/// Stops training when the validation figure (<see cref="TrainingOptions.EarlyStoppingCriterion"/>) has not improved for
/// <see cref="Patience"/> epochs, and by default ends with the best epoch's weights. <see cref="TrainingOptions.EarlyStoppingPatience"/>
/// adds one of these.
/// </summary>
/// <example><code>options.Callbacks.Add(new EarlyStopping { Patience = 3 });</code></example>
public sealed class EarlyStopping : TrainingCallback
{
    private int _epochsWithoutGain;

    /// <summary>Epochs without a new best before training stops. Default 5.</summary>
    public int Patience { get; init; } = 5;

    /// <summary>End with the best epoch's weights. Default true.</summary>
    public bool RestoreBestWeights { get; init; } = true;

    /// <inheritdoc/>
    public override void OnTrainingBegin(int firstEpoch, int epochs)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Patience, nameof(Patience));
        if (firstEpoch == 1)
            _epochsWithoutGain = 0;
    }

    /// <inheritdoc/>
    public override void OnEpochEnd(EpochEnd epoch)
    {
        if (!epoch.HasValidation)
            return;
        epoch.RestoreBestWeights |= RestoreBestWeights;
        if (epoch.IsBestEpoch)
            _epochsWithoutGain = 0;
        else if (++_epochsWithoutGain >= Patience)
            epoch.StopTraining($"no gain for {_epochsWithoutGain} epochs");
    }

    /// <inheritdoc/>
    public override string? SaveState() => _epochsWithoutGain.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public override void RestoreState(string state) => _epochsWithoutGain = int.Parse(state, CultureInfo.InvariantCulture);
}

/// <summary>
/// Multiplies the learning rate by <see cref="Factor"/> when the watched figure has not improved by <see cref="MinimumDelta"/> for
/// <see cref="Patience"/> epochs (Keras's <c>ReduceLROnPlateau</c>, with its defaults). It watches the validation loss, or
/// the training loss when there is no validation data.
/// </summary>
/// <example><code>options.Callbacks.Add(new ReduceLearningRateOnPlateau { Factor = 0.5, Patience = 2 });</code></example>
public sealed class ReduceLearningRateOnPlateau : TrainingCallback
{
    private double _best = double.PositiveInfinity;
    private int _wait, _cooldownLeft;

    /// <summary>The factor the learning rate is multiplied by. Default 0.1.</summary>
    public double Factor { get; init; } = 0.1;

    /// <summary>Epochs without improvement before the rate drops. Default 10.</summary>
    public int Patience { get; init; } = 10;

    /// <summary>Epochs after a drop during which no further drop happens. Default 0.</summary>
    public int Cooldown { get; init; }

    /// <summary>The smallest change that counts as an improvement. Default 1e-4.</summary>
    public double MinimumDelta { get; init; } = 1e-4;

    /// <summary>The learning rate never drops below this. Default 0.</summary>
    public double MinimumLearningRate { get; init; }

    /// <inheritdoc/>
    public override void OnTrainingBegin(int firstEpoch, int epochs)
    {
        if (!(Factor > 0 && Factor < 1))
            throw new ArgumentOutOfRangeException(nameof(Factor), Factor, "Factor must be in (0, 1).");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Patience, nameof(Patience));
        ArgumentOutOfRangeException.ThrowIfNegative(Cooldown, nameof(Cooldown));
        ArgumentOutOfRangeException.ThrowIfNegative(MinimumLearningRate, nameof(MinimumLearningRate));
        if (firstEpoch == 1)
            (_best, _wait, _cooldownLeft) = (double.PositiveInfinity, 0, 0);
    }

    /// <inheritdoc/>
    public override void OnEpochEnd(EpochEnd epoch)
    {
        double value = epoch.Progress.ValidationLoss ?? epoch.Progress.Loss;
        if (_cooldownLeft > 0)
        {
            _cooldownLeft--;
            _wait = 0;
        }
        if (value < _best - MinimumDelta)
        {
            (_best, _wait) = (value, 0);
            return;
        }
        if (_cooldownLeft > 0 || ++_wait < Patience)
            return;
        double rate = epoch.Progress.LearningRate;
        double next = Math.Max(rate * Factor, MinimumLearningRate);
        if (next < rate && rate > 0)
            epoch.LearningRateScale *= next / rate;
        (_wait, _cooldownLeft) = (0, Cooldown);
    }

    /// <inheritdoc/>
    public override string? SaveState() => JsonSerializer.Serialize(new[] { _best, _wait, _cooldownLeft });

    /// <inheritdoc/>
    public override void RestoreState(string state)
    {
        var values = JsonSerializer.Deserialize<double[]>(state)!;
        (_best, _wait, _cooldownLeft) = (values[0], (int)values[1], (int)values[2]);
    }
}

/// <summary>
/// Writes the history to a CSV file after every epoch (Keras's <c>CSVLogger</c>): epoch, loss, metric, validation loss,
/// validation metric, learning rate and seconds. Each write goes to a temporary file that then replaces the old one, so
/// the file is never half-written.
/// </summary>
/// <example><code>options.Callbacks.Add(new CsvLogger("history.csv"));</code></example>
public sealed class CsvLogger : TrainingCallback
{
    /// <summary>Logs to <paramref name="path"/>.</summary>
    public CsvLogger(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>The CSV file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public override void OnEpochEnd(EpochEnd epoch)
    {
        static string Number(double? value) => value?.ToString("R", CultureInfo.InvariantCulture) ?? "";
        var lines = new List<string> { "epoch,loss,metric,validation_loss,validation_metric,learning_rate,seconds" };
        lines.AddRange(epoch.History.Select(e => string.Join(",", e.Epoch.ToString(CultureInfo.InvariantCulture), Number(e.Loss), Number(e.Metric),
            Number(e.ValidationLoss), Number(e.ValidationMetric), Number(e.LearningRate), e.Elapsed.TotalSeconds.ToString("F3", CultureInfo.InvariantCulture))));
        AtomicFile.WriteAllLines(Path, lines);
    }
}

/// <summary>Files written whole or not at all: to a temporary name beside the target, then moved over it.</summary>
internal static class AtomicFile
{
    public static void WriteAllLines(string path, IEnumerable<string> lines) => Write(path, stream =>
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        foreach (string line in lines)
            writer.WriteLine(line);
    });

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, stream => stream.Write(bytes));

    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temporary = $"{full}.tmp-{Guid.NewGuid():N}";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }
}

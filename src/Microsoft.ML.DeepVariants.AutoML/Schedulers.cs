namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Decides, after each epoch a trial reports, whether it goes on.</summary>
public interface ITrialScheduler
{
    /// <summary>
    /// True to continue trial <paramref name="trialId"/> after epoch <paramref name="epoch"/> (1-based) with validation
    /// metric <paramref name="metric"/> (higher is better); <paramref name="reports"/> holds every trial's reports so far
    /// (epoch metrics by trial id), this one's included.
    /// </summary>
    bool ShouldContinue(int trialId, int epoch, double metric, IReadOnlyDictionary<int, IReadOnlyList<double>> reports, out string? reason);
}

/// <summary>Runs every trial to its last epoch.</summary>
public sealed class NoEarlyStopping : ITrialScheduler
{
    /// <inheritdoc/>
    public bool ShouldContinue(int trialId, int epoch, double metric, IReadOnlyDictionary<int, IReadOnlyList<double>> reports, out string? reason)
    {
        reason = null;
        return true;
    }
}

/// <summary>
/// Asynchronous successive halving (ASHA; Li et al., MLSys 2020), in its stopping form: rungs sit at
/// <see cref="MinEpochs"/> x <see cref="ReductionFactor"/>^k epochs; a trial that reaches a rung goes on only if its
/// metric there is in the top 1/<see cref="ReductionFactor"/> of the metrics recorded at that rung so far. Trials are
/// never waited for, so workers stay busy.
/// </summary>
/// <example><code>var asha = new AshaScheduler { MinEpochs = 1, ReductionFactor = 3 };</code></example>
public sealed class AshaScheduler : ITrialScheduler
{
    /// <summary>Epochs at the first rung. Default 1.</summary>
    public int MinEpochs { get; init; } = 1;

    /// <summary>The reduction factor η: rungs are η times apart and one trial in η goes on. Default 3.</summary>
    public int ReductionFactor { get; init; } = 3;

    /// <summary>The rung epochs up to <paramref name="maxEpochs"/>.</summary>
    public IEnumerable<int> Rungs(int maxEpochs)
    {
        for (long r = MinEpochs; r < maxEpochs; r *= ReductionFactor)
            yield return (int)r;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// The rung is read from <paramref name="reports"/>: every trial of the study that reached the rung's epoch, on any
    /// worker, this one included, so workers in other processes prune against the same rungs.
    /// </remarks>
    public bool ShouldContinue(int trialId, int epoch, double metric, IReadOnlyDictionary<int, IReadOnlyList<double>> reports, out string? reason)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ReductionFactor, 2, nameof(ReductionFactor));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MinEpochs, nameof(MinEpochs));
        reason = null;
        if (!IsRung(epoch))
            return true;
        var recorded = reports.Where(r => r.Key != trialId && r.Value.Count >= epoch).Select(r => r.Value[epoch - 1]).Append(metric).ToList();
        // Continue when in the top 1/η of the rung (the first trial at a rung always goes on).
        int keep = Math.Max(1, recorded.Count / ReductionFactor);
        double cutoff = recorded.OrderByDescending(m => m).ElementAt(keep - 1);
        if (metric >= cutoff)
            return true;
        reason = FormattableString.Invariant($"ASHA rung {epoch}: {metric:F4} is below the top 1/{ReductionFactor} cutoff {cutoff:F4} of {recorded.Count} trials");
        return false;
    }

    private bool IsRung(int epoch)
    {
        for (long r = MinEpochs; r <= epoch; r *= ReductionFactor)
            if (r == epoch)
                return true;
        return false;
    }
}

/// <summary>
/// The median stopping rule (Golovin et al., Google Vizier, KDD 2017): after <see cref="GraceEpochs"/>, a trial stops
/// when its best metric so far is below the median, over the other trials that reached the same epoch, of their mean
/// metric up to that epoch. It needs <see cref="MinTrials"/> such trials before it stops anything.
/// </summary>
/// <example><code>var median = new MedianStoppingRule { GraceEpochs = 2 };</code></example>
public sealed class MedianStoppingRule : ITrialScheduler
{
    /// <summary>Epochs every trial runs before the rule applies. Default 1.</summary>
    public int GraceEpochs { get; init; } = 1;

    /// <summary>Other trials needed at an epoch before the rule stops a trial there. Default 3.</summary>
    public int MinTrials { get; init; } = 3;

    /// <inheritdoc/>
    public bool ShouldContinue(int trialId, int epoch, double metric, IReadOnlyDictionary<int, IReadOnlyList<double>> reports, out string? reason)
    {
        reason = null;
        if (epoch <= GraceEpochs)
            return true;
        var others = reports.Where(r => r.Key != trialId && r.Value.Count >= epoch).Select(r => r.Value.Take(epoch).Average()).OrderBy(m => m).ToList();
        if (others.Count < MinTrials)
            return true;
        double median = others.Count % 2 == 1 ? others[others.Count / 2] : (others[others.Count / 2 - 1] + others[others.Count / 2]) / 2;
        double best = reports[trialId].Take(epoch).Max();
        if (best >= median)
            return true;
        reason = FormattableString.Invariant($"median rule at epoch {epoch}: best {best:F4} is below the median {median:F4} of {others.Count} trials");
        return false;
    }
}

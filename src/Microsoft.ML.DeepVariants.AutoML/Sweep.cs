using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Runs one trial: trains the configuration, reporting the validation metric (higher is better) after every epoch.</summary>
public interface ITrialRunner
{
    /// <summary>
    /// Trains <paramref name="configuration"/> for up to <see cref="TrialContext.MaxEpochs"/> epochs, calling
    /// <see cref="TrialContext.ReportEpoch"/> after each; stops when it returns false (or when the context's token is
    /// cancelled, by throwing <see cref="OperationCanceledException"/>). Any other exception marks the trial failed.
    /// </summary>
    void Run(Configuration configuration, TrialContext context);

    /// <summary>Trains <paramref name="configuration"/> for <paramref name="epochs"/> epochs on the training and validation data together, and saves the model to <paramref name="modelPath"/>.</summary>
    void Refit(Configuration configuration, int epochs, int seed, string modelPath);
}

/// <summary>What a trial gets from the sweep: its id, seed and epoch limit, and the channel to report through.</summary>
public sealed class TrialContext
{
    private readonly Func<int, double, (bool Continue, TrialStatus? Status, string? Reason)> _report;
    private readonly CancellationTokenSource _stop;

    internal TrialContext(int trialId, int seed, int maxEpochs, CancellationToken sweepToken,
        Func<int, double, (bool, TrialStatus?, string?)> report, int threads = 1)
    {
        TrialId = trialId;
        Seed = seed;
        MaxEpochs = maxEpochs;
        Threads = threads;
        _report = report;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(sweepToken);
    }

    /// <summary>The trial's id.</summary>
    public int TrialId { get; }
    /// <summary>The seed the trial trains with: derived from the sweep seed and the trial id.</summary>
    public int Seed { get; }
    /// <summary>Epochs the trial may run at most.</summary>
    public int MaxEpochs { get; }
    /// <summary>The threads the trial may compute with: its share of the cores (all of them over <see cref="SweepSettings.Workers"/>).</summary>
    public int Threads { get; }
    /// <summary>Cancelled when the trial must stop (pruned, budget spent, sweep cancelled).</summary>
    public CancellationToken CancellationToken => _stop.Token;
    internal TrialStatus? StopStatus { get; private set; }
    internal string? StopReason { get; private set; }
    internal int EpochsReported { get; private set; }

    /// <summary>Reports epoch <paramref name="epoch"/>'s validation metric; false (and the token cancelled) when the trial must stop.</summary>
    public bool ReportEpoch(int epoch, double metric)
    {
        if (!double.IsFinite(metric))
            throw new InvalidOperationException($"Trial {TrialId} reported a metric of {metric} at epoch {epoch}.");
        EpochsReported = epoch;
        var (go, status, reason) = _report(epoch, metric);
        if (!go)
        {
            StopStatus = status;
            StopReason = reason;
            _stop.Cancel();
        }
        return go;
    }
}

/// <summary>Budgets and workers of a sweep.</summary>
/// <example><code>var settings = new SweepSettings { MaxTrials = 30, EpochsPerTrial = 9, MaxTime = TimeSpan.FromMinutes(10), Workers = 2 };</code></example>
public class SweepSettings
{
    /// <summary>Trials to run at most, the journal's earlier trials included (interrupted ones excepted). Default 20.</summary>
    public int MaxTrials { get; set; } = 20;
    /// <summary>Epochs a trial runs at most (ASHA's largest rung is below this). Default 9.</summary>
    public int EpochsPerTrial { get; set; } = 9;
    /// <summary>Epochs over all trials at most; null for no limit.</summary>
    public long? MaxTotalEpochs { get; set; }
    /// <summary>Wall time at most; a running trial stops after the epoch in which the time runs out. Null for no limit.</summary>
    public TimeSpan? MaxTime { get; set; }
    /// <summary>Trials run at once. TorchSharp's threads are shared out: each worker gets the cores divided by the workers. Default 1.</summary>
    public int Workers { get; set; } = 1;
    /// <summary>Seeds the proposer and every trial. Default 1.</summary>
    public int Seed { get; set; } = 1;
    /// <summary>Stops the sweep after the epochs in flight.</summary>
    public CancellationToken CancellationToken { get; set; }
    /// <summary>Called after every journal event (on the worker's thread), for a live leaderboard.</summary>
    public Action<SweepEvent>? OnEvent { get; set; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxTrials, nameof(MaxTrials));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(EpochsPerTrial, nameof(EpochsPerTrial));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Workers, nameof(Workers));
        if (MaxTotalEpochs is <= 0)
            throw new ArgumentOutOfRangeException(nameof(MaxTotalEpochs), MaxTotalEpochs, "MaxTotalEpochs must be above zero.");
        if (MaxTime is { } time && time <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(MaxTime), MaxTime, "MaxTime must be above zero.");
    }
}

/// <summary>One thing that happened in a sweep.</summary>
/// <param name="TrialId">The trial.</param>
/// <param name="Kind">proposed, epoch, completed, pruned, stopped, failed or interrupted.</param>
/// <param name="Epoch">The epoch, for an epoch event.</param>
/// <param name="Metric">The metric, for an epoch event.</param>
/// <param name="Detail">The configuration (proposed) or the reason (pruned, stopped, failed).</param>
public sealed record SweepEvent(int TrialId, string Kind, int? Epoch, double? Metric, string? Detail);

/// <summary>What a sweep did: every trial in the journal, the best, and the epochs and time it took.</summary>
/// <param name="Trials">Every trial, by id.</param>
/// <param name="Best">The trial with the best validation metric, or null when none reported one.</param>
/// <param name="TotalEpochs">Epochs run over all trials (earlier runs on the journal included).</param>
/// <param name="Elapsed">Wall time of this run.</param>
public sealed record SweepResult(IReadOnlyList<TrialRecord> Trials, TrialRecord? Best, long TotalEpochs, TimeSpan Elapsed)
{
    /// <summary>Trials that reported a metric and did not fail, best first.</summary>
    public IReadOnlyList<TrialRecord> Leaderboard => Ranked(Trials);

    internal static IReadOnlyList<TrialRecord> Ranked(IEnumerable<TrialRecord> trials) =>
        trials.Where(t => t.BestMetric.HasValue && t.Status != TrialStatus.Failed).OrderByDescending(t => t.BestMetric).ThenBy(t => t.Id).ToList();

    /// <summary>The leaderboard as a console table (the best <paramref name="rows"/> trials and every failed one).</summary>
    public Table ToTable(int rows = 10)
    {
        var table = new Table().AddColumns("rank", "trial", "status", "metric", "epoch", "epochs", "seconds", "configuration");
        int rank = 0;
        foreach (var t in Leaderboard.Take(rows))
            table.AddRow((++rank).ToString(CultureInfo.InvariantCulture), t.Id.ToString(CultureInfo.InvariantCulture), t.Status.ToString(),
                t.BestMetric!.Value.ToString("F4", CultureInfo.InvariantCulture), t.BestEpoch.ToString(CultureInfo.InvariantCulture),
                t.Epochs.ToString(CultureInfo.InvariantCulture), t.Seconds.ToString("F1", CultureInfo.InvariantCulture), Markup.Escape(t.Configuration.ToString()));
        foreach (var t in Trials.Where(t => t.Status == TrialStatus.Failed))
            table.AddRow("-", t.Id.ToString(CultureInfo.InvariantCulture), "Failed", "-", "-", t.Epochs.ToString(CultureInfo.InvariantCulture),
                t.Seconds.ToString("F1", CultureInfo.InvariantCulture), Markup.Escape(t.Reason ?? ""));
        return table;
    }

    /// <summary>Writes every trial as CSV (written to a temporary name, then moved).</summary>
    public void WriteCsv(string path)
    {
        static string Quote(string s) => "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        var lines = new List<string> { "trial,status,best_metric,best_epoch,epochs,seconds,configuration,reason" };
        lines.AddRange(Trials.Select(t => string.Join(",", t.Id.ToString(CultureInfo.InvariantCulture), t.Status,
            t.BestMetric?.ToString("R", CultureInfo.InvariantCulture) ?? "", t.BestEpoch.ToString(CultureInfo.InvariantCulture),
            t.Epochs.ToString(CultureInfo.InvariantCulture), t.Seconds.ToString("F2", CultureInfo.InvariantCulture), Quote(t.Configuration.ToJson()), Quote(t.Reason ?? ""))));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllLines(path + ".tmp", lines);
        File.Move(path + ".tmp", path, overwrite: true);
    }
}

/// <summary>
/// A sweep: proposes configurations (random search or TPE), runs them on one or more workers, stops bad trials
/// early (ASHA or the median rule), keeps every event in a SQLite journal, and resumes from that journal when
/// started again: completed trials are never run again, ids never repeat, and a trial the kill interrupted is run
/// again under a new id.
/// </summary>
/// <example>
/// <code>
/// using var journal = new SweepJournal("sweep.db");
/// var sweep = new Sweep(space, runner, new TpeProposer(space, seed: 1), new AshaScheduler(), journal, new SweepSettings { MaxTrials = 27 });
/// SweepResult result = sweep.Run();
/// AnsiConsole.Write(result.ToTable());
/// </code>
/// </example>
public sealed class Sweep(SearchSpace space, ITrialRunner runner, IProposer proposer, ITrialScheduler scheduler, SweepJournal journal, SweepSettings settings)
{
    private readonly object _gate = new();

    /// <summary>The journal the sweep writes.</summary>
    public SweepJournal Journal => journal;

    /// <summary>Runs the sweep until its trials or budgets are spent, or it is cancelled.</summary>
    public SweepResult Run()
    {
        ArgumentNullException.ThrowIfNull(space);
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(proposer);
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (space.Parameters.Count == 0)
            throw new ArgumentException("The search space has no parameters, so every trial would train the same model; add some " +
                "(Choice, Uniform, LogUniform, Integer, LogInteger) or train the model once without a sweep.", nameof(space));
        using var journalLock = journal.LockForSweep();
        CheckJournal();

        var clock = Stopwatch.StartNew();
        var existing = journal.Trials(space);
        var reports = new Dictionary<int, IReadOnlyList<double>>();
        // A trial still running was cut off by a kill: it becomes interrupted and its configuration is queued as a new
        // trial in the same transaction, so a kill right after this still leaves the re-run in the journal.
        foreach (var trial in existing.Where(t => t.Status == TrialStatus.Running).ToList())
            journal.Requeue(trial.Id, journal.NextTrialId(), trial.Configuration, trial.Seconds);
        existing = journal.Trials(space);
        var queue = new Queue<TrialRecord>(existing.Where(t => t.Status == TrialStatus.Queued));
        foreach (var trial in existing)
        {
            reports[trial.Id] = trial.EpochMetrics.ToList();
            if (scheduler is AshaScheduler asha)
                asha.Replay(trial.EpochMetrics);
        }
        var finished = existing.Where(t => t.Status is TrialStatus.Completed or TrialStatus.Pruned or TrialStatus.Stopped or TrialStatus.Failed).ToList();
        int started = finished.Count;
        long totalEpochs = existing.Sum(t => (long)t.Epochs);
        bool budgetSpent = false;

        // Each worker gets its share of the cores, so that parallel trials do not oversubscribe them (a trial's
        // TrainingOptions.Threads; TorchSharp's thread count is one setting for the whole process).
        int threadsPerTrial = Math.Max(1, TrainingOptions.DefaultThreads / settings.Workers);

        (int Id, Configuration Configuration)? Next()
        {
            lock (_gate)
            {
                if (budgetSpent || settings.CancellationToken.IsCancellationRequested || started >= settings.MaxTrials || OutOfTime())
                    return null;
                int id;
                Configuration configuration;
                if (queue.TryDequeue(out var queued))
                {
                    (id, configuration) = (queued.Id, queued.Configuration);
                    journal.Started(id, configuration);
                }
                else
                {
                    id = journal.NextTrialId();
                    configuration = proposer.Propose(id, finished.ToList());
                    journal.Proposed(id, configuration);
                }
                reports[id] = new List<double>();
                started++;
                Emit(new SweepEvent(id, "proposed", null, null, configuration.ToJson()));
                return (id, configuration);
            }
        }

        bool OutOfTime() => settings.MaxTime is { } limit && clock.Elapsed >= limit;

        void Work()
        {
            while (Next() is { } next)
            {
                var trialClock = Stopwatch.StartNew();
                int bestEpoch = 0;
                double best = double.NegativeInfinity;
                var context = new TrialContext(next.Id, StableSeed.Mix(settings.Seed, next.Id), settings.EpochsPerTrial, settings.CancellationToken,
                    (epoch, metric) =>
                    {
                        lock (_gate)
                        {
                            if (metric > best)
                                (best, bestEpoch) = (metric, epoch);
                            ((List<double>)reports[next.Id]).Add(metric);
                            totalEpochs++;
                            journal.Epoch(next.Id, epoch, metric, bestEpoch, best, trialClock.Elapsed.TotalSeconds);
                            Emit(new SweepEvent(next.Id, "epoch", epoch, metric, null));
                            if (settings.MaxTotalEpochs is { } maxEpochs && totalEpochs >= maxEpochs)
                            {
                                budgetSpent = true;
                                return epoch >= settings.EpochsPerTrial ? (false, TrialStatus.Completed, null) : (false, TrialStatus.Stopped, $"the sweep's budget of {maxEpochs} epochs is spent");
                            }
                            if (OutOfTime())
                                return epoch >= settings.EpochsPerTrial ? (false, TrialStatus.Completed, null) : (false, TrialStatus.Stopped, $"the sweep's time budget of {settings.MaxTime} is spent");
                            if (epoch >= settings.EpochsPerTrial)
                                return (false, TrialStatus.Completed, null);
                            return scheduler.ShouldContinue(next.Id, epoch, metric, reports, out string? reason)
                                ? (true, null, null)
                                : (false, TrialStatus.Pruned, reason);
                        }
                    }, threadsPerTrial);
                TrialStatus status;
                string? why = null;
                try
                {
                    runner.Run(next.Configuration, context);
                    (status, why) = (context.StopStatus ?? TrialStatus.Completed, context.StopReason);
                }
                catch (OperationCanceledException) when (context.StopStatus is not null)
                {
                    (status, why) = (context.StopStatus.Value, context.StopReason);
                }
                catch (OperationCanceledException) when (settings.CancellationToken.IsCancellationRequested)
                {
                    (status, why) = (TrialStatus.Stopped, "the sweep was cancelled");
                }
                catch (Exception e)
                {
                    (status, why) = (TrialStatus.Failed, $"{e.GetType().Name}: {e.Message}");
                }
                lock (_gate)
                {
                    journal.Finished(next.Id, status, why, trialClock.Elapsed.TotalSeconds);
                    Emit(new SweepEvent(next.Id, status.ToString().ToLowerInvariant(), null, null, why));
                    finished.Add(journal.Trials(space).First(t => t.Id == next.Id));
                }
            }
        }

        var workers = Enumerable.Range(0, settings.Workers).Select(_ => Task.Factory.StartNew(Work, TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(workers);
        var trials = journal.Trials(space);
        var best = SweepResult.Ranked(trials).FirstOrDefault();
        return new SweepResult(trials, best, trials.Sum(t => (long)t.Epochs), clock.Elapsed);
    }

    /// <summary>Trains the best trial's configuration on training plus validation data for its best number of epochs and saves it, with its configuration as JSON beside it (<c>model.zip</c> and <c>model.json</c>).</summary>
    public void RefitBest(SweepResult result, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(result);
        var best = result.Best ?? throw new InvalidOperationException("No trial reported a metric, so there is no best configuration to refit.");
        runner.Refit(best.Configuration, Math.Max(1, best.BestEpoch), StableSeed.Mix(settings.Seed, best.Id), modelPath);
        string json = Path.ChangeExtension(Path.GetFullPath(modelPath), ".json");
        File.WriteAllText(json + ".tmp", best.Configuration.ToJson());
        File.Move(json + ".tmp", json, overwrite: true);
    }

    private void Emit(SweepEvent e) => settings.OnEvent?.Invoke(e);

    // A journal belongs to one search space and seed; resuming with another would mix incomparable trials.
    private void CheckJournal()
    {
        string description = space.Describe();
        string seed = settings.Seed.ToString(CultureInfo.InvariantCulture);
        string? recordedSpace = journal.GetSetting("space"), recordedSeed = journal.GetSetting("seed");
        if (recordedSpace is null)
        {
            journal.SetSetting("space", description);
            journal.SetSetting("seed", seed);
            return;
        }
        if (recordedSpace != description)
            throw new InvalidOperationException($"The journal '{journal.Path}' was written for a different search space; use a new journal file. Its space:\n{recordedSpace}");
        if (recordedSeed != seed)
            throw new InvalidOperationException($"The journal '{journal.Path}' was written with seed {recordedSeed}, not {seed}; use the same seed to resume, or a new journal file.");
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.DeepVariants.AutoML.Storage;
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
    /// <summary>Trials the study holds at most, every worker's and earlier runs' included (a lost trial counts once, through its re-run). Default 20.</summary>
    public int MaxTrials { get; set; } = 20;
    /// <summary>Epochs a trial runs at most (ASHA's largest rung is below this). Default 9.</summary>
    public int EpochsPerTrial { get; set; } = 9;
    /// <summary>Epochs over all the study's trials at most (each worker checks after its epochs, so several may overshoot by one each); null for no limit.</summary>
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
    /// <summary>How often a running trial tells the study its worker is alive. Default 10 seconds.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// How old a running trial's last heartbeat may be before any worker takes its worker for lost, fails the trial and
    /// queues its configuration again. Default 60 seconds; keep it several heartbeat intervals long. (A trial whose
    /// process on the same machine has ended is taken for lost at once.)
    /// </summary>
    public TimeSpan HeartbeatGrace { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>Times one configuration is run again after its worker was lost. Default 3.</summary>
    public int MaxRetries { get; set; } = 3;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxTrials, nameof(MaxTrials));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(EpochsPerTrial, nameof(EpochsPerTrial));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Workers, nameof(Workers));
        if (MaxTotalEpochs is <= 0)
            throw new ArgumentOutOfRangeException(nameof(MaxTotalEpochs), MaxTotalEpochs, "MaxTotalEpochs must be above zero.");
        if (MaxTime is { } time && time <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(MaxTime), MaxTime, "MaxTime must be above zero.");
        if (HeartbeatInterval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(HeartbeatInterval), HeartbeatInterval, "HeartbeatInterval must be above zero.");
        if (HeartbeatGrace <= HeartbeatInterval)
            throw new ArgumentOutOfRangeException(nameof(HeartbeatGrace), HeartbeatGrace,
                $"HeartbeatGrace must be longer than HeartbeatInterval ({HeartbeatInterval}), or live trials would be taken for lost.");
        ArgumentOutOfRangeException.ThrowIfNegative(MaxRetries, nameof(MaxRetries));
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
    /// <summary>How long this run's calls to the study storage took: what coordinating the workers costs.</summary>
    public CoordinationTimes Coordination { get; init; } = new([], []);

    /// <summary>Trials that reported a metric and neither failed nor lost their worker (their re-run is ranked instead), best first.</summary>
    public IReadOnlyList<TrialRecord> Leaderboard => Ranked(Trials);

    internal static IReadOnlyList<TrialRecord> Ranked(IEnumerable<TrialRecord> trials) =>
        trials.Where(t => t.BestMetric.HasValue && t.Status is not (TrialStatus.Failed or TrialStatus.Interrupted or TrialStatus.Queued)).OrderByDescending(t => t.BestMetric).ThenBy(t => t.Id).ToList();

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
        var lines = new List<string> { "trial,status,best_metric,best_epoch,epochs,seconds,configuration,reason,worker" };
        lines.AddRange(Trials.Select(t => string.Join(",", t.Id.ToString(CultureInfo.InvariantCulture), t.Status,
            t.BestMetric?.ToString("R", CultureInfo.InvariantCulture) ?? "", t.BestEpoch.ToString(CultureInfo.InvariantCulture),
            t.Epochs.ToString(CultureInfo.InvariantCulture), t.Seconds.ToString("F2", CultureInfo.InvariantCulture), Quote(t.Configuration.ToJson()), Quote(t.Reason ?? ""), Quote(t.Worker ?? ""))));
        AtomicFile.WriteAllLines(path, lines);
    }
}

/// <summary>The time each call to the study storage took in one sweep run, in milliseconds.</summary>
/// <param name="ClaimMilliseconds">Each claim (a trial proposed and taken, lost trials re-queued), including its wait for the study's lock.</param>
/// <param name="ReportMilliseconds">Each epoch's report (written, then every worker's reports read back for the scheduler).</param>
public sealed record CoordinationTimes(IReadOnlyList<double> ClaimMilliseconds, IReadOnlyList<double> ReportMilliseconds)
{
    /// <summary>The median and 99th percentile of each, in words.</summary>
    public override string ToString() =>
        $"{Describe("claims", ClaimMilliseconds)}; {Describe("reports", ReportMilliseconds)}";

    /// <summary>The <paramref name="q"/> quantile (nearest rank) of <paramref name="values"/>, or NaN when empty.</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    /// <summary>Every call as CSV (call,milliseconds), written whole or not at all.</summary>
    public void WriteCsv(string path) =>
        AtomicFile.WriteAllLines(path, [
            "call,milliseconds",
            .. ClaimMilliseconds.Select(ms => "claim," + ms.ToString("F3", CultureInfo.InvariantCulture)),
            .. ReportMilliseconds.Select(ms => "report," + ms.ToString("F3", CultureInfo.InvariantCulture)),
        ]);

    private static string Describe(string what, IReadOnlyList<double> values) =>
        FormattableString.Invariant($"{values.Count} {what}, median {Quantile(values, 0.5):F1} ms, 99th percentile {Quantile(values, 0.99):F1} ms");
}

/// <summary>
/// A sweep: proposes configurations (random search or TPE), runs them on one or more workers, stops bad trials
/// early (ASHA or the median rule), keeps every event in its journal's study (SQLite, or PostgreSQL shared by workers
/// on many machines), and resumes from that study when started again: completed trials are never run again, ids never
/// repeat, and a trial whose worker was lost is run again under a new id.
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
    /// <summary>The journal the sweep writes.</summary>
    public SweepJournal Journal => journal;

    /// <summary>
    /// Runs the sweep until the study holds its trials, a budget is spent, or it is cancelled. Other sweeps may work on
    /// the same study at once, in this process or others, on this machine or others: each claims its trials from the
    /// study, proposes from every worker's finished trials, and decides early stopping from every worker's reports.
    /// </summary>
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
        CheckJournal();

        var clock = Stopwatch.StartNew();
        var storage = journal.Storage;
        string? Lost(StoredTrial trial) => SweepJournal.Lost(trial, settings.HeartbeatGrace);
        // Trials whose worker is gone (this sweep's own, killed before, among them) fail and wait to run again, even
        // when this run stops at once.
        foreach (int number in storage.Recover(journal.StudyId, Lost, settings.MaxRetries))
            Emit(new SweepEvent(number, "interrupted", null, null, "its worker was lost"));
        bool budgetSpent = false;

        // Each worker gets its share of the cores, so that parallel trials do not oversubscribe them (a trial's
        // TrainingOptions.Threads; TorchSharp's thread count is one setting for the whole process).
        int threadsPerTrial = Math.Max(1, TrainingOptions.DefaultThreads / settings.Workers);
        var request = new ClaimRequest
        {
            MaxTrials = settings.MaxTrials,
            Worker = SweepJournal.ThisWorker,
            IsStale = Lost,
            MaxRetries = settings.MaxRetries,
            Choose = (number, stored, waiting) =>
            {
                var trials = stored.Select(t => SweepJournal.ToRecord(t, space)).ToList();
                var finished = trials.Where(t => t.Status is TrialStatus.Completed or TrialStatus.Pruned or TrialStatus.Stopped or TrialStatus.Failed).ToList();
                var configuration = waiting is null ? proposer.Propose(number, finished) : Complete(Queued(waiting), number, finished);
                return SweepJournal.ToStored(configuration, space);
            },
        };

        bool Stopping() => budgetSpent || settings.CancellationToken.IsCancellationRequested || OutOfTime();
        bool OutOfTime() => settings.MaxTime is { } limit && clock.Elapsed >= limit;

        var claimTimes = new System.Collections.Concurrent.ConcurrentQueue<double>();
        var reportTimes = new System.Collections.Concurrent.ConcurrentQueue<double>();

        StoredTrial? Next()
        {
            while (!Stopping())
            {
                long started = Stopwatch.GetTimestamp();
                var claim = storage.Claim(journal.StudyId, request);
                claimTimes.Enqueue(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                foreach (int number in claim.Requeued)
                    Emit(new SweepEvent(number, "interrupted", null, null, "its worker was lost"));
                if (claim.Outcome == ClaimOutcome.Claimed)
                {
                    Emit(new SweepEvent(claim.Trial!.Number, "proposed", null, null, SweepJournal.ToRecord(claim.Trial, space).Configuration.ToJson()));
                    return claim.Trial;
                }
                if (claim.Outcome == ClaimOutcome.Done)
                    return null;
                // The study is full but trials run elsewhere; one of them may yet be lost and queued again.
                settings.CancellationToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Min(1000, settings.HeartbeatInterval.TotalMilliseconds)));
            }
            return null;
        }

        void Work()
        {
            while (Next() is { } claimed)
            {
                int id = claimed.Number;
                var configuration = SweepJournal.ToRecord(claimed, space).Configuration;
                var trialClock = Stopwatch.StartNew();
                int bestEpoch = 0;
                double best = double.NegativeInfinity;
                using var heartbeat = new Timer(_ => Beat(claimed.TrialId), null, settings.HeartbeatInterval, settings.HeartbeatInterval);
                var context = new TrialContext(id, StableSeed.Mix(settings.Seed, id), settings.EpochsPerTrial, settings.CancellationToken,
                    (epoch, metric) =>
                    {
                        if (metric > best)
                            (best, bestEpoch) = (metric, epoch);
                        long started = Stopwatch.GetTimestamp();
                        if (!storage.Report(claimed.TrialId, epoch, metric))
                            return (false, TrialStatus.Interrupted, "another worker took this trial's worker for lost and queued its configuration again");
                        // Every worker's reports, from the study: the rungs and medians are the study's, not this process's.
                        var steps = storage.IntermediateValues(journal.StudyId);
                        reportTimes.Enqueue(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                        // A failed trial's epochs count against the budget, not against other trials (a lost trial's re-run reports again).
                        var reports = steps.Where(s => !s.Value.Failed).ToDictionary(s => s.Key, s => s.Value.Values);
                        Emit(new SweepEvent(id, "epoch", epoch, metric, null));
                        long totalEpochs = steps.Values.Sum(r => (long)r.Values.Count);
                        if (settings.MaxTotalEpochs is { } maxEpochs && totalEpochs >= maxEpochs)
                        {
                            budgetSpent = true;
                            return epoch >= settings.EpochsPerTrial ? (false, TrialStatus.Completed, null) : (false, TrialStatus.Stopped, $"the sweep's budget of {maxEpochs} epochs is spent");
                        }
                        if (OutOfTime())
                            return epoch >= settings.EpochsPerTrial ? (false, TrialStatus.Completed, null) : (false, TrialStatus.Stopped, $"the sweep's time budget of {settings.MaxTime} is spent");
                        if (epoch >= settings.EpochsPerTrial)
                            return (false, TrialStatus.Completed, null);
                        return scheduler.ShouldContinue(id, epoch, metric, reports, out string? reason)
                            ? (true, null, null)
                            : (false, TrialStatus.Pruned, reason);
                    }, threadsPerTrial);
                TrialStatus status;
                string? why = null;
                try
                {
                    runner.Run(configuration, context);
                    (status, why) = (context.StopStatus ?? TrialStatus.Completed, context.StopReason);
                }
                catch (OperationCanceledException) when (context.StopStatus is not null)
                {
                    (status, why) = (context.StopStatus.Value, context.StopReason);
                }
                catch (OperationCanceledException) when (settings.CancellationToken.IsCancellationRequested)
                {
                    (status, why) = (TrialStatus.Interrupted, "the sweep was cancelled");
                }
                catch (Exception e)
                {
                    (status, why) = (TrialStatus.Failed, $"{e.GetType().Name}: {e.Message}");
                }
                heartbeat.Dispose();
                if (status == TrialStatus.Interrupted && context.StopStatus == TrialStatus.Interrupted)
                {
                    // Taken over: the study holds its re-run already.
                }
                else if (status == TrialStatus.Interrupted)
                    // Cancelled (Ctrl+C): the configuration waits in the study for this sweep's next run, or another worker.
                    storage.FailAndRequeue(journal.StudyId, claimed.TrialId, why!, trialClock.Elapsed.TotalSeconds, settings.MaxRetries);
                else
                    storage.Finish(claimed.TrialId, status switch
                        {
                            TrialStatus.Completed => StoredState.Complete,
                            TrialStatus.Pruned or TrialStatus.Stopped => StoredState.Pruned,
                            _ => StoredState.Fail,
                        },
                        status == TrialStatus.Failed || bestEpoch == 0 ? null : best,
                        new Dictionary<string, string>
                        {
                            ["status"] = JsonSerializer.Serialize(status.ToString()),
                            ["seconds"] = trialClock.Elapsed.TotalSeconds.ToString("R", CultureInfo.InvariantCulture),
                            ["reason"] = why is null ? "null" : JsonSerializer.Serialize(why),
                        });
                Emit(new SweepEvent(id, status.ToString().ToLowerInvariant(), null, null, why));
            }
        }

        void Beat(int trialId)
        {
            try
            {
                storage.Heartbeat(trialId);
            }
            catch (Exception e) when (e is System.Data.Common.DbException or IOException or InvalidOperationException)
            {
                // A missed beat is retried at the next interval; the grace period is several intervals long.
            }
        }

        var workers = Enumerable.Range(0, settings.Workers).Select(_ => Task.Factory.StartNew(Work, TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(workers);
        var all = journal.Trials(space);
        var bestTrial = SweepResult.Ranked(all).FirstOrDefault();
        return new SweepResult(all, bestTrial, all.Sum(t => (long)t.Epochs), clock.Elapsed) { Coordination = new([.. claimTimes], [.. reportTimes]) };
    }

    // A queued trial's fixed parameters, in the space's types; a value the space cannot take (a Python user's
    // enqueue_trial) is named with the trial, and the claim rolls back, leaving the study as it was.
    private Configuration Queued(StoredTrial waiting)
    {
        try
        {
            return SweepJournal.ToRecord(waiting, space).Configuration;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or InvalidOperationException or System.Text.Json.JsonException)
        {
            throw new InvalidDataException($"Trial {waiting.Number} of study '{journal.Study}' waits with fixed parameters this search space cannot take " +
                $"({e.Message}); fail it from Optuna (study.tell({waiting.Number}, state=optuna.trial.TrialState.FAIL)) or enqueue values of the space.", e);
        }
    }

    // A queued trial's parameters as they were fixed (all of them, when this package queued it; some, when Optuna's
    // enqueue_trial did), the rest proposed as for a new trial.
    private Configuration Complete(Configuration fixedValues, int number, IReadOnlyList<TrialRecord> finished)
    {
        if (space.Parameters.All(p => fixedValues.Has(p.Name) || (p.Condition is { } condition && !condition(fixedValues))))
            return fixedValues.InOrderOf(space);
        var proposed = proposer.Propose(number, finished);
        var configuration = new Configuration();
        foreach (var parameter in space.Parameters)
        {
            if (parameter.Condition is { } condition && !condition(configuration))
                continue;
            if (fixedValues.Has(parameter.Name))
                configuration.Set(parameter.Name, fixedValues[parameter.Name]);
            else if (proposed.Has(parameter.Name))
                configuration.Set(parameter.Name, proposed[parameter.Name]);
            else if (space.Sample(RandomSearchProposer.TrialRandom(settings.Seed, number)) is var sample && sample.Has(parameter.Name))
                configuration.Set(parameter.Name, sample[parameter.Name]);
        }
        return configuration;
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
        // Recorded once, in one transaction: workers starting together all read what the first of them wrote.
        var recorded = journal.SetSettingsOnce(new Dictionary<string, string> { ["space"] = description, ["seed"] = seed });
        if (recorded["space"] != description)
            throw new InvalidOperationException($"Study '{journal.Study}' in '{journal.Path}' was written for a different search space; use a new study or journal file. Its space:\n{recorded["space"]}");
        if (recorded["seed"] != seed)
            throw new InvalidOperationException($"Study '{journal.Study}' in '{journal.Path}' was written with seed {recorded["seed"]}, not {seed}; use the same seed to resume, or a new study or journal file.");
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.DeepVariants.AutoML.Storage;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Where a trial stands.</summary>
public enum TrialStatus
{
    /// <summary>Claimed by a worker, not finished.</summary>
    Running,
    /// <summary>Ran every epoch it was given.</summary>
    Completed,
    /// <summary>Stopped early by the scheduler (ASHA or the median rule).</summary>
    Pruned,
    /// <summary>Stopped because the sweep's epoch or time budget ran out.</summary>
    Stopped,
    /// <summary>Threw (an exception, a NaN loss, out of memory); the reason is kept.</summary>
    Failed,
    /// <summary>Its worker was lost (killed, its heartbeat stopped, or the sweep was cancelled): its configuration runs again as a new trial.</summary>
    Interrupted,
    /// <summary>Waits for a worker: the re-run of an interrupted trial, or a trial enqueued from Optuna.</summary>
    Queued,
}

/// <summary>One trial as the journal keeps it.</summary>
/// <param name="Id">The trial's number in its study, from 0 (Optuna's numbering), never reused.</param>
/// <param name="Configuration">Its parameters.</param>
/// <param name="Status">Where it stands.</param>
/// <param name="Epochs">Epochs it ran.</param>
/// <param name="BestMetric">Its best validation metric, or null.</param>
/// <param name="BestEpoch">The epoch of the best metric (0 when none).</param>
/// <param name="Reason">Why it was pruned, stopped, failed or interrupted.</param>
/// <param name="Seconds">Wall time it took.</param>
/// <param name="EpochMetrics">The metric of each epoch it ran.</param>
public sealed record TrialRecord(int Id, Configuration Configuration, TrialStatus Status, int Epochs, double? BestMetric, int BestEpoch,
    string? Reason, double Seconds, IReadOnlyList<double> EpochMetrics)
{
    /// <summary>The worker that ran it (host and process), or null.</summary>
    public string? Worker { get; init; }
}

/// <summary>
/// A sweep's journal: one study in a study storage (<see cref="IStudyStorage"/>, Optuna 3.1's schema), a SQLite file by
/// default or a PostgreSQL database shared by workers on many machines. Every event (trial claimed, epoch reported,
/// finished, lost and re-queued) is committed before the sweep moves on; a sweep started again on the same study keeps
/// every finished trial, and trial numbers never repeat. Any number of sweeps, in any number of processes, may work
/// on one study at once: trials are claimed in a transaction that holds the study.
/// </summary>
/// <example>
/// <code>
/// using var local = new SweepJournal("sweep.db");                                            // SQLite, study "default"
/// using var shared = SweepJournal.Open("postgresql://sweeper@db-host/sweeps", "fashion-cnn");   // many machines
/// </code>
/// </example>
public sealed class SweepJournal : IDisposable
{
    /// <summary>The study a journal opened by file path keeps.</summary>
    public const string DefaultStudy = "default";

    private const string SettingPrefix = "deepvariants.";
    private readonly IStudyStorage _storage;
    private readonly bool _ownsStorage;

    /// <summary>Opens (creating when needed) the SQLite journal at <paramref name="path"/>, study <see cref="DefaultStudy"/>.</summary>
    public SweepJournal(string path)
        : this(OpenSqlite(path), DefaultStudy, ownsStorage: true)
    {
    }

    /// <summary>Opens (creating when needed) study <paramref name="study"/> in <paramref name="storage"/>; the storage stays the caller's.</summary>
    public SweepJournal(IStudyStorage storage, string study)
        : this(storage, study, ownsStorage: false)
    {
    }

    private SweepJournal(IStudyStorage storage, string study, bool ownsStorage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentException.ThrowIfNullOrWhiteSpace(study);
        _storage = storage;
        _ownsStorage = ownsStorage;
        Study = study;
        try
        {
            StudyId = storage.FindStudy(study, create: true)!.Value;
        }
        catch
        {
            if (ownsStorage)
                storage.Dispose();
            throw;
        }
    }

    /// <summary>Opens study <paramref name="study"/> in the storage <paramref name="storage"/> (see <see cref="StudyStorage.Open"/>).</summary>
    public static SweepJournal Open(string storage, string study = DefaultStudy) => new(StudyStorage.Open(storage), study, ownsStorage: true);

    /// <summary>The storage's location: the journal file, or the PostgreSQL server and database.</summary>
    public string Path => _storage.Location;

    /// <summary>The study's name.</summary>
    public string Study { get; }

    /// <summary>The storage the study lives in.</summary>
    public IStudyStorage Storage => _storage;

    internal int StudyId { get; }

    /// <summary>A sweep setting (seed, space) recorded by the first run, or null: a study user attribute <c>deepvariants.KEY</c>.</summary>
    public string? GetSetting(string key) =>
        _storage.GetStudyAttribute(StudyId, SettingPrefix + key) is { } json ? JsonSerializer.Deserialize<string>(json) : null;

    /// <summary>Records a sweep setting.</summary>
    public void SetSetting(string key, string value) => _storage.SetStudyAttribute(StudyId, SettingPrefix + key, JsonSerializer.Serialize(value));

    /// <summary>Records the settings the study does not have yet, in one transaction, and returns every one of them as the study holds it.</summary>
    public IReadOnlyDictionary<string, string> SetSettingsOnce(IReadOnlyDictionary<string, string> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var stored = _storage.SetStudyAttributesIfAbsent(StudyId, settings.ToDictionary(s => SettingPrefix + s.Key, s => JsonSerializer.Serialize(s.Value)));
        return settings.Keys.ToDictionary(k => k, k => JsonSerializer.Deserialize<string>(stored[SettingPrefix + k])!);
    }

    /// <summary>Every trial, by number, with its epoch metrics.</summary>
    public IReadOnlyList<TrialRecord> Trials(SearchSpace space)
    {
        ArgumentNullException.ThrowIfNull(space);
        return _storage.Trials(StudyId).Select(t => ToRecord(t, space)).ToList();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsStorage)
            _storage.Dispose();
    }

    /// <summary>A stored trial as the sweep sees it; parameters the space does not have (a Python worker's) are kept as Optuna gives them.</summary>
    internal static TrialRecord ToRecord(StoredTrial trial, SearchSpace space)
    {
        var configuration = ConfigurationOf(trial, space);
        var metrics = trial.Intermediate.Select(i => i.Value).ToList();
        int bestEpoch = 0;
        double best = double.NegativeInfinity;
        foreach (var (step, value) in trial.Intermediate)
            if (value > best)
                (best, bestEpoch) = (value, step);
        double? bestMetric = trial.Value is { } v && !double.IsNegativeInfinity(v) ? v : bestEpoch > 0 ? best : null;
        string? Text(string key) => trial.UserAttributes.TryGetValue(key, out string? json) ? JsonNode.Parse(json)?.ToString() : null;
        var status = Text("status") is { } named && Enum.TryParse<TrialStatus>(named, out var s) ? s : trial.State switch
        {
            StoredState.Running => TrialStatus.Running,
            StoredState.Waiting => TrialStatus.Queued,
            StoredState.Complete => TrialStatus.Completed,
            StoredState.Pruned => TrialStatus.Pruned,
            _ => trial.UserAttributes.ContainsKey(RelationalStudyStorage.RetriedAs) ? TrialStatus.Interrupted : TrialStatus.Failed,
        };
        double seconds = Text("seconds") is { } text && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double sec)
            ? sec
            : trial.Start is { } start ? ((trial.Complete ?? DateTime.Now) - start).TotalSeconds : 0;
        return new TrialRecord(trial.Number, configuration, status, metrics.Count, bestMetric, bestEpoch, Text("reason"), seconds, metrics) { Worker = Text("worker") };
    }

    private static Configuration ConfigurationOf(StoredTrial trial, SearchSpace space)
    {
        var configuration = new Configuration();
        if (trial.Params.Count == 0 && trial.SystemAttributes.TryGetValue("fixed_params", out string? fixedJson))
        {
            // A queued trial: Optuna keeps its parameters as fixed_params until a worker claims it.
            foreach (var (name, value) in JsonNode.Parse(fixedJson)!.AsObject())
                configuration.Set(name, space.Parameters.FirstOrDefault(p => p.Name == name) is { } parameter
                    ? OptunaDistributions.FromExternal(parameter, value)
                    : value?.ToString() ?? "");
            return configuration;
        }
        foreach (var stored in trial.Params)
        {
            object? external = OptunaDistributions.ToExternal(stored);
            var parameter = space.Parameters.FirstOrDefault(p => p.Name == stored.Name);
            configuration.Set(stored.Name, parameter is null ? external ?? "" : OptunaDistributions.FromExternal(parameter, external));
        }
        // In drawing order, as the space draws them.
        return configuration.InOrderOf(space);
    }

    /// <summary>The parameters to store for <paramref name="configuration"/> (those of the space, in drawing order).</summary>
    internal static IReadOnlyList<StoredParam> ToStored(Configuration configuration, SearchSpace space) =>
        space.Parameters.Where(p => configuration.Has(p.Name)).Select(p => OptunaDistributions.ToStored(p, configuration[p.Name])).ToList();

    private static IStudyStorage OpenSqlite(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new SqliteStudyStorage(path);
    }

    /// <summary>This process, as trials record their worker: the host, the process id, and when the process started (so a reused id is not taken for it).</summary>
    /// <remarks>DEEPVARIANTS_WORKER_HOST, when set, is recorded as the host instead: tests give each worker process its own, to stand for workers on other machines.</remarks>
    internal static string ThisWorker { get; } = $"{WorkerHost}:{Environment.ProcessId}:{ProcessStart(Environment.ProcessId)}";

    private static string WorkerHost => Environment.GetEnvironmentVariable("DEEPVARIANTS_WORKER_HOST") is { Length: > 0 } host ? host.Replace(':', '-') : Environment.MachineName;

    /// <summary>Why a running trial's worker is gone: its heartbeat is older than <paramref name="grace"/>, or it ran in a process of this machine that has ended.</summary>
    internal static string? Lost(StoredTrial trial, TimeSpan grace)
    {
        if (trial.HeartbeatAge is not { } age)
            return null;  // a worker that never beats (an Optuna worker without heartbeats) is never taken for lost
        if (age > grace)
            return FormattableString.Invariant($"its worker's last heartbeat was {age.TotalSeconds:F1} s ago (grace {grace.TotalSeconds:F1} s)");
        // Linux derives a process's start time from the boot time, which each reader computes anew: allow a second.
        if (trial.UserAttributes.TryGetValue("worker", out string? json) && JsonSerializer.Deserialize<string>(json) is { } worker
            && worker.Split(':') is [var host, var pidText, var startText] && host == WorkerHost
            && int.TryParse(pidText, CultureInfo.InvariantCulture, out int pid) && long.TryParse(startText, CultureInfo.InvariantCulture, out long started)
            && !(long.TryParse(ProcessStart(pid), CultureInfo.InvariantCulture, out long now) && Math.Abs(now - started) <= 1000))
            return $"its worker, process {pid} on {host}, has ended";
        return null;
    }

    private static string ProcessStart(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return new DateTimeOffset(process.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            return "ended";
        }
    }
}

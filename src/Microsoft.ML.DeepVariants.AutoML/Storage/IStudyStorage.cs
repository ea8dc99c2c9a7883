namespace Microsoft.ML.DeepVariants.AutoML.Storage;

/// <summary>
/// Where sweeps keep their studies: a relational database in Optuna 3.1's RDB schema (studies, trials, trial_params,
/// trial_values, trial_intermediate_values, trial_heartbeats, attributes, version_info, alembic_version), so Optuna
/// and its dashboard read what DeepVariants workers write, and Python and .NET workers can share one study. Two
/// backends share every statement: SQLite (a file, no server; several processes on one machine) and PostgreSQL
/// (several machines). Every call is one committed transaction.
/// </summary>
/// <example>
/// <code>
/// using IStudyStorage storage = StudyStorage.Open("postgresql://sweeper@db-host:5432/sweeps");
/// int study = storage.OpenStudy("fashion-cnn");
/// </code>
/// </example>
public interface IStudyStorage : IDisposable
{
    /// <summary>The storage in words, for messages: a file path, or host, port and database (never a password).</summary>
    string Location { get; }

    /// <summary>The names of every study in the storage.</summary>
    IReadOnlyList<string> StudyNames();

    /// <summary>The id of study <paramref name="name"/>, created (direction maximize) when <paramref name="create"/> and absent; null when absent otherwise.</summary>
    int? FindStudy(string name, bool create);

    /// <summary>A user attribute of the study (its JSON value), or null.</summary>
    string? GetStudyAttribute(int studyId, string key);

    /// <summary>Sets a user attribute of the study to a JSON value.</summary>
    void SetStudyAttribute(int studyId, string key, string valueJson);

    /// <summary>Sets the user attributes the study does not have yet, in one transaction; returns those keys' values as the study then holds them.</summary>
    IReadOnlyDictionary<string, string> SetStudyAttributesIfAbsent(int studyId, IReadOnlyDictionary<string, string> valuesJson);

    /// <summary>
    /// In one transaction that holds the study: fails the running trials whose worker is gone (<see cref="ClaimRequest.IsStale"/>)
    /// and re-queues them, then claims a waiting trial, or creates one while the study has fewer than
    /// <see cref="ClaimRequest.MaxTrials"/>, with the parameters <see cref="ClaimRequest.Choose"/> gives.
    /// </summary>
    ClaimResult Claim(int studyId, ClaimRequest request);

    /// <summary>Fails the running trials whose worker is gone and queues their parameters again, as a claim does first; returns their numbers.</summary>
    IReadOnlyList<int> Recover(int studyId, Func<StoredTrial, string?> isLost, int maxRetries);

    /// <summary>
    /// Records the value of a running trial at a step (an epoch) and its heartbeat; false, writing nothing, when the trial
    /// no longer runs (another worker took its worker for lost and queued it again), so the worker stops it.
    /// </summary>
    bool Report(int trialId, int step, double value);

    /// <summary>Records that the worker of a running trial is alive.</summary>
    void Heartbeat(int trialId);

    /// <summary>Finishes a running trial: its state, its value (null when it has none) and user attributes (JSON values); false, writing nothing, when it no longer runs.</summary>
    bool Finish(int trialId, StoredState state, double? value, IReadOnlyDictionary<string, string> userAttributes);

    /// <summary>Fails a running trial and queues its parameters again as a new waiting trial (at most <paramref name="maxRetries"/> times along one chain), in one transaction.</summary>
    void FailAndRequeue(int studyId, int trialId, string reason, double seconds, int maxRetries);

    /// <summary>Every trial's value at each step, by trial number (steps in order), and whether it failed: what schedulers compare and budgets count.</summary>
    IReadOnlyDictionary<int, StepValues> IntermediateValues(int studyId);

    /// <summary>Every trial of the study, by number.</summary>
    IReadOnlyList<StoredTrial> Trials(int studyId);
}

/// <summary>A trial's state, as Optuna names them.</summary>
public enum StoredState
{
    /// <summary>RUNNING.</summary>
    Running,
    /// <summary>COMPLETE.</summary>
    Complete,
    /// <summary>PRUNED.</summary>
    Pruned,
    /// <summary>FAIL.</summary>
    Fail,
    /// <summary>WAITING (enqueued).</summary>
    Waiting,
}

/// <summary>One parameter of a trial as Optuna stores it: its internal value (a choice's index) and its distribution.</summary>
/// <param name="Name">The parameter's name.</param>
/// <param name="Value">The internal value.</param>
/// <param name="DistributionJson">Optuna's distribution JSON, for example <c>{"name": "IntDistribution", "attributes": {...}}</c>.</param>
public sealed record StoredParam(string Name, double Value, string DistributionJson);

/// <summary>One trial as the storage holds it.</summary>
/// <param name="TrialId">The database id.</param>
/// <param name="Number">The trial's number in its study, from 0 (Optuna's numbering).</param>
/// <param name="State">Its state.</param>
/// <param name="Params">Its parameters, in the order they were written.</param>
/// <param name="Value">Its objective value, or null.</param>
/// <param name="Intermediate">Its value at each step, by step.</param>
/// <param name="UserAttributes">User attributes (JSON values).</param>
/// <param name="SystemAttributes">System attributes (JSON values; <c>fixed_params</c> for a queued trial).</param>
/// <param name="Start">When it started (local time), or null.</param>
/// <param name="Complete">When it finished (local time), or null.</param>
/// <param name="HeartbeatAge">How long ago its worker last reported, by the database's clock; null when it never did.</param>
public sealed record StoredTrial(int TrialId, int Number, StoredState State, IReadOnlyList<StoredParam> Params, double? Value,
    IReadOnlyList<(int Step, double Value)> Intermediate, IReadOnlyDictionary<string, string> UserAttributes,
    IReadOnlyDictionary<string, string> SystemAttributes, DateTime? Start, DateTime? Complete, TimeSpan? HeartbeatAge);

/// <summary>A trial's value at each step, and whether it failed (its values then count against no other trial).</summary>
/// <param name="Values">The values, steps in order.</param>
/// <param name="Failed">Whether the trial's state is FAIL.</param>
public sealed record StepValues(IReadOnlyList<double> Values, bool Failed);

/// <summary>What <see cref="IStudyStorage.Claim"/> needs.</summary>
public sealed class ClaimRequest
{
    /// <summary>Trials the study holds at most (a trial failed and re-queued counts once, through its re-run).</summary>
    public int MaxTrials { get; init; } = int.MaxValue;
    /// <summary>The worker's name, recorded on the trial it claims (user attribute <c>worker</c>).</summary>
    public required string Worker { get; init; }
    /// <summary>Whether a running trial's worker is gone (its heartbeat is too old, or its process ended).</summary>
    public required Func<StoredTrial, string?> IsStale { get; init; }
    /// <summary>Re-runs of one configuration at most, after its worker was lost.</summary>
    public int MaxRetries { get; init; } = 3;
    /// <summary>The parameters of the trial numbered <c>number</c>, given every trial of the study and, for a waiting trial, the trial itself.</summary>
    public required Func<int, IReadOnlyList<StoredTrial>, StoredTrial?, IReadOnlyList<StoredParam>> Choose { get; init; }
}

/// <summary>What a claim found.</summary>
public enum ClaimOutcome
{
    /// <summary>A trial is now this worker's.</summary>
    Claimed,
    /// <summary>The study is full but trials run elsewhere and may yet be re-queued: ask again later.</summary>
    Wait,
    /// <summary>The study is full and nothing runs: the worker is done.</summary>
    Done,
}

/// <summary>The result of a claim.</summary>
/// <param name="Outcome">What was found.</param>
/// <param name="Trial">The claimed trial (with its parameters), when <see cref="ClaimOutcome.Claimed"/>.</param>
/// <param name="Requeued">Numbers of the trials this claim failed because their worker was gone.</param>
public sealed record ClaimResult(ClaimOutcome Outcome, StoredTrial? Trial, IReadOnlyList<int> Requeued);

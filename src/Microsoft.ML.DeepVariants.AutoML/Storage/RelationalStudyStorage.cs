using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Text.Json;

namespace Microsoft.ML.DeepVariants.AutoML.Storage;

/// <summary>
/// The statements both backends share, in Optuna 3.1's schema. A backend gives its connections, its schema's DDL, how
/// a write transaction holds a study (PostgreSQL: a row lock on the study; SQLite: the database's write lock), its
/// clock and how it writes a timestamp. Enum values are written as literals, never parameters, so PostgreSQL's enum
/// types take them as they take SQLAlchemy's, and read as text (a connection opened before the types existed knows
/// nothing of them).
/// </summary>
internal abstract class RelationalStudyStorage : IStudyStorage
{
    /// <summary>Optuna 3.1's schema, as its <c>version_info</c> and Alembic head name it.</summary>
    internal const int SchemaVersion = 12;
    internal const string LibraryVersion = "3.1.0";
    internal const string AlembicRevision = "v3.0.0.d";

    /// <summary>The user attribute, on a trial failed because its worker was lost, that names the number of its re-run.</summary>
    internal const string RetriedAs = "retried_as";
    /// <summary>Optuna's attribute naming the trial a re-run repeats (RetryFailedTrialCallback writes it too).</summary>
    internal const string FailedTrial = "failed_trial";

    public abstract string Location { get; }

    protected abstract DbConnection Open();

    /// <summary>Begins a write transaction that holds <paramref name="studyId"/> (when given) until it ends.</summary>
    protected abstract DbTransaction BeginHolding(DbConnection connection, int? studyId);

    /// <summary>Begins a write transaction that holds the schema and the list of studies until it ends.</summary>
    protected abstract DbTransaction BeginSchemaChange(DbConnection connection);

    /// <summary>Begins a transaction that only reads, and blocks no writer.</summary>
    protected abstract DbTransaction BeginReading(DbConnection connection);

    /// <summary>The SQL expression of the database's clock, in the form heartbeats are written.</summary>
    protected abstract string NowSql { get; }

    /// <summary>A local time as the backend stores a DATETIME.</summary>
    protected abstract object TimeValue(DateTime local);

    /// <summary>Creates the schema when it is absent and checks its version, naming the storage when it is something else.</summary>
    protected void EnsureSchema(IEnumerable<string> ddl, Func<DbConnection, DbTransaction, bool> hasSchema)
    {
        using var connection = Open();
        using var transaction = BeginSchemaChange(connection);
        if (!hasSchema(connection, transaction))
        {
            foreach (string statement in ddl)
                Execute(connection, transaction, statement);
            Execute(connection, transaction, "INSERT INTO version_info(version_info_id, schema_version, library_version) VALUES(1, @v, @l)",
                ("@v", SchemaVersion), ("@l", LibraryVersion));
            Execute(connection, transaction, "INSERT INTO alembic_version(version_num) VALUES(@r)", ("@r", AlembicRevision));
        }
        else
        {
            object? version = Scalar(connection, transaction, "SELECT schema_version FROM version_info WHERE version_info_id = 1");
            if (version is null || Convert.ToInt32(version, CultureInfo.InvariantCulture) != SchemaVersion)
                throw new InvalidDataException($"The study storage {Location} has Optuna schema version {version ?? "(none)"}; this package reads and " +
                    $"writes version {SchemaVersion} (Optuna {LibraryVersion}). Upgrade it with 'optuna storage upgrade', or give another storage.");
        }
        transaction.Commit();
    }

    public IReadOnlyList<string> StudyNames()
    {
        using var connection = Open();
        var names = new List<string>();
        using var command = Command(connection, null, "SELECT study_name FROM studies ORDER BY study_id");
        using var reader = command.ExecuteReader();
        while (reader.Read())
            names.Add(reader.GetString(0));
        return names;
    }

    public int? FindStudy(string name, bool create)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        using var connection = Open();
        using var transaction = BeginSchemaChange(connection);
        if (Scalar(connection, transaction, "SELECT study_id FROM studies WHERE study_name = @n", ("@n", name)) is { } found and not DBNull)
            return Convert.ToInt32(found, CultureInfo.InvariantCulture);
        if (!create)
            return null;
        int id = Convert.ToInt32(Scalar(connection, transaction, "INSERT INTO studies(study_name) VALUES(@n) RETURNING study_id", ("@n", name)), CultureInfo.InvariantCulture);
        Execute(connection, transaction, "INSERT INTO study_directions(direction, study_id, objective) VALUES('MAXIMIZE', @s, 0)", ("@s", id));
        transaction.Commit();
        return id;
    }

    public string? GetStudyAttribute(int studyId, string key)
    {
        using var connection = Open();
        return Scalar(connection, null, "SELECT value_json FROM study_user_attributes WHERE study_id = @s AND \"key\" = @k", ("@s", studyId), ("@k", key)) as string;
    }

    public void SetStudyAttribute(int studyId, string key, string valueJson)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, studyId);
        Execute(connection, transaction, "INSERT INTO study_user_attributes(study_id, \"key\", value_json) VALUES(@s, @k, @v) " +
            "ON CONFLICT (study_id, \"key\") DO UPDATE SET value_json = excluded.value_json", ("@s", studyId), ("@k", key), ("@v", valueJson));
        transaction.Commit();
    }

    public IReadOnlyDictionary<string, string> SetStudyAttributesIfAbsent(int studyId, IReadOnlyDictionary<string, string> valuesJson)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, studyId);
        var stored = new Dictionary<string, string>();
        foreach (var (key, json) in valuesJson)
        {
            Execute(connection, transaction, "INSERT INTO study_user_attributes(study_id, \"key\", value_json) VALUES(@s, @k, @v) ON CONFLICT (study_id, \"key\") DO NOTHING",
                ("@s", studyId), ("@k", key), ("@v", json));
            stored[key] = (string)Scalar(connection, transaction, "SELECT value_json FROM study_user_attributes WHERE study_id = @s AND \"key\" = @k", ("@s", studyId), ("@k", key))!;
        }
        transaction.Commit();
        return stored;
    }

    public ClaimResult Claim(int studyId, ClaimRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var connection = Open();
        using var transaction = BeginHolding(connection, studyId);
        var trials = Load(connection, transaction, studyId);
        var requeued = RequeueLost(connection, transaction, studyId, ref trials, request.IsStale, request.MaxRetries);

        StoredTrial? claimed = null;
        foreach (var waiting in trials.Where(t => t.State == StoredState.Waiting).OrderBy(t => t.Number))
        {
            // A Python worker may pop the same waiting trial: the state check makes the update claim it for one of us only.
            if (Execute(connection, transaction, "UPDATE trials SET state = 'RUNNING', datetime_start = @t WHERE trial_id = @id AND state = 'WAITING'",
                    ("@t", TimeValue(DateTime.Now)), ("@id", waiting.TrialId)) == 1)
            {
                claimed = waiting;
                break;
            }
        }
        if (claimed is null)
        {
            int counted = trials.Count(t => !t.UserAttributes.ContainsKey(RetriedAs));
            if (counted >= request.MaxTrials)
            {
                transaction.Commit();
                // Trials that heartbeat may still be lost and re-queued, so a full study is done only when none runs.
                bool running = trials.Any(t => t.State == StoredState.Running && t.HeartbeatAge is not null);
                return new ClaimResult(running ? ClaimOutcome.Wait : ClaimOutcome.Done, null, requeued);
            }
            var (id, number) = InsertTrial(connection, transaction, studyId, StoredState.Running, TimeValue(DateTime.Now));
            claimed = new StoredTrial(id, number, StoredState.Running, [], null, [], new Dictionary<string, string>(), new Dictionary<string, string>(), DateTime.Now, null, null);
        }
        var parameters = request.Choose(claimed.Number, trials, claimed.State == StoredState.Waiting ? claimed : null);
        foreach (var p in parameters)
            Execute(connection, transaction, "INSERT INTO trial_params(trial_id, param_name, param_value, distribution_json) VALUES(@t, @n, @v, @d)",
                ("@t", claimed.TrialId), ("@n", p.Name), ("@v", p.Value), ("@d", p.DistributionJson));
        SetUserAttribute(connection, transaction, claimed.TrialId, "worker", JsonSerializer.Serialize(request.Worker));
        BeatIn(connection, transaction, claimed.TrialId);
        transaction.Commit();
        return new ClaimResult(ClaimOutcome.Claimed, claimed with { State = StoredState.Running, Params = parameters }, requeued);
    }

    public IReadOnlyList<int> Recover(int studyId, Func<StoredTrial, string?> isLost, int maxRetries)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, studyId);
        var trials = Load(connection, transaction, studyId);
        var requeued = RequeueLost(connection, transaction, studyId, ref trials, isLost, maxRetries);
        transaction.Commit();
        return requeued;
    }

    // Trials whose worker is gone fail, and their parameters wait to run again.
    private List<int> RequeueLost(DbConnection connection, DbTransaction transaction, int studyId, ref List<StoredTrial> trials,
        Func<StoredTrial, string?> isLost, int maxRetries)
    {
        var requeued = new List<int>();
        foreach (var trial in trials.Where(t => t.State == StoredState.Running).ToList())
            if (isLost(trial) is { } why)
            {
                Requeue(connection, transaction, studyId, trial, why, SecondsSince(trial), maxRetries, trials);
                requeued.Add(trial.Number);
            }
        if (requeued.Count > 0)
            trials = Load(connection, transaction, studyId);
        return requeued;
    }

    public bool Report(int trialId, int step, double value)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, null);
        if (!IsRunning(connection, transaction, trialId))
            return false;
        var (stored, type) = Finite(value, allowNaN: true);
        Execute(connection, transaction, "INSERT INTO trial_intermediate_values(trial_id, step, intermediate_value, intermediate_value_type) " +
            $"VALUES(@t, @step, @v, '{type}') ON CONFLICT (trial_id, step) DO UPDATE SET intermediate_value = excluded.intermediate_value, " +
            "intermediate_value_type = excluded.intermediate_value_type", ("@t", trialId), ("@step", step), ("@v", stored));
        BeatIn(connection, transaction, trialId);
        transaction.Commit();
        return true;
    }

    public void Heartbeat(int trialId)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, null);
        BeatIn(connection, transaction, trialId);
        transaction.Commit();
    }

    public bool Finish(int trialId, StoredState state, double? value, IReadOnlyDictionary<string, string> userAttributes)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, null);
        if (!IsRunning(connection, transaction, trialId))
            return false;
        Finish(connection, transaction, trialId, state, value, userAttributes);
        transaction.Commit();
        return true;
    }

    public void FailAndRequeue(int studyId, int trialId, string reason, double seconds, int maxRetries)
    {
        using var connection = Open();
        using var transaction = BeginHolding(connection, studyId);
        var trials = Load(connection, transaction, studyId);
        var trial = trials.Single(t => t.TrialId == trialId);
        if (trial.State == StoredState.Running)
            Requeue(connection, transaction, studyId, trial, reason, seconds, maxRetries, trials);
        transaction.Commit();
    }

    public IReadOnlyDictionary<int, StepValues> IntermediateValues(int studyId)
    {
        using var connection = Open();
        using var transaction = BeginReading(connection);
        var values = new Dictionary<int, (List<double> Values, bool Failed)>();
        using (var command = Command(connection, transaction, "SELECT t.number, CAST(t.state AS TEXT), v.intermediate_value, CAST(v.intermediate_value_type AS TEXT) " +
            "FROM trial_intermediate_values v JOIN trials t ON t.trial_id = v.trial_id WHERE t.study_id = @s ORDER BY t.number, v.step", ("@s", studyId)))
        using (var reader = command.ExecuteReader())
            while (reader.Read())
            {
                int number = reader.GetInt32(0);
                if (!values.TryGetValue(number, out var trial))
                    values[number] = trial = ([], reader.GetString(1) == "FAIL");
                trial.Values.Add(FromStored(reader.IsDBNull(2) ? null : reader.GetDouble(2), reader.GetString(3)));
            }
        transaction.Commit();
        return values.ToDictionary(v => v.Key, v => new StepValues(v.Value.Values, v.Value.Failed));
    }

    public IReadOnlyList<StoredTrial> Trials(int studyId)
    {
        using var connection = Open();
        using var transaction = BeginReading(connection);
        var trials = Load(connection, transaction, studyId);
        transaction.Commit();
        return trials;
    }

    public abstract void Dispose();

    // Fails the trial and, unless its chain of re-runs is spent, queues its parameters as a new waiting trial that
    // names it (Optuna's fixed_params and failed_trial, as its RetryFailedTrialCallback writes them).
    private void Requeue(DbConnection connection, DbTransaction transaction, int studyId, StoredTrial trial, string reason, double seconds,
        int maxRetries, IReadOnlyList<StoredTrial> trials)
    {
        int retries = 0;
        for (var t = trial; t.UserAttributes.TryGetValue(FailedTrial, out string? previous) && retries <= trials.Count;)
        {
            int number = JsonSerializer.Deserialize<int>(previous);
            if (trials.FirstOrDefault(x => x.Number == number) is not { } earlier)
                break;
            retries++;
            t = earlier;
        }
        var attributes = new Dictionary<string, string> { ["reason"] = JsonSerializer.Serialize(reason), ["seconds"] = Json(seconds) };
        if (retries >= maxRetries)
        {
            attributes["reason"] = JsonSerializer.Serialize($"{reason}; not run again: its configuration was lost {retries + 1} times (at most {maxRetries} re-runs)");
            Finish(connection, transaction, trial.TrialId, StoredState.Fail, null, attributes);
            return;
        }
        var (id, newNumber) = InsertTrial(connection, transaction, studyId, StoredState.Waiting, null);
        var fixedParams = new Dictionary<string, object?>();
        foreach (var p in trial.Params)
            fixedParams[p.Name] = OptunaDistributions.ToExternal(p);
        Execute(connection, transaction, "INSERT INTO trial_system_attributes(trial_id, \"key\", value_json) VALUES(@t, 'fixed_params', @v)",
            ("@t", id), ("@v", JsonSerializer.Serialize(fixedParams)));
        SetUserAttribute(connection, transaction, id, FailedTrial, Json(trial.Number));
        attributes[RetriedAs] = Json(newNumber);
        attributes["reason"] = JsonSerializer.Serialize($"{reason}; its configuration runs again as trial {newNumber}");
        Finish(connection, transaction, trial.TrialId, StoredState.Fail, null, attributes);
    }

    // A new trial, numbered as Optuna numbers: by the trials created before it, so a Python worker creating one at the same moment agrees.
    private static (int Id, int Number) InsertTrial(DbConnection connection, DbTransaction transaction, int studyId, StoredState state, object? start)
    {
        // A waiting trial has no start (and a typed null would not do for PostgreSQL's timestamp column).
        string sql = start is null
            ? $"INSERT INTO trials(number, study_id, state) VALUES(NULL, @s, '{Name(state)}') RETURNING trial_id"
            : $"INSERT INTO trials(number, study_id, state, datetime_start) VALUES(NULL, @s, '{Name(state)}', @t) RETURNING trial_id";
        int id = Convert.ToInt32(Scalar(connection, transaction, sql, ("@s", studyId), ("@t", start)), CultureInfo.InvariantCulture);
        Execute(connection, transaction, "UPDATE trials SET number = (SELECT COUNT(*) FROM trials WHERE study_id = @s AND trial_id < @id) WHERE trial_id = @id",
            ("@s", studyId), ("@id", id));
        return (id, Convert.ToInt32(Scalar(connection, transaction, "SELECT number FROM trials WHERE trial_id = @id", ("@id", id)), CultureInfo.InvariantCulture));
    }

    private void Finish(DbConnection connection, DbTransaction transaction, int trialId, StoredState state, double? value, IReadOnlyDictionary<string, string> userAttributes)
    {
        Execute(connection, transaction, $"UPDATE trials SET state = '{Name(state)}', datetime_complete = @t WHERE trial_id = @id",
            ("@t", TimeValue(DateTime.Now)), ("@id", trialId));
        if (value is { } v)
        {
            var (stored, type) = Finite(double.IsNaN(v) ? double.NegativeInfinity : v, allowNaN: false);
            Execute(connection, transaction, "INSERT INTO trial_values(trial_id, objective, value, value_type) " +
                $"VALUES(@t, 0, @v, '{type}') ON CONFLICT (trial_id, objective) DO UPDATE SET value = excluded.value, value_type = excluded.value_type",
                ("@t", trialId), ("@v", stored));
        }
        foreach (var (key, json) in userAttributes)
            SetUserAttribute(connection, transaction, trialId, key, json);
    }

    // Row-locked in PostgreSQL, so a claim that takes the trial for lost and this worker's write never both win.
    private bool IsRunning(DbConnection connection, DbTransaction transaction, int trialId) =>
        Convert.ToString(Scalar(connection, transaction, $"SELECT CAST(state AS TEXT) FROM trials WHERE trial_id = @t{RowLock}", ("@t", trialId)), CultureInfo.InvariantCulture) == "RUNNING";

    /// <summary>The clause that locks the rows a SELECT reads until the transaction ends (empty where the transaction already holds the database).</summary>
    protected abstract string RowLock { get; }

    private void BeatIn(DbConnection connection, DbTransaction transaction, int trialId) =>
        Execute(connection, transaction, $"INSERT INTO trial_heartbeats(trial_id, heartbeat) VALUES(@t, {NowSql}) " +
            $"ON CONFLICT (trial_id) DO UPDATE SET heartbeat = {NowSql}", ("@t", trialId));

    private void SetUserAttribute(DbConnection connection, DbTransaction transaction, int trialId, string key, string json) =>
        Execute(connection, transaction, "INSERT INTO trial_user_attributes(trial_id, \"key\", value_json) VALUES(@t, @k, @v) " +
            "ON CONFLICT (trial_id, \"key\") DO UPDATE SET value_json = excluded.value_json", ("@t", trialId), ("@k", key), ("@v", json));

    private List<StoredTrial> Load(DbConnection connection, DbTransaction transaction, int studyId)
    {
        var now = ReadTime(Scalar(connection, transaction, $"SELECT {NowSql}"))!.Value;
        var rows = new List<(int Id, int Number, StoredState State, DateTime? Start, DateTime? Complete)>();
        using (var command = Command(connection, transaction, "SELECT trial_id, number, CAST(state AS TEXT), datetime_start, datetime_complete FROM trials WHERE study_id = @s ORDER BY number, trial_id", ("@s", studyId)))
        using (var reader = command.ExecuteReader())
            while (reader.Read())
                rows.Add((reader.GetInt32(0), reader.IsDBNull(1) ? -1 : reader.GetInt32(1), Parse(Convert.ToString(reader.GetValue(2), CultureInfo.InvariantCulture)!),
                    ReadTime(reader.GetValue(3)), ReadTime(reader.GetValue(4))));

        var parameters = new Dictionary<int, List<StoredParam>>();
        var values = new Dictionary<int, double>();
        var intermediate = new Dictionary<int, List<(int, double)>>();
        var user = new Dictionary<int, Dictionary<string, string>>();
        var system = new Dictionary<int, Dictionary<string, string>>();
        var beats = new Dictionary<int, TimeSpan>();
        const string OfStudy = "trial_id IN (SELECT trial_id FROM trials WHERE study_id = @s)";
        ReadRows($"SELECT trial_id, param_name, param_value, distribution_json FROM trial_params WHERE {OfStudy} ORDER BY param_id", r =>
            Add(parameters, r.GetInt32(0), new StoredParam(r.GetString(1), r.GetDouble(2), r.GetString(3))));
        ReadRows($"SELECT trial_id, value, CAST(value_type AS TEXT) FROM trial_values WHERE objective = 0 AND {OfStudy}", r =>
            values[r.GetInt32(0)] = FromStored(r.IsDBNull(1) ? null : r.GetDouble(1), Convert.ToString(r.GetValue(2), CultureInfo.InvariantCulture)!));
        ReadRows($"SELECT trial_id, step, intermediate_value, CAST(intermediate_value_type AS TEXT) FROM trial_intermediate_values WHERE {OfStudy} ORDER BY step", r =>
            Add(intermediate, r.GetInt32(0), (r.GetInt32(1), FromStored(r.IsDBNull(2) ? null : r.GetDouble(2), Convert.ToString(r.GetValue(3), CultureInfo.InvariantCulture)!))));
        ReadRows($"SELECT trial_id, \"key\", value_json FROM trial_user_attributes WHERE {OfStudy}", r =>
            (user.TryGetValue(r.GetInt32(0), out var d) ? d : user[r.GetInt32(0)] = [])[r.GetString(1)] = r.GetString(2));
        ReadRows($"SELECT trial_id, \"key\", value_json FROM trial_system_attributes WHERE {OfStudy}", r =>
            (system.TryGetValue(r.GetInt32(0), out var d) ? d : system[r.GetInt32(0)] = [])[r.GetString(1)] = r.GetString(2));
        ReadRows($"SELECT trial_id, heartbeat FROM trial_heartbeats WHERE {OfStudy}", r => beats[r.GetInt32(0)] = now - ReadTime(r.GetValue(1))!.Value);

        return rows.Select(t => new StoredTrial(t.Id, t.Number, t.State, parameters.GetValueOrDefault(t.Id) ?? [],
            values.TryGetValue(t.Id, out double v) ? v : null, intermediate.GetValueOrDefault(t.Id) ?? [],
            user.GetValueOrDefault(t.Id) ?? new Dictionary<string, string>(), system.GetValueOrDefault(t.Id) ?? new Dictionary<string, string>(),
            t.Start, t.Complete, beats.TryGetValue(t.Id, out var age) ? age : null)).ToList();

        void ReadRows(string sql, Action<DbDataReader> row)
        {
            using var command = Command(connection, transaction, sql, ("@s", studyId));
            using var reader = command.ExecuteReader();
            while (reader.Read())
                row(reader);
        }
        static void Add<T>(Dictionary<int, List<T>> map, int key, T item) => (map.TryGetValue(key, out var list) ? list : map[key] = []).Add(item);
    }

    private static double SecondsSince(StoredTrial trial) => trial.Start is { } start ? Math.Max(0, (DateTime.Now - start).TotalSeconds) : 0;

    private static (double? Value, string Type) Finite(double value, bool allowNaN) => value switch
    {
        double.PositiveInfinity => (null, "INF_POS"),
        double.NegativeInfinity => (null, "INF_NEG"),
        _ when double.IsNaN(value) => allowNaN ? (null, "NAN") : (null, "INF_NEG"),
        _ => (value, "FINITE"),
    };

    private static double FromStored(double? value, string type) => type switch
    {
        "INF_POS" => double.PositiveInfinity,
        "INF_NEG" => double.NegativeInfinity,
        "NAN" => double.NaN,
        _ => value ?? double.NaN,
    };

    internal static string Name(StoredState state) => state switch
    {
        StoredState.Running => "RUNNING",
        StoredState.Complete => "COMPLETE",
        StoredState.Pruned => "PRUNED",
        StoredState.Fail => "FAIL",
        _ => "WAITING",
    };

    private static StoredState Parse(string state) => state switch
    {
        "RUNNING" => StoredState.Running,
        "COMPLETE" => StoredState.Complete,
        "PRUNED" => StoredState.Pruned,
        "FAIL" => StoredState.Fail,
        "WAITING" => StoredState.Waiting,
        _ => throw new InvalidDataException($"A trial has state '{state}', which Optuna 3.1 does not have."),
    };

    private static DateTime? ReadTime(object? value) => value switch
    {
        null or DBNull => null,
        DateTime time => time,
        string text => DateTime.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.None),
        _ => throw new InvalidDataException($"A timestamp reads as {value.GetType().Name}."),
    };

    private static string Json(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    protected static int Execute(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        return command.ExecuteNonQuery();
    }

    protected static object? Scalar(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        return command.ExecuteScalar();
    }

    private static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            if (!sql.Contains(name, StringComparison.Ordinal))
                continue;
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            if (value is null)
                parameter.DbType = DbType.Double;  // the only nullable parameters are values
            command.Parameters.Add(parameter);
        }
        return command;
    }
}

using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Where a trial stands.</summary>
public enum TrialStatus
{
    /// <summary>Proposed, not finished (a sweep that was killed leaves its running trials so).</summary>
    Running,
    /// <summary>Ran every epoch it was given.</summary>
    Completed,
    /// <summary>Stopped early by the scheduler (ASHA or the median rule).</summary>
    Pruned,
    /// <summary>Stopped because the sweep's epoch or time budget ran out.</summary>
    Stopped,
    /// <summary>Threw (an exception, a NaN loss, out of memory); the reason is kept.</summary>
    Failed,
    /// <summary>Was running when the sweep was killed; a resumed sweep runs its configuration again under a new id.</summary>
    Interrupted,
    /// <summary>Waits to run: the new trial of an interrupted one's configuration, written with the interruption, so a sweep killed again before it starts still runs it.</summary>
    Queued,
}

/// <summary>One trial as the journal keeps it.</summary>
/// <param name="Id">The trial id, never reused within a journal.</param>
/// <param name="Configuration">Its parameters.</param>
/// <param name="Status">Where it stands.</param>
/// <param name="Epochs">Epochs it ran.</param>
/// <param name="BestMetric">Its best validation metric, or null.</param>
/// <param name="BestEpoch">The epoch of the best metric (0 when none).</param>
/// <param name="Reason">Why it was pruned, stopped or failed.</param>
/// <param name="Seconds">Wall time it took.</param>
/// <param name="EpochMetrics">The metric of each epoch it ran.</param>
public sealed record TrialRecord(int Id, Configuration Configuration, TrialStatus Status, int Epochs, double? BestMetric, int BestEpoch,
    string? Reason, double Seconds, IReadOnlyList<double> EpochMetrics);

/// <summary>
/// The sweep's journal, a SQLite file: every event (trial proposed, epoch reported, pruned, completed, stopped, failed,
/// interrupted, queued) is committed before the sweep moves on, so a killed sweep loses at most the epoch in flight, and
/// a sweep started again on the same file resumes from it. One sweep at a time runs on a journal: a second process is
/// refused while the first holds the journal's lock file (<c>journal.lock</c> beside it; the system releases it when
/// the process ends, even when killed).
/// </summary>
public sealed class SweepJournal : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly object _gate = new();
    private readonly Func<DateTimeOffset> _clock;

    /// <summary>Opens (creating when needed) the journal at <paramref name="path"/>.</summary>
    public SweepJournal(string path, Func<DateTimeOffset>? clock = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _clock = clock ?? (() => DateTimeOffset.UtcNow);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        try
        {
            _connection.Open();
            Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
            Execute("""
                CREATE TABLE IF NOT EXISTS sweep (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS trials (id INTEGER PRIMARY KEY, configuration TEXT NOT NULL, status TEXT NOT NULL,
                    epochs INTEGER NOT NULL DEFAULT 0, best_metric REAL, best_epoch INTEGER NOT NULL DEFAULT 0, reason TEXT, seconds REAL NOT NULL DEFAULT 0);
                CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, trial INTEGER NOT NULL,
                    kind TEXT NOT NULL, epoch INTEGER, metric REAL, detail TEXT);
                """);
        }
        catch (SqliteException e)
        {
            _connection.Dispose();
            // SQLITE_NOTADB (26) and SQLITE_CORRUPT (11): the file exists and is something else.
            throw e.SqliteErrorCode is 26 or 11
                ? new InvalidDataException($"The sweep journal '{Path}' is not a SQLite database (SQLite: {e.Message}); give a new file name, or the journal of an earlier sweep.", e)
                : new IOException($"The sweep journal '{Path}' could not be opened (SQLite: {e.Message}).", e);
        }
    }

    /// <summary>
    /// Takes the journal for one sweep: an exclusive lock on <c>journal.lock</c> beside it, held until the result is
    /// disposed. Throws, naming the journal, when another process holds it.
    /// </summary>
    internal IDisposable LockForSweep()
    {
        string lockPath = Path + ".lock";
        try
        {
            // On Linux and macOS .NET takes an advisory flock for FileShare.None; Windows shares nothing. Either way the
            // system drops the lock when the process ends, so a killed sweep never leaves its journal locked. The file
            // stays: deleting it on close would let a waiting process lock the deleted file while a third locks a new one.
            var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            stream.SetLength(0);
            stream.Write(System.Text.Encoding.UTF8.GetBytes($"{Environment.ProcessId} {Environment.MachineName} {_clock():O}\n"));
            stream.Flush();
            SetSetting("owner", $"process {Environment.ProcessId} on {Environment.MachineName}, since {_clock():O}");
            return stream;
        }
        catch (IOException e)
        {
            string owner = GetSetting("owner") is { } who ? $" ({who})" : "";
            throw new InvalidOperationException(
                $"The sweep journal '{Path}' is in use by another sweep{owner}: one journal takes one sweep at a time. Wait for that sweep to end, " +
                "or give this one another journal file.", e);
        }
    }

    /// <summary>The journal file.</summary>
    public string Path { get; }

    /// <summary>A sweep setting (seed, space) recorded by the first run, or null.</summary>
    public string? GetSetting(string key)
    {
        lock (_gate)
        {
            using var command = Command("SELECT value FROM sweep WHERE key = $key", ("$key", key));
            return command.ExecuteScalar() as string;
        }
    }

    /// <summary>Records a sweep setting.</summary>
    public void SetSetting(string key, string value)
    {
        lock (_gate)
        {
            using var command = Command("INSERT INTO sweep(key, value) VALUES($key, $value) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                ("$key", key), ("$value", value));
            command.ExecuteNonQuery();
        }
    }

    /// <summary>The next unused trial id.</summary>
    public int NextTrialId()
    {
        lock (_gate)
        {
            using var command = Command("SELECT COALESCE(MAX(id), 0) + 1 FROM trials");
            return Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
        }
    }

    internal void Proposed(int trial, Configuration configuration) => Write(trial, "proposed", null, null, configuration.ToJson(),
        "INSERT INTO trials(id, configuration, status) VALUES($trial, $detail, 'Running')");

    // A queued trial starts: the same event as a proposal, on the row that is already there.
    internal void Started(int trial, Configuration configuration) => Write(trial, "proposed", null, null, configuration.ToJson(),
        "UPDATE trials SET status = 'Running' WHERE id = $trial");

    /// <summary>
    /// Marks <paramref name="interrupted"/> as interrupted and queues its configuration as trial <paramref name="queued"/>,
    /// in one transaction: a sweep killed at any moment leaves either the running trial or the queued one, never neither.
    /// </summary>
    internal void Requeue(int interrupted, int queued, Configuration configuration, double seconds)
    {
        lock (_gate)
        {
            using var transaction = _connection.BeginTransaction();
            string reason = $"the sweep stopped while this trial ran; its configuration runs again as trial {queued}";
            Insert(transaction, interrupted, "interrupted", null, null, reason);
            Run(transaction, "UPDATE trials SET status = 'Interrupted', reason = $detail, seconds = $seconds WHERE id = $trial",
                ("$trial", interrupted), ("$detail", reason), ("$seconds", seconds));
            Insert(transaction, queued, "queued", null, null, configuration.ToJson());
            Run(transaction, "INSERT INTO trials(id, configuration, status) VALUES($trial, $detail, 'Queued')", ("$trial", queued), ("$detail", configuration.ToJson()));
            transaction.Commit();
        }
    }

    internal void Epoch(int trial, int epoch, double metric, int bestEpoch, double bestMetric, double seconds) =>
        Write(trial, "epoch", epoch, metric, null,
            "UPDATE trials SET epochs = $epoch, best_metric = $best, best_epoch = $bestEpoch, seconds = $seconds WHERE id = $trial",
            ("$best", bestMetric), ("$bestEpoch", bestEpoch), ("$seconds", seconds));

    internal void Finished(int trial, TrialStatus status, string? reason, double seconds) =>
        Write(trial, status.ToString().ToLowerInvariant(), null, null, reason,
            "UPDATE trials SET status = $status, reason = $detail, seconds = $seconds WHERE id = $trial",
            ("$status", status.ToString()), ("$seconds", seconds));

    /// <summary>Every trial, by id, with its epoch metrics.</summary>
    public IReadOnlyList<TrialRecord> Trials(SearchSpace space)
    {
        lock (_gate)
        {
            var metrics = new Dictionary<int, List<double>>();
            using (var command = Command("SELECT trial, metric FROM events WHERE kind = 'epoch' ORDER BY seq"))
            using (var reader = command.ExecuteReader())
                while (reader.Read())
                {
                    int id = reader.GetInt32(0);
                    if (!metrics.TryGetValue(id, out var list))
                        metrics[id] = list = [];
                    list.Add(reader.GetDouble(1));
                }
            var trials = new List<TrialRecord>();
            using (var command = Command("SELECT id, configuration, status, epochs, best_metric, best_epoch, reason, seconds FROM trials ORDER BY id"))
            using (var reader = command.ExecuteReader())
                while (reader.Read())
                {
                    int id = reader.GetInt32(0);
                    trials.Add(new TrialRecord(id, Configuration.FromJson(reader.GetString(1), space), Enum.Parse<TrialStatus>(reader.GetString(2)),
                        reader.GetInt32(3), reader.IsDBNull(4) ? null : reader.GetDouble(4), reader.GetInt32(5),
                        reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetDouble(7), metrics.GetValueOrDefault(id) ?? []));
                }
            return trials;
        }
    }

    /// <summary>The events in order: (sequence, time, trial, kind, epoch, metric, detail).</summary>
    public IReadOnlyList<(long Seq, string Time, int Trial, string Kind, int? Epoch, double? Metric, string? Detail)> Events()
    {
        lock (_gate)
        {
            var events = new List<(long, string, int, string, int?, double?, string?)>();
            using var command = Command("SELECT seq, time, trial, kind, epoch, metric, detail FROM events ORDER BY seq");
            using var reader = command.ExecuteReader();
            while (reader.Read())
                events.Add((reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetDouble(5), reader.IsDBNull(6) ? null : reader.GetString(6)));
            return events;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _connection.Dispose();
        SqliteConnection.ClearAllPools();
    }

    // One transaction per event: the event row and the trial's row change together, and are on disk when this returns.
    private void Write(int trial, string kind, int? epoch, double? metric, string? detail, string trialUpdate, params (string, object?)[] extra)
    {
        lock (_gate)
        {
            using var transaction = _connection.BeginTransaction();
            Insert(transaction, trial, kind, epoch, metric, detail);
            Run(transaction, trialUpdate, [("$trial", trial), ("$epoch", epoch), ("$detail", detail), .. extra]);
            transaction.Commit();
        }
    }

    private void Insert(SqliteTransaction transaction, int trial, string kind, int? epoch, double? metric, string? detail) =>
        Run(transaction, "INSERT INTO events(time, trial, kind, epoch, metric, detail) VALUES($time, $trial, $kind, $epoch, $metric, $detail)",
            ("$time", _clock().ToString("O", CultureInfo.InvariantCulture)), ("$trial", trial), ("$kind", kind), ("$epoch", epoch), ("$metric", metric), ("$detail", detail));

    private void Run(SqliteTransaction transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        command.Transaction = transaction;
        command.ExecuteNonQuery();
    }

    private void Execute(string sql)
    {
        using var command = Command(sql);
        command.ExecuteNonQuery();
    }

    private SqliteCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
            if (sql.Contains(name, StringComparison.Ordinal))
                command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }
}

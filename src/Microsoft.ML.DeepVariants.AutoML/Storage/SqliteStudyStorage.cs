using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Microsoft.ML.DeepVariants.AutoML.Storage;

/// <summary>
/// Studies in a SQLite file, the default: no server, and several worker processes on one machine share it through
/// SQLite's write lock (write-ahead logging, so readers never wait). Not for a file on a network share, whose locks
/// SQLite cannot trust: use PostgreSQL across machines.
/// </summary>
internal sealed class SqliteStudyStorage : RelationalStudyStorage
{
    private readonly string _connectionString;

    public SqliteStudyStorage(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(Path))
            throw new ArgumentException($"The study storage '{Path}' is a folder; expected a SQLite file to create or open.", nameof(path));
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        // A writer waits up to a minute for another process's transaction (each is one short claim or report).
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path, Pooling = true, DefaultTimeout = 60 }.ToString();
        try
        {
            using (var connection = Open())
                Execute(connection, null, "PRAGMA journal_mode=WAL;");
            EnsureSchema(Ddl, HasSchema);
        }
        catch (SqliteException e)
        {
            SqliteConnection.ClearAllPools();
            // SQLITE_NOTADB (26) and SQLITE_CORRUPT (11): the file exists and is something else.
            throw e.SqliteErrorCode is 26 or 11
                ? new InvalidDataException($"The sweep journal '{Path}' is not a SQLite database (SQLite: {e.Message}); give a new file name, or the journal of an earlier sweep.", e)
                : new IOException($"The sweep journal '{Path}' could not be opened (SQLite: {e.Message}).", e);
        }
    }

    public string Path { get; }

    public override string Location => Path;

    // UTC to the millisecond, written with six fraction digits as SQLAlchemy writes and reads a DATETIME (CURRENT_TIMESTAMP
    // has whole seconds only, too coarse for a grace of a few seconds).
    protected override string NowSql => "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')";

    protected override string RowLock => "";

    protected override DbConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        Execute(connection, null, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        return connection;
    }

    // BEGIN IMMEDIATE: the write lock for the whole claim, so two processes never number or claim a trial twice.
    protected override DbTransaction BeginHolding(DbConnection connection, int? studyId) => ((SqliteConnection)connection).BeginTransaction(deferred: false);

    protected override DbTransaction BeginSchemaChange(DbConnection connection) => ((SqliteConnection)connection).BeginTransaction(deferred: false);

    protected override DbTransaction BeginReading(DbConnection connection) => ((SqliteConnection)connection).BeginTransaction(deferred: true);

    // SQLAlchemy's form of a DATETIME in SQLite, which Optuna parses.
    protected override object TimeValue(DateTime local) => local.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture);

    public override void Dispose() => SqliteConnection.ClearPool(new SqliteConnection(_connectionString));

    private bool HasSchema(DbConnection connection, DbTransaction transaction)
    {
        var tables = new HashSet<string>();
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table'";
            using var reader = command.ExecuteReader();
            while (reader.Read())
                tables.Add(reader.GetString(0));
        }
        if (tables.Contains("events") && tables.Contains("sweep") && !tables.Contains("studies"))
            throw new InvalidDataException($"The sweep journal '{Path}' was written by an earlier DeepVariants (tables sweep, trials, events), " +
                "before sweeps kept Optuna's schema; start a new journal file (the old one still opens with any SQLite tool).");
        if (tables.Count > 0 && !tables.Contains("studies"))
            throw new InvalidDataException($"The sweep journal '{Path}' is a SQLite database of something else (tables {string.Join(", ", tables.Order())}); give a new file name.");
        return tables.Contains("studies");
    }

    // Optuna 3.1's tables as SQLAlchemy creates them in SQLite (enums as VARCHAR).
    private static readonly string[] Ddl =
    [
        "CREATE TABLE studies (study_id INTEGER NOT NULL, study_name VARCHAR(512) NOT NULL, PRIMARY KEY (study_id))",
        "CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name)",
        "CREATE TABLE version_info (version_info_id INTEGER NOT NULL, schema_version INTEGER, library_version VARCHAR(256), PRIMARY KEY (version_info_id), CHECK (version_info_id=1))",
        "CREATE TABLE study_directions (study_direction_id INTEGER NOT NULL, direction VARCHAR(8) NOT NULL, study_id INTEGER NOT NULL, objective INTEGER NOT NULL, " +
            "PRIMARY KEY (study_direction_id), UNIQUE (study_id, objective), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE study_user_attributes (study_user_attribute_id INTEGER NOT NULL, study_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (study_user_attribute_id), UNIQUE (study_id, \"key\"), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE study_system_attributes (study_system_attribute_id INTEGER NOT NULL, study_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (study_system_attribute_id), UNIQUE (study_id, \"key\"), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE trials (trial_id INTEGER NOT NULL, number INTEGER, study_id INTEGER, state VARCHAR(8) NOT NULL, datetime_start DATETIME, datetime_complete DATETIME, " +
            "PRIMARY KEY (trial_id), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE trial_user_attributes (trial_user_attribute_id INTEGER NOT NULL, trial_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (trial_user_attribute_id), UNIQUE (trial_id, \"key\"), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_system_attributes (trial_system_attribute_id INTEGER NOT NULL, trial_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (trial_system_attribute_id), UNIQUE (trial_id, \"key\"), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_params (param_id INTEGER NOT NULL, trial_id INTEGER, param_name VARCHAR(512), param_value FLOAT, distribution_json TEXT, " +
            "PRIMARY KEY (param_id), UNIQUE (trial_id, param_name), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_values (trial_value_id INTEGER NOT NULL, trial_id INTEGER NOT NULL, objective INTEGER NOT NULL, value FLOAT, value_type VARCHAR(7) NOT NULL, " +
            "PRIMARY KEY (trial_value_id), UNIQUE (trial_id, objective), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_intermediate_values (trial_intermediate_value_id INTEGER NOT NULL, trial_id INTEGER NOT NULL, step INTEGER NOT NULL, intermediate_value FLOAT, " +
            "intermediate_value_type VARCHAR(7) NOT NULL, PRIMARY KEY (trial_intermediate_value_id), UNIQUE (trial_id, step), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_heartbeats (trial_heartbeat_id INTEGER NOT NULL, trial_id INTEGER NOT NULL, heartbeat DATETIME NOT NULL, " +
            "PRIMARY KEY (trial_heartbeat_id), UNIQUE (trial_id), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    ];
}

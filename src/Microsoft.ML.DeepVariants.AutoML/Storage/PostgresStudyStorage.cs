using System.Data;
using System.Data.Common;
using Npgsql;

namespace Microsoft.ML.DeepVariants.AutoML.Storage;

/// <summary>
/// Studies on a PostgreSQL server (Npgsql), for workers on many machines: a claim holds its study's row
/// (<c>SELECT ... FOR UPDATE</c>) so trials are numbered and claimed once; reports and heartbeats touch only their
/// trial. The schema is Optuna 3.1's as SQLAlchemy creates it in PostgreSQL, enum types included.
/// </summary>
internal sealed class PostgresStudyStorage : RelationalStudyStorage
{
    private readonly NpgsqlDataSource _dataSource;

    public PostgresStudyStorage(string connection)
    {
        var builder = ConnectionString(connection);
        Location = $"postgresql://{builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}";
        _dataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        try
        {
            EnsureSchema(Ddl, (c, t) => Scalar(c, t, "SELECT to_regclass('studies') IS NOT NULL") is true);
        }
        catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            _dataSource.Dispose();
            throw new IOException($"The study storage {Location} could not be reached or set up: {e.Message}", e);
        }
    }

    public override string Location { get; }

    protected override string NowSql => "LOCALTIMESTAMP";

    protected override string RowLock => " FOR UPDATE";

    protected override DbConnection Open() => _dataSource.OpenConnection();

    protected override DbTransaction BeginHolding(DbConnection connection, int? studyId)
    {
        var transaction = connection.BeginTransaction(IsolationLevel.ReadCommitted);
        if (studyId is { } id)
            Scalar(connection, transaction, "SELECT study_id FROM studies WHERE study_id = @s FOR UPDATE", ("@s", id));
        return transaction;
    }

    // One advisory lock number for "this package changes the schema or adds a study", so workers starting together create them once.
    protected override DbTransaction BeginSchemaChange(DbConnection connection)
    {
        var transaction = connection.BeginTransaction(IsolationLevel.ReadCommitted);
        Scalar(connection, transaction, "SELECT pg_advisory_xact_lock(7061757475)");
        return transaction;
    }

    protected override DbTransaction BeginReading(DbConnection connection) => connection.BeginTransaction(IsolationLevel.RepeatableRead);

    protected override object TimeValue(DateTime local) => DateTime.SpecifyKind(local, DateTimeKind.Unspecified);

    public override void Dispose() => _dataSource.Dispose();

    /// <summary>
    /// An Npgsql connection string from SQLAlchemy's URL form, as Optuna takes it (<c>postgresql://user:password@host:port/database</c>,
    /// <c>postgresql+psycopg2://...</c>), or an Npgsql connection string as it is (<c>Host=...;Database=...</c>).
    /// </summary>
    internal static NpgsqlConnectionStringBuilder ConnectionString(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        if (!text.Contains("://", StringComparison.Ordinal))
            return new NpgsqlConnectionStringBuilder(text);
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || !(uri.Scheme is "postgresql" or "postgres" || uri.Scheme.StartsWith("postgresql+", StringComparison.Ordinal)))
            throw new ArgumentException($"'{StudyStorage.Redact(text)}' is not a PostgreSQL URL; expected postgresql://user:password@host:port/database.");
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } database ? database : "postgres",
        };
        if (uri.UserInfo.Length > 0)
        {
            string[] user = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(user[0]);
            if (user.Length == 2)
                builder.Password = Uri.UnescapeDataString(user[1]);
        }
        foreach (string pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] kv = pair.Split('=', 2);
            // libpq's host=/path form names a Unix socket folder.
            string key = Uri.UnescapeDataString(kv[0]), value = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            builder[key == "host" ? "Host" : key] = value;
        }
        return builder;
    }

    // Optuna 3.1's schema as SQLAlchemy 1.4 creates it in PostgreSQL (read from pg_dump of a study Optuna made).
    private static readonly string[] Ddl =
    [
        "DO $$ BEGIN IF to_regtype('studydirection') IS NULL THEN CREATE TYPE studydirection AS ENUM ('NOT_SET', 'MINIMIZE', 'MAXIMIZE'); END IF; END $$",
        "DO $$ BEGIN IF to_regtype('trialstate') IS NULL THEN CREATE TYPE trialstate AS ENUM ('RUNNING', 'COMPLETE', 'PRUNED', 'FAIL', 'WAITING'); END IF; END $$",
        "DO $$ BEGIN IF to_regtype('trialvaluetype') IS NULL THEN CREATE TYPE trialvaluetype AS ENUM ('FINITE', 'INF_POS', 'INF_NEG'); END IF; END $$",
        "DO $$ BEGIN IF to_regtype('trialintermediatevaluetype') IS NULL THEN CREATE TYPE trialintermediatevaluetype AS ENUM ('FINITE', 'INF_POS', 'INF_NEG', 'NAN'); END IF; END $$",
        "CREATE TABLE studies (study_id SERIAL NOT NULL, study_name VARCHAR(512) NOT NULL, PRIMARY KEY (study_id))",
        "CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name)",
        "CREATE TABLE version_info (version_info_id INTEGER NOT NULL, schema_version INTEGER, library_version VARCHAR(256), PRIMARY KEY (version_info_id), CHECK (version_info_id=1))",
        "CREATE TABLE study_directions (study_direction_id SERIAL NOT NULL, direction studydirection NOT NULL, study_id INTEGER NOT NULL, objective INTEGER NOT NULL, " +
            "PRIMARY KEY (study_direction_id), UNIQUE (study_id, objective), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE study_user_attributes (study_user_attribute_id SERIAL NOT NULL, study_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (study_user_attribute_id), UNIQUE (study_id, \"key\"), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE study_system_attributes (study_system_attribute_id SERIAL NOT NULL, study_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (study_system_attribute_id), UNIQUE (study_id, \"key\"), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE trials (trial_id SERIAL NOT NULL, number INTEGER, study_id INTEGER, state trialstate NOT NULL, datetime_start TIMESTAMP WITHOUT TIME ZONE, " +
            "datetime_complete TIMESTAMP WITHOUT TIME ZONE, PRIMARY KEY (trial_id), FOREIGN KEY(study_id) REFERENCES studies (study_id))",
        "CREATE TABLE trial_user_attributes (trial_user_attribute_id SERIAL NOT NULL, trial_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (trial_user_attribute_id), UNIQUE (trial_id, \"key\"), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_system_attributes (trial_system_attribute_id SERIAL NOT NULL, trial_id INTEGER, \"key\" VARCHAR(512), value_json TEXT, " +
            "PRIMARY KEY (trial_system_attribute_id), UNIQUE (trial_id, \"key\"), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_params (param_id SERIAL NOT NULL, trial_id INTEGER, param_name VARCHAR(512), param_value DOUBLE PRECISION, distribution_json TEXT, " +
            "PRIMARY KEY (param_id), UNIQUE (trial_id, param_name), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_values (trial_value_id SERIAL NOT NULL, trial_id INTEGER NOT NULL, objective INTEGER NOT NULL, value DOUBLE PRECISION, value_type trialvaluetype NOT NULL, " +
            "PRIMARY KEY (trial_value_id), UNIQUE (trial_id, objective), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_intermediate_values (trial_intermediate_value_id SERIAL NOT NULL, trial_id INTEGER NOT NULL, step INTEGER NOT NULL, intermediate_value DOUBLE PRECISION, " +
            "intermediate_value_type trialintermediatevaluetype NOT NULL, PRIMARY KEY (trial_intermediate_value_id), UNIQUE (trial_id, step), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE trial_heartbeats (trial_heartbeat_id SERIAL NOT NULL, trial_id INTEGER NOT NULL, heartbeat TIMESTAMP WITHOUT TIME ZONE NOT NULL, " +
            "PRIMARY KEY (trial_heartbeat_id), UNIQUE (trial_id), FOREIGN KEY(trial_id) REFERENCES trials (trial_id))",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    ];
}

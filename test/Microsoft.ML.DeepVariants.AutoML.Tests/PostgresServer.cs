using Npgsql;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

/// <summary>
/// A real PostgreSQL 15 server for the distributed-sweep tests: the one DEEPVARIANTS_POSTGRES names (an Npgsql
/// connection string), or a throw-away cluster that <c>eng/postgres.sh</c> starts on first use and stops when the test
/// run ends. Each test gets a database of its own.
/// </summary>
[TestClass]
public static class PostgresServer
{
    private static readonly Lazy<string> Server = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);
    private static string? _clusterFolder;

    /// <summary>A new, empty database on the server, as an Npgsql connection string.</summary>
    public static string NewDatabase()
    {
        var builder = new NpgsqlConnectionStringBuilder(Server.Value);
        string name = $"t_{Guid.NewGuid():N}";
        using (var connection = new NpgsqlConnection(builder.ConnectionString))
        {
            connection.Open();
            using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            command.ExecuteNonQuery();
        }
        builder.Database = name;
        return builder.ConnectionString;
    }

    /// <summary>The SQLAlchemy URL of a database, as Optuna takes it.</summary>
    public static string Url(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"postgresql://{builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}";
    }

    [AssemblyCleanup]
    public static void StopServer()
    {
        if (_clusterFolder is null)
            return;
        PostgresScript.Run("stop", _clusterFolder);
        _clusterFolder = null;
    }

    private static string Start()
    {
        if (Environment.GetEnvironmentVariable("DEEPVARIANTS_POSTGRES") is { Length: > 0 } given)
            return given;
        string folder = Path.Combine(Path.GetTempPath(), $"dv-pg-{Guid.NewGuid():N}"[..18]);
        string connection = PostgresScript.Run("start", folder).Trim();
        _clusterFolder = folder;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => StopServer();
        return connection;
    }
}

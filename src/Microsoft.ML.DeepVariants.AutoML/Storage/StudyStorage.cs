using System.Text.RegularExpressions;

namespace Microsoft.ML.DeepVariants.AutoML.Storage;

/// <summary>Opens a study storage from the text a user gives, in the forms Optuna takes.</summary>
public static partial class StudyStorage
{
    /// <summary>
    /// Opens (creating the schema when needed) the storage <paramref name="location"/>: <c>postgresql://user:password@host:port/database</c>
    /// (or an Npgsql connection string, <c>Host=...;Database=...</c>) for a PostgreSQL server; <c>sqlite:///path/to/file.db</c>
    /// or a plain file path for SQLite.
    /// </summary>
    /// <example><code>using var storage = StudyStorage.Open("sqlite:///sweeps/fashion.db");</code></example>
    public static IStudyStorage Open(string location)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(location);
        if (location.StartsWith("postgres", StringComparison.OrdinalIgnoreCase) || location.Contains("Host=", StringComparison.OrdinalIgnoreCase))
            return new PostgresStudyStorage(location);
        if (location.StartsWith("sqlite:///", StringComparison.OrdinalIgnoreCase))
            return new SqliteStudyStorage(location["sqlite:///".Length..]);
        if (location.Contains("://", StringComparison.Ordinal))
            throw new ArgumentException($"The study storage '{Redact(location)}' is neither PostgreSQL (postgresql://user@host:port/database) nor SQLite (sqlite:///file.db, or a file path).", nameof(location));
        return new SqliteStudyStorage(location);
    }

    /// <summary><paramref name="location"/> without its password, for messages and logs.</summary>
    public static string Redact(string location) =>
        Password().Replace(UrlPassword().Replace(location, "$1:***@"), "$1***");

    [GeneratedRegex(@"(://[^:/@]+):[^@]*@")]
    private static partial Regex UrlPassword();

    [GeneratedRegex(@"((?:^|;)\s*Password\s*=)[^;]*", RegexOptions.IgnoreCase)]
    private static partial Regex Password();
}

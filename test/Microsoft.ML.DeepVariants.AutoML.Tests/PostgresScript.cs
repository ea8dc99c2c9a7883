using System.Diagnostics;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

/// <summary>Runs <c>eng/postgres.sh</c> (start or stop a throw-away PostgreSQL cluster); the tests and the distributed benchmark share it.</summary>
internal static class PostgresScript
{
    /// <summary>The repository's <c>eng/</c> folder, found from the binaries upwards.</summary>
    public static string EngFolder()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "eng", "postgres.sh")))
                return Path.Combine(folder.FullName, "eng");
        throw new InvalidOperationException($"eng/postgres.sh is not above {AppContext.BaseDirectory}.");
    }

    /// <summary><c>eng/postgres.sh VERB FOLDER</c>; its standard output (for start, the Npgsql connection string).</summary>
    public static string Run(string verb, string folder)
    {
        using var process = Process.Start(new ProcessStartInfo("bash", [Path.Combine(EngFolder(), "postgres.sh"), verb, folder])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"eng/postgres.sh {verb} {folder} failed ({process.ExitCode}): {errors} " +
                "The distributed sweeps need Debian's postgresql; eng/test.sh installs it (eng/postgres.sh install).");
        return output.Result;
    }
}

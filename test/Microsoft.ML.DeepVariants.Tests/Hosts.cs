using System.Diagnostics;
using System.Reflection;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>The console hosts the tests start as processes of their own (see the test project file).</summary>
internal static class Hosts
{
    public static string PlainMLNet => Path("PlainMLNetHost");
    public static string Training => Path("TrainingHost");

    /// <summary>Runs a host to its end and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) Run(string host, IEnumerable<string> arguments, TimeSpan timeout)
    {
        using var process = Start(host, arguments);
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{System.IO.Path.GetFileName(host)} did not finish in {timeout}.");
        }
        return (process.ExitCode, output.Result + errors.Result);
    }

    public static Process Start(string host, IEnumerable<string> arguments)
    {
        Assert.IsTrue(File.Exists(host), $"The host {host} was not built.");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(host);
        foreach (string argument in arguments)
            start.ArgumentList.Add(argument);
        return Process.Start(start)!;
    }

    private static string Path(string key) => typeof(Hosts).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == key).Value!;
}

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.AutoML.Storage;
using Microsoft.ML.DeepVariants.AutoML.Tests;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Coordination throughput of distributed sweeps: 1, 2, 4 and 8 <c>deepvariants sweep</c> worker processes on one
/// study of a throw-away PostgreSQL 15 server (eng/postgres.sh), on the demo task, whose epochs are sleeps, so the
/// cores are not the limit and what is measured is the study's coordination. Trials per minute are counted from the
/// study's own timestamps while every worker is at work (from the last worker's first claim to the first worker's
/// last finish), and over the whole run; each claim and report is timed by the workers (coordination.csv).
/// Written to docs/benchmarks/distributed.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- distributed
/// </summary>
internal static class DistributedBenchmark
{
    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/distributed.md" };
        var trialsPerWorker = new Option<int>("--trials-per-worker") { DefaultValueFactory = _ => 25 };
        var epochMs = new Option<int>("--epoch-ms") { Description = "Milliseconds each demo epoch sleeps (4 epochs a trial).", DefaultValueFactory = _ => 250 };
        var command = new System.CommandLine.Command("distributed", "Distributed sweeps: trials per minute and time per claim and report for 1, 2, 4 and 8 workers on PostgreSQL.")
            { report, trialsPerWorker, epochMs };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(trialsPerWorker), r.GetValue(epochMs)));
        return command;
    }

    private sealed record Run(int Workers, int Trials, double SteadyPerMinute, double WholePerMinute, double Seconds,
        List<double> Claims, List<double> Reports);

    private static int Execute(string reportPath, int trialsPerWorker, int epochMs)
    {
        string cluster = Path.Combine(Path.GetTempPath(), $"dv-pgb-{Guid.NewGuid():N}"[..19]);
        string server = PostgresScript.Run("start", cluster).Trim();
        var runs = new List<Run>();
        try
        {
            foreach (int workers in new[] { 1, 2, 4, 8 })
                runs.Add(Measure(server, workers, trialsPerWorker * workers, epochMs));
        }
        finally
        {
            PostgresScript.Run("stop", cluster);
        }

        double one = runs[0].SteadyPerMinute;
        var table = new Table().AddColumns("workers", "trials", "trials/min (all at work)", "speed-up", "trials/min (whole run)", "claim median ms", "claim p99 ms", "report median ms", "report p99 ms");
        foreach (var r in runs)
            table.AddRow(Cells(r, one));
        AnsiConsole.Write(table);
        var eight = runs.Single(r => r.Workers == 8);
        double speedUp = eight.SteadyPerMinute / one;
        var lines = new List<string>
        {
            "# Distributed sweeps: coordination throughput on PostgreSQL",
            "",
            $"Machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; PostgreSQL 15 (Debian's, a throw-away cluster on this machine, fsync on).",
            $"Task: the demo task (closed-form objective), 4 epochs of {epochMs} ms of sleep per trial, TPE proposals, no early stopping; {trialsPerWorker} trials per worker.",
            "Each worker is a `deepvariants sweep --storage postgresql://... --study NAME` process; all of a row's workers share one study.",
            "Trials per minute come from the study's timestamps: \"all at work\" from the last worker's first claim to the first worker's last finish",
            "(trials cut by the window counted in part), \"whole run\" from the first start to the last finish. Claims (trial numbered, TPE proposal",
            "from every finished trial, lost workers' trials re-queued) and reports (the epoch written, every worker's reports read back for the scheduler)",
            "are timed by the workers themselves.",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- distributed`",
            "",
            "| workers | trials | trials/min (all at work) | speed-up | trials/min (whole run) | claim median ms | claim p99 ms | report median ms | report p99 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        };
        lines.AddRange(runs.Select(r => "| " + string.Join(" | ", Cells(r, one)) + " |"));
        lines.Add("");
        lines.Add(FormattableString.Invariant($"- Target: 8 workers reach at least 7 times the trials per minute of one. Measured: {speedUp:F2} times ({(speedUp >= 7 ? "met" : "missed")})."));
        lines.Add(FormattableString.Invariant($"- The ideal is {1000.0 * 60 / (4 * epochMs):F0} trials per minute per worker (a trial sleeps {4 * epochMs} ms); one worker reaches {one:F1}."));
        BenchmarkReport.Write(reportPath, lines);
        AnsiConsole.MarkupLine(Markup.Escape($"8 workers: {speedUp:F2}x one worker; wrote {reportPath}"));
        return 0;
    }

    private static string[] Cells(Run r, double one) =>
    [
        Text(r.Workers), Text(r.Trials), F(r.SteadyPerMinute, "F1"), F(r.SteadyPerMinute / one, "F2"), F(r.WholePerMinute, "F1"),
        F(CoordinationTimes.Quantile(r.Claims, 0.5)), F(CoordinationTimes.Quantile(r.Claims, 0.99)),
        F(CoordinationTimes.Quantile(r.Reports, 0.5)), F(CoordinationTimes.Quantile(r.Reports, 0.99)),
    ];

    private static Run Measure(string server, int workers, int trials, int epochMs)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(server);
        using (var connection = new Npgsql.NpgsqlConnection(builder.ConnectionString))
        {
            connection.Open();
            using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE bench_{workers}", connection);
            create.ExecuteNonQuery();
        }
        builder.Database = $"bench_{workers}";
        string storage = builder.ConnectionString, tool = Path.Combine(AppContext.BaseDirectory, "deepvariants.dll");
        string folder = Path.Combine(Path.GetTempPath(), $"distributed-benchmark-{Guid.NewGuid():N}");
        AnsiConsole.MarkupLine($"[bold]{workers} worker(s)[/]: {trials} trials ...");
        var clock = Stopwatch.StartNew();
        var processes = Enumerable.Range(0, workers).Select(i => Process.Start(new ProcessStartInfo("dotnet",
            [tool, "sweep", "--task", "demo", "--trials", Text(trials), "--epochs", "4", "--epoch-ms", Text(epochMs), "--early-stopping", "None",
             "--time", "3600", "--storage", storage, "--study", "bench", "--no-refit", "--output", Path.Combine(folder, Text(i))])
            { RedirectStandardOutput = true, RedirectStandardError = true })!).ToList();
        var outputs = processes.Select(p => (Out: p.StandardOutput.ReadToEndAsync(), Err: p.StandardError.ReadToEndAsync())).ToList();
        for (int i = 0; i < workers; i++)
        {
            processes[i].WaitForExit();
            if (processes[i].ExitCode != 0)
                throw new InvalidOperationException($"worker {i} exited with {processes[i].ExitCode}: {outputs[i].Out.Result}{outputs[i].Err.Result}");
        }
        double seconds = clock.Elapsed.TotalSeconds;

        using var store = StudyStorage.Open(storage);
        var stored = store.Trials(store.FindStudy("bench", create: false)!.Value);
        if (stored.Count != trials || stored.Any(t => t.State != StoredState.Complete))
            throw new InvalidOperationException($"{workers} workers left {stored.Count} trials, {stored.Count(t => t.State != StoredState.Complete)} not complete; expected {trials} complete.");
        var byWorker = stored.GroupBy(t => t.UserAttributes["worker"]).ToList();
        DateTime allStarted = byWorker.Max(g => g.Min(t => t.Start!.Value)), firstDone = byWorker.Min(g => g.Max(t => t.Complete!.Value));
        DateTime first = stored.Min(t => t.Start!.Value), last = stored.Max(t => t.Complete!.Value);
        // A trial cut by the window counts for the share of it inside.
        double inside = stored.Sum(t =>
        {
            double overlap = (Min(t.Complete!.Value, firstDone) - Max(t.Start!.Value, allStarted)).TotalSeconds;
            return Math.Max(0, overlap) / (t.Complete!.Value - t.Start!.Value).TotalSeconds;
        });
        double window = (firstDone - allStarted).TotalMinutes;
        var claims = new List<double>();
        var reports = new List<double>();
        foreach (string file in Directory.GetFiles(folder, "coordination.csv", SearchOption.AllDirectories))
            foreach (var cells in File.ReadLines(file).Skip(1).Select(l => l.Split(',')))
                (cells[0] == "claim" ? claims : reports).Add(double.Parse(cells[1], CultureInfo.InvariantCulture));
        var run = new Run(workers, trials, inside / window, stored.Count / (last - first).TotalMinutes, seconds, claims, reports);
        AnsiConsole.WriteLine(FormattableString.Invariant($"{workers} workers: {run.SteadyPerMinute:F1} trials/min while all worked ({window * 60:F1} s), {run.WholePerMinute:F1} over the run, {seconds:F0} s wall"));
        Directory.Delete(folder, recursive: true);
        return run;
    }

    private static DateTime Min(DateTime a, DateTime b) => a < b ? a : b;

    private static DateTime Max(DateTime a, DateTime b) => a > b ? a : b;

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string F(double value, string format = "F1") => value.ToString(format, CultureInfo.InvariantCulture);
}

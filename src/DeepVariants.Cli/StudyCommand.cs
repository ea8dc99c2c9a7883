using System.CommandLine;
using System.Globalization;
using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.AutoML.Storage;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a Command namespace, which would hide System.CommandLine's type inside this namespace.
using Command = System.CommandLine.Command;

// Microsoft.ML has a SearchSpace namespace, which would hide the sweeper's type inside this namespace.
using SearchSpace = Microsoft.ML.DeepVariants.AutoML.SearchSpace;

/// <summary>
/// <c>deepvariants study list|show|export</c>: the studies of any storage (a SQLite journal or a PostgreSQL database),
/// a study's trials as a table or CSV, whichever workers (DeepVariants or Optuna) wrote them.
/// </summary>
internal static class StudyCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var command = new Command("study", "List the studies of a storage, show a study's trials, or export them as CSV.\n" +
            "Examples:\n  deepvariants study list --storage postgresql://sweeper@db-host/sweeps\n  deepvariants study show --journal sweep.db\n" +
            "  deepvariants study export --storage postgresql://sweeper@db-host/sweeps --study fashion-cnn --output trials.csv");
        command.Subcommands.Add(List(console));
        command.Subcommands.Add(Show(console));
        command.Subcommands.Add(Export(console));
        return command;
    }

    /// <summary>"host pid N" from a trial's worker attribute (host:pid:start), for tables.</summary>
    internal static string WorkerName(string? worker) =>
        worker?.Split(':') is [var host, var pid, _] ? $"{host} pid {pid}" : worker ?? "-";

    private static (Option<string> Journal, Option<string?> Storage) StorageOptions() =>
        (new Option<string>("--journal") { Description = "A SQLite journal file.", DefaultValueFactory = _ => "sweep.db" },
         new Option<string?>("--storage") { Description = "A study storage instead: postgresql://user:password@host:port/database or sqlite:///file.db." });

    private static Option<string> StudyOption() =>
        new("--study") { Description = "The study's name.", DefaultValueFactory = _ => SweepJournal.DefaultStudy };

    private static IStudyStorage OpenStorage(ParseResult parse, Option<string> journal, Option<string?> storage)
    {
        if (parse.GetValue(storage) is { } location)
            return StudyStorage.Open(location);
        string path = parse.GetValue(journal)!;
        if (!File.Exists(path))
            throw new UsageException($"--journal: '{path}' does not exist; give the journal a sweep wrote, or --storage.");
        return StudyStorage.Open(path);
    }

    private static Command List(IAnsiConsole console)
    {
        var (journal, storage) = StorageOptions();
        var command = new Command("list", "The studies of a storage, with their trials by state and best value.") { journal, storage };
        command.SetAction(parse =>
        {
            using var store = OpenStorage(parse, journal, storage);
            var table = new Table().AddColumns("study", "trials", "complete", "pruned", "failed", "running", "waiting", "best");
            foreach (string name in store.StudyNames())
            {
                var trials = store.Trials(store.FindStudy(name, create: false)!.Value);
                int Count(StoredState state) => trials.Count(t => t.State == state);
                double? best = trials.Where(t => t.Value is { } v && double.IsFinite(v)).Select(t => t.Value).Max();
                table.AddRow(Markup.Escape(name), Text(trials.Count), Text(Count(StoredState.Complete)), Text(Count(StoredState.Pruned)), Text(Count(StoredState.Fail)),
                    Text(Count(StoredState.Running)), Text(Count(StoredState.Waiting)), best?.ToString("F4", CultureInfo.InvariantCulture) ?? "-");
            }
            console.Write(table);
            console.MarkupLine(Markup.Escape($"storage {store.Location}"));
            return CommandLine.Success;
        });
        return command;
    }

    private static Command Show(IAnsiConsole console)
    {
        var (journal, storage) = StorageOptions();
        var study = StudyOption();
        var top = new Option<int>("--top") { Description = "Trials to show, best first.", DefaultValueFactory = _ => 20 };
        var command = new Command("show", "A study's leaderboard: the best trials, their parameters and workers, and every failed trial with its reason.") { journal, storage, study, top };
        command.SetAction(parse =>
        {
            var result = Read(parse, journal, storage, study);
            console.Write(WithWorkers(result, parse.GetValue(top)));
            console.MarkupLine(Markup.Escape($"{result.Trials.Count} trials: {string.Join(", ", result.Trials.GroupBy(t => t.Status).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}"))}"));
            return CommandLine.Success;
        });
        return command;
    }

    private static Command Export(IAnsiConsole console)
    {
        var (journal, storage) = StorageOptions();
        var study = StudyOption();
        var output = new Option<string>("--output") { Description = "The CSV file to write (through a temporary name).", Required = true };
        var command = new Command("export", "Every trial of a study as CSV: number, status, best value and epoch, epochs, seconds, parameters (JSON), reason, worker.") { journal, storage, study, output };
        command.SetAction(parse =>
        {
            var result = Read(parse, journal, storage, study);
            string path = parse.GetValue(output)!;
            result.WriteCsv(path);
            console.MarkupLine(Markup.Escape($"Wrote {result.Trials.Count} trials to {path}."));
            return CommandLine.Success;
        });
        return command;
    }

    // Any study, whatever space wrote it: parameters are shown as Optuna stores them.
    private static SweepResult Read(ParseResult parse, Option<string> journal, Option<string?> storage, Option<string> study)
    {
        using var store = OpenStorage(parse, journal, storage);
        string name = parse.GetValue(study)!;
        if (store.FindStudy(name, create: false) is null)
            throw new UsageException($"--study: {store.Location} has no study '{name}'; it has {(store.StudyNames() is { Count: > 0 } names ? string.Join(", ", names.Select(n => $"'{n}'")) : "none")}.");
        using var sweepJournal = new SweepJournal(store, name);
        var trials = sweepJournal.Trials(new SearchSpace());
        var all = new SweepResult(trials, null, trials.Sum(t => (long)t.Epochs), TimeSpan.Zero);
        return all with { Best = all.Leaderboard.FirstOrDefault() };
    }

    private static Table WithWorkers(SweepResult result, int rows)
    {
        var table = new Table().AddColumns("rank", "trial", "status", "metric", "epoch", "epochs", "seconds", "worker", "configuration");
        int rank = 0;
        foreach (var t in result.Leaderboard.Take(rows))
            table.AddRow(Text(++rank), Text(t.Id), t.Status.ToString(), t.BestMetric!.Value.ToString("F4", CultureInfo.InvariantCulture), Text(t.BestEpoch),
                Text(t.Epochs), t.Seconds.ToString("F1", CultureInfo.InvariantCulture), Markup.Escape(WorkerName(t.Worker)), Markup.Escape(t.Configuration.ToString()));
        foreach (var t in result.Trials.Where(t => t.Status is TrialStatus.Failed or TrialStatus.Interrupted or TrialStatus.Running or TrialStatus.Queued && !result.Leaderboard.Contains(t)))
            table.AddRow("-", Text(t.Id), t.Status.ToString(), "-", "-", Text(t.Epochs), t.Seconds.ToString("F1", CultureInfo.InvariantCulture),
                Markup.Escape(WorkerName(t.Worker)), Markup.Escape(t.Reason ?? t.Configuration.ToString()));
        return table;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}

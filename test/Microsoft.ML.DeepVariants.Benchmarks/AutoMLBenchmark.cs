using System.CommandLine;
using System.Globalization;
using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.Datasets;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// The sweeper on a Fashion-MNIST slice: the same seeded stream of CNN configurations (random search over
/// <see cref="SearchSpaces.Cnn"/>) run (a) in full and (b) under ASHA; then the same stream with one and with two
/// workers. Written to docs/benchmarks/automl.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- automl
/// </summary>
internal static class AutoMLBenchmark
{
    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/automl.md" };
        var trials = new Option<int>("--trials") { DefaultValueFactory = _ => 27 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 9 };
        var trainRows = new Option<int>("--train-rows") { DefaultValueFactory = _ => 2000 };
        var workerTrials = new Option<int>("--worker-trials") { Description = "Trials of the one- and two-worker runs.", DefaultValueFactory = _ => 12 };
        var command = new System.CommandLine.Command("automl", "Sweeper: full trials against ASHA, one worker against two.") { report, trials, epochs, trainRows, workerTrials };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(trials), r.GetValue(epochs), r.GetValue(trainRows), r.GetValue(workerTrials)));
        return command;
    }

    private static int Execute(string reportPath, int trials, int epochs, int trainRows, int workerTrials)
    {
        NativeAllocator.KeepFreedMemory();
        var ml = new MLContext(seed: 1);
        var images = FashionMnist.Read(FashionMnistSplit.Train, maxRows: trainRows + 1000);
        var keys = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: keys);
        IDataView Keyed(IEnumerable<FashionMnistImage> rows)
        {
            var data = ml.Data.LoadFromEnumerable(rows.ToList());
            return ml.Data.Cache(toKey.Fit(data).Transform(data));
        }
        var train = Keyed(images.Take(trainRows));
        var validation = Keyed(images.Skip(trainRows));
        string folder = Path.Combine(Path.GetTempPath(), $"automl-benchmark-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);

        SweepResult Run(string name, TrialStopping stopping, int count, int maxEpochs, int workers)
        {
            AnsiConsole.MarkupLine($"[bold]{name}[/]: {count} trials of up to {maxEpochs} epochs, {stopping}, {workers} worker(s) ...");
            var settings = new ImageClassificationExperimentSettings
            {
                ImageHeight = 28, ImageWidth = 28, JournalPath = Path.Combine(folder, name + ".db"), MaxTrials = count, EpochsPerTrial = maxEpochs,
                Workers = workers, Seed = 1, Search = SearchAlgorithm.Random, EarlyStopping = stopping, Device = TorchDeviceKind.Cpu,
            };
            using var experiment = ml.DeepVariantsAutoML.CreateImageClassificationExperiment(train, validation, settings);
            var result = experiment.Run();
            AnsiConsole.WriteLine(FormattableString.Invariant(
                $"{name}: best {result.Best?.BestMetric:P2} (trial {result.Best?.Id}), {result.TotalEpochs} epochs, {result.Elapsed.TotalSeconds:F0} s, {result.Trials.Count(t => t.Status == TrialStatus.Failed)} failed"));
            return result;
        }

        var full = Run("full", TrialStopping.None, trials, epochs, 1);
        var asha = Run("asha", TrialStopping.Asha, trials, epochs, 1);
        var one = Run("one-worker", TrialStopping.None, workerTrials, 3, 1);
        var two = Run("two-workers", TrialStopping.None, workerTrials, 3, 2);

        string Row(string name, SweepResult r, string note) => FormattableString.Invariant(
            $"| {name} | {r.Trials.Count} | {r.Trials.Count(t => t.Status == TrialStatus.Pruned)} | {r.Trials.Count(t => t.Status == TrialStatus.Failed)} | {r.TotalEpochs} | {r.Elapsed.TotalSeconds:F0} | {r.Trials.Count / r.Elapsed.TotalMinutes:F2} | {r.Best?.BestMetric * 100:F2} % | {note} |");
        double epochRatio = (double)asha.TotalEpochs / full.TotalEpochs, timeRatio = asha.Elapsed / full.Elapsed;
        double gap = ((full.Best?.BestMetric ?? 0) - (asha.Best?.BestMetric ?? 0)) * 100;
        double speedup = (two.Trials.Count / two.Elapsed.TotalMinutes) / (one.Trials.Count / one.Elapsed.TotalMinutes);
        bool sameStream = full.Trials.Select(t => t.Configuration.ToJson()).SequenceEqual(asha.Trials.Select(t => t.Configuration.ToJson()));
        var lines = new List<string>
        {
            "# AutoML sweeper",
            "",
            $"Fashion-MNIST slice: {trainRows:N0} training and 1,000 validation images; validation accuracy is the metric. {Environment.ProcessorCount} CPU cores.",
            $"The same seeded stream of CNN configurations (random search over `SearchSpaces.Cnn()`, seed 1: family, depth, width, kernel, dropout,",
            "optimizer, learning rate, weight decay, batch size and the family-specific knobs) is run in full and under ASHA (rungs at 1 and 3 epochs,",
            $"reduction factor 3, at most {epochs} epochs); then {workerTrials} configurations of 3 epochs each with one worker (all cores) and two (half the cores each).",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- automl`",
            "",
            "| run | trials | pruned | failed | epochs | seconds | trials per minute | best validation accuracy | note |",
            "|---|---|---|---|---|---|---|---|---|",
            Row("(a) in full", full, $"{epochs} epochs each"),
            Row("(b) ASHA", asha, sameStream ? "same configurations as (a)" : "configurations differ from (a)!"),
            Row("one worker", one, "3 epochs each"),
            Row("two workers", two, "3 epochs each, same configurations"),
            "",
            FormattableString.Invariant($"- ASHA against the full run: best accuracy {gap:+0.00;-0.00} points behind (target: within 1 point), {epochRatio:P1} of the epochs and {timeRatio:P1} of the wall time (target: at most a third of each)."),
            FormattableString.Invariant($"- Two workers against one: {speedup:F2} times the trials per minute (target: at least 1.6)."),
            "",
            "Best configuration in full: " + (full.Best?.Configuration.ToString() ?? "none") + ".",
            "",
            "Best configuration under ASHA: " + (asha.Best?.Configuration.ToString() ?? "none") + ".",
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
        AnsiConsole.WriteLine(string.Join("\n", lines));
        return 0;
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

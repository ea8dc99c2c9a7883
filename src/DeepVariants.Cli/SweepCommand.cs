using System.CommandLine;
using System.Globalization;
using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.AutoML.Storage;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.DeepVariants.Tabular;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a Command namespace, which would hide System.CommandLine's type inside this namespace.
using Command = System.CommandLine.Command;

// Microsoft.ML has a SearchSpace namespace, which would hide the sweeper's type inside this namespace.
using SearchSpace = Microsoft.ML.DeepVariants.AutoML.SearchSpace;

/// <summary>
/// <c>deepvariants sweep</c>: Model Builder-style sweeps of architectures and hyperparameters within a time budget,
/// with early stopping, a resumable journal and a live leaderboard.
/// </summary>
internal static class SweepCommand
{
    private const string DataSetting = "cli.data";

    public static Command Create(IAnsiConsole console)
    {
        var task = new Option<string>("--task") { Description = "auto (from --train: a folder of images, a .ts file or a CSV), image-classification, sequence-classification, tabular, or demo (a closed-form objective, no data).", DefaultValueFactory = _ => "auto" };
        var train = new Option<string?>("--train") { Description = "Training data: a folder with one folder of images per class, a UEA/UCR .ts file, or a CSV with a header row." };
        var validation = new Option<string?>("--validation") { Description = "Validation data, as --train; 20% of the training data when left out." };
        var label = new Option<string>("--label") { Description = "A CSV's label column. Example: --label price", DefaultValueFactory = _ => "Label" };
        var tableTask = new Option<TableTask>("--table-task") { Description = "A CSV's task: Auto (regression for a numeric label), Classification or Regression.", DefaultValueFactory = _ => TableTask.Auto };
        var time = new Option<int>("--time") { Description = "Wall-time budget in seconds: the sweep's limit. Example: --time 3600", DefaultValueFactory = _ => 600 };
        var trials = new Option<int?>("--trials") { Description = "Trials at most; no limit but the time when left out." };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per trial at most.", DefaultValueFactory = _ => 9 };
        var maxEpochs = new Option<long?>("--max-epochs") { Description = "Epochs over all trials at most." };
        var workers = new Option<int>("--workers") { Description = "Trials run at once; the cores are shared out between them.", DefaultValueFactory = _ => 1 };
        var journal = new Option<string>("--journal") { Description = "The SQLite journal; running again on it resumes, on the same training data. Several sweeps on one machine may share it.", DefaultValueFactory = _ => "sweep.db" };
        var storage = new Option<string?>("--storage") { Description = "A study storage instead of --journal, shared by workers on any number of machines: postgresql://user:password@host:port/database (or sqlite:///file.db). Optuna 3.1 reads it." };
        var study = new Option<string>("--study") { Description = "The study's name in the storage: every worker started with the same --storage and --study works on one sweep.", DefaultValueFactory = _ => SweepJournal.DefaultStudy };
        var heartbeat = new Option<double>("--heartbeat") { Description = "Seconds between a running trial's heartbeats.", DefaultValueFactory = _ => 10 };
        var grace = new Option<double>("--grace") { Description = "Seconds without a heartbeat after which a worker is taken for lost: its trial fails and its configuration runs again.", DefaultValueFactory = _ => 60 };
        var retries = new Option<int>("--retries") { Description = "Times one configuration runs again after its worker was lost.", DefaultValueFactory = _ => 3 };
        var resume = new Option<bool>("--resume") { Description = "Continue a journal even though it was written for other training data." };
        var output = new Option<string>("--output") { Description = "Folder for model.zip, model.json, leaderboard.csv and coordination.csv (each call to the study storage, timed).", DefaultValueFactory = _ => "sweep-output" };
        var plots = new Option<string?>("--plots") { Description = "Folder for sweep-best-so-far.png. Example: --plots plots" };
        var seed = new Option<int>("--seed") { Description = "Seed for the proposals, the trials' weights and the validation split: the same seed proposes the same trials.", DefaultValueFactory = _ => 1 };
        var search = new Option<SearchAlgorithm>("--search") { Description = "How trials are proposed: Tpe (learns from the finished trials) or Random.", DefaultValueFactory = _ => SearchAlgorithm.Tpe };
        var stopping = new Option<TrialStopping>("--early-stopping") { Description = "How bad trials stop early: Asha (successive halving by rungs of epochs), Median or None.", DefaultValueFactory = _ => TrialStopping.Asha };
        var size = new Option<int>("--image-size") { Description = "Images are resized to this many pixels square.", DefaultValueFactory = _ => 28 };
        var rgb = new Option<bool>("--rgb") { Description = "Keep colour (3 channels) instead of grayscale." };
        var corrupt = new Option<CorruptImages>("--on-corrupt") { Description = "An image that does not decode: Fail or Skip.", DefaultValueFactory = _ => CorruptImages.Fail };
        var epochDelay = new Option<int>("--epoch-ms") { Description = "Demo task: milliseconds per epoch.", DefaultValueFactory = _ => 50, Hidden = true };
        var demoFail = new Option<bool>("--demo-fail") { Description = "Demo task: every trial fails.", Hidden = true };
        var noRefit = new Option<bool>("--no-refit") { Description = "Skip refitting the best configuration at the end." };

        var command = new Command("sweep", "Search architectures and hyperparameters within a time budget, with early stopping, a resumable journal and a live leaderboard.\n" +
            "Examples:\n  deepvariants sweep --train images/ --time 1800\n  deepvariants sweep --train diamonds.csv --label price --time 600 --plots plots")
        {
            task, train, validation, label, tableTask, time, trials, epochs, maxEpochs, workers, journal, storage, study, heartbeat, grace, retries, resume, output, plots, seed, search, stopping, size, rgb, corrupt, epochDelay, demoFail, noRefit,
        };
        // Started on the thread pool, so the invocation is under way (and Ctrl+C cancels its token) while the sweep runs.
        command.SetAction((parse, cancellation) => Task.Run(() => Run(parse, cancellation), CancellationToken.None));
        return command;

        Task<int> Run(ParseResult parse, CancellationToken cancellation)
        {
            int seconds = parse.GetValue(time);
            if (seconds <= 0)
                throw new UsageException($"--time must be a number of seconds above zero, got {seconds}.");
            if (parse.GetValue(trials) is <= 0)
                throw new UsageException($"--trials must be 1 or more, got {parse.GetValue(trials)}.");
            if (parse.GetValue(epochs) <= 0)
                throw new UsageException($"--epochs must be 1 or more, got {parse.GetValue(epochs)}.");
            if (parse.GetValue(workers) <= 0)
                throw new UsageException($"--workers must be 1 or more, got {parse.GetValue(workers)}.");
            string folder = parse.GetValue(output)!, journalPath = parse.GetValue(journal)!;
            TrainCommand.RequireFolder(folder, "--output");
            if (parse.GetValue(plots) is { } plotFolder)
                TrainCommand.RequireFolder(plotFolder, "--plots");
            if (Directory.Exists(journalPath))
                throw new UsageException($"--journal: '{journalPath}' is a folder; expected the SQLite file to write or resume.");
            if (parse.GetValue(storage) is not null && parse.GetResult(journal) is { Implicit: false })
                throw new UsageException("--journal and --storage both name where the study lives; give one of them.");
            string location = parse.GetValue(storage) ?? journalPath, studyName = parse.GetValue(study)!;
            if (string.IsNullOrWhiteSpace(studyName))
                throw new UsageException("--study must name a study, for example --study fashion-cnn.");
            if (parse.GetValue(heartbeat) is var beat && !(beat > 0))
                throw new UsageException($"--heartbeat must be a number of seconds above zero, got {beat}.");
            if (parse.GetValue(grace) is var wait && !(wait > beat))
                throw new UsageException($"--grace must be longer than --heartbeat ({beat} s), or live workers would be taken for lost; got {wait}.");
            if (parse.GetValue(retries) < 0)
                throw new UsageException($"--retries must be 0 or more, got {parse.GetValue(retries)}.");

            var ml = new MLContext(parse.GetValue(seed));
            NativeAllocator.KeepFreedMemory();
            string taskName = parse.GetValue(task)!;
            string? trainPath = parse.GetValue(train);
            if (taskName != "demo" && trainPath is null)
                throw new UsageException($"--train is needed for task '{taskName}'.");
            var kind = trainPath is null ? SourceKind.Table : DataSources.KindOf(trainPath, "--train");
            taskName = taskName == "auto"
                ? kind switch { SourceKind.Images => "image-classification", SourceKind.Series => "sequence-classification", _ => "tabular" }
                : taskName;
            var (space, runner) = taskName switch
            {
                "demo" => (DemoTrialRunner.Space(), (ITrialRunner)new DemoTrialRunner(parse.GetValue(epochDelay), parse.GetValue(demoFail))),
                "image-classification" => Images(ml, trainPath!, parse.GetValue(validation), parse.GetValue(size), parse.GetValue(rgb), parse.GetValue(corrupt), console),
                "sequence-classification" => Sequences(ml, trainPath!, parse.GetValue(validation)),
                "tabular" => Table(ml, trainPath!, parse.GetValue(validation), parse.GetValue(label)!, parse.GetValue(tableTask)),
                var other => throw new UsageException($"--task: unknown task '{other}'; expected auto, image-classification, sequence-classification, tabular or demo."),
            };
            string fingerprint = $"{taskName}:{(trainPath is null ? "-" : DataSources.Fingerprint(trainPath))}";
            CheckJournal(location, parse.GetValue(storage) is null ? "--journal" : "--storage", studyName, fingerprint, parse.GetValue(resume));

            var settings = new ExperimentSettings
            {
                JournalPath = journalPath, Storage = parse.GetValue(storage), Study = studyName,
                HeartbeatInterval = TimeSpan.FromSeconds(beat), HeartbeatGrace = TimeSpan.FromSeconds(wait), MaxRetries = parse.GetValue(retries),
                MaxTrials = parse.GetValue(trials) ?? int.MaxValue, EpochsPerTrial = parse.GetValue(epochs),
                MaxTotalEpochs = parse.GetValue(maxEpochs), MaxTime = TimeSpan.FromSeconds(seconds),
                Workers = parse.GetValue(workers), Seed = parse.GetValue(seed), Search = parse.GetValue(search), EarlyStopping = parse.GetValue(stopping),
                CancellationToken = cancellation,
            };
            using var experiment = ml.DeepVariantsAutoML.CreateExperiment(space, runner, settings);
            experiment.Journal.SetSetting(DataSetting, fingerprint);
            var result = RunWithLeaderboard(experiment, settings, console);
            console.Write(result.ToTable());
            result.WriteCsv(Path.Combine(folder, "leaderboard.csv"));   // through a temporary name
            console.MarkupLine(Markup.Escape($"{result.Trials.Count} trials, {result.TotalEpochs} epochs in all, {result.Elapsed.TotalSeconds:F0} s; study '{experiment.Journal.Study}' in {experiment.Journal.Path}"));
            console.MarkupLine(Markup.Escape($"coordination: {result.Coordination}"));
            result.Coordination.WriteCsv(Path.Combine(folder, "coordination.csv"));
            if (parse.GetValue(plots) is { } plotsFolder && result.Trials.Count > 0)
            {
                string picture = Path.Combine(plotsFolder, "sweep-best-so-far.png");
                SweepPlots.WriteBestSoFar(picture, result);
                console.MarkupLine(Markup.Escape($"Plotted {picture}."));
            }
            if (cancellation.IsCancellationRequested)
            {
                // Ctrl+C: the trial in flight is interrupted and waits in the study for the next worker; no refit.
                console.MarkupLine($"[yellow]cancelled:[/] {Markup.Escape($"the trial in flight waits in study '{experiment.Journal.Study}' for the next worker")}");
                return Task.FromResult(CommandLine.Cancelled);
            }
            if (result.Trials.Count > 0 && result.Trials.All(t => t.Status == TrialStatus.Failed))
            {
                var reasons = result.Trials.Select(t => t.Reason ?? "no reason kept").GroupBy(r => r).OrderByDescending(g => g.Count()).Take(3);
                console.MarkupLine($"[red]failed:[/] {Markup.Escape($"every one of the {result.Trials.Count} trials failed: {string.Join("; ", reasons.Select(g => $"{g.Count()} x {g.Key}"))}")}");
                return Task.FromResult(CommandLine.Failed);
            }
            if (result.Best is { } best && !parse.GetValue(noRefit))
            {
                // The demo task has no ML.NET model; its refit writes a one-line description.
                string model = Path.Combine(folder, taskName == "demo" ? "model.txt" : "model.zip");
                console.MarkupLine(Markup.Escape($"Refitting trial {best.Id} on training plus validation data for {best.BestEpoch} epoch(s) ..."));
                experiment.RefitBest(result, model);
                console.MarkupLine(Markup.Escape($"Saved {model} and {Path.ChangeExtension(model, ".json")}"));
            }
            return Task.FromResult(CommandLine.Success);
        }
    }

    // A study keeps the trials of one problem: resuming it on other data would rank new trials against scores they cannot be compared with.
    private static void CheckJournal(string location, string option, string study, string fingerprint, bool resume)
    {
        if (!location.Contains("://", StringComparison.Ordinal) && !location.Contains('=', StringComparison.Ordinal) && !File.Exists(location))
            return;
        string? recorded;
        using (var journal = SweepJournal.Open(location, study))
            recorded = journal.GetSetting(DataSetting);
        if (recorded is not null && recorded != fingerprint && !resume)
            throw new UsageException($"{option}: '{StudyStorage.Redact(location)}'{(study == SweepJournal.DefaultStudy ? "" : $" (study '{study}')")} was written for " +
                $"other training data or another task ({recorded}, now {fingerprint}); pass a new {option} or --study, or --resume to continue it anyway.");
    }

    private static SweepResult RunWithLeaderboard(SweepExperiment experiment, ExperimentSettings settings, IAnsiConsole console)
    {
        if (!console.Profile.Capabilities.Interactive)
        {
            settings.OnEvent = e =>
            {
                if (e.Kind is not ("epoch" or "proposed"))
                    console.WriteLine($"trial {e.TrialId}: {e.Kind}{(e.Detail is null ? "" : $" ({e.Detail})")}");
            };
            return experiment.Run();
        }
        // The live table is the study's, read from the storage: every worker's trials, and which worker runs which.
        SweepResult? result = null;
        var table = new Table().AddColumns("trial", "status", "best", "epochs", "worker");
        var gate = new object();
        var refreshed = System.Diagnostics.Stopwatch.StartNew();
        console.Live(table).Start(live =>
        {
            settings.OnEvent = e =>
            {
                lock (gate)
                {
                    if (e.Kind == "epoch" && refreshed.ElapsedMilliseconds < 500)
                        return;
                    refreshed.Restart();
                    var trials = experiment.Journal.Trials(experiment.Space);
                    table.Rows.Clear();
                    foreach (var t in trials.OrderBy(t => t.Status == TrialStatus.Running ? 0 : 1).ThenByDescending(t => t.BestMetric ?? double.NegativeInfinity).Take(15))
                        table.AddRow(t.Id.ToString(CultureInfo.InvariantCulture), t.Status.ToString(), t.BestMetric?.ToString("F4", CultureInfo.InvariantCulture) ?? "-",
                            t.Epochs.ToString(CultureInfo.InvariantCulture), Markup.Escape(StudyCommand.WorkerName(t.Worker)));
                    live.Refresh();
                }
            };
            result = experiment.Run();
        });
        return result!;
    }

    private static (SearchSpace, ITrialRunner) Images(MLContext ml, string trainFolder, string? validationFolder, int size, bool rgb, CorruptImages corrupt, IAnsiConsole console)
    {
        // The sweep's refit appends training and validation rows by key, so the label is keyed in front of the images.
        var preprocessing = ml.Transforms.Conversion.MapValueToKey("Label").Append(TrainCommand.ImagePipeline(ml, size, rgb));
        var rawTrain = ml.Data.LoadFromEnumerable(DataSources.Images(trainFolder, "--train", labelled: true, corrupt, console));
        IDataView rawValidation;
        if (validationFolder is null)
            (rawTrain, rawValidation) = Split(ml, rawTrain);
        else
            rawValidation = ml.Data.LoadFromEnumerable(DataSources.Images(validationFolder, "--validation", labelled: true, corrupt, console));
        var fitted = preprocessing.Fit(rawTrain);
        var trainData = ml.Data.Cache(fitted.Transform(rawTrain));
        var validationData = ml.Data.Cache(fitted.Transform(rawValidation));
        var runner = new CnnTrialRunner(ml, trainData, validationData, size, size, rgb ? 3 : 1, preprocessing: fitted, inputSchema: rawTrain.Schema);
        return (SearchSpaces.Cnn(), runner);
    }

    private static (SearchSpace, ITrialRunner) Sequences(MLContext ml, string trainFile, string? validationFile)
    {
        var problem = DataSources.Series(trainFile, "--train", labelled: true);
        IDataView trainData = TimeSeriesFile.ToDataView(ml, problem), validationData;
        if (validationFile is null)
            (trainData, validationData) = Split(ml, trainData);
        else
            validationData = TimeSeriesFile.ToDataView(ml, DataSources.Series(validationFile, "--validation", labelled: false));
        return (SearchSpaces.Sequence(), new SequenceTrialRunner(ml, trainData, validationData, problem.Dimensions));
    }

    private static (SearchSpace, ITrialRunner) Table(MLContext ml, string trainFile, string? validationFile, string label, TableTask task)
    {
        var problem = TableProblem.Read(ml, trainFile, validationFile, label, task, "--train", "--table-task");
        var (train, validation) = problem.Validation is { } given ? (problem.Train, given) : Split(ml, problem.Train);
        return (SearchSpaces.Tabular(), new TabularTrialRunner(ml, train, validation, problem.Columns));
    }

    // 20 % of the training data validates the trials when no validation data is given.
    private static (IDataView Train, IDataView Validation) Split(MLContext ml, IDataView data)
    {
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: 1);
        return (split.TrainSet, split.TestSet);
    }
}

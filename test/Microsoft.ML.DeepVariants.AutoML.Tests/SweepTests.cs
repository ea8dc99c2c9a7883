using System.Diagnostics;
using Microsoft.ML.DeepVariants.AutoML;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

[TestClass]
[DoNotParallelize]
public sealed class SweepTests
{
    public TestContext TestContext { get; set; } = null!;

    private string NewJournalPath() =>
        Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"sweep-{Guid.NewGuid():N}.db");

    private static SweepResult RunSweep(string journalPath, ITrialRunner runner, ITrialScheduler scheduler, SweepSettings settings, IProposer? proposer = null)
    {
        var space = SyntheticRunner.Space();
        using var journal = new SweepJournal(journalPath);
        return new Sweep(space, runner, proposer ?? new TpeProposer(space, settings.Seed) { StartupTrials = 5 }, scheduler, journal, settings).Run();
    }

    // Every trial as the journal keeps it, without times: number, status, configuration, epoch metrics and reason.
    internal static List<string> JournalWithoutTimes(string path, SearchSpace? space = null)
    {
        using var journal = new SweepJournal(path);
        return journal.Trials(space ?? SyntheticRunner.Space())
            .Select(t => $"{t.Id}|{t.Status}|{t.Configuration.ToJson()}|{string.Join(",", t.EpochMetrics.Select(m => m.ToString("R")))}|{t.BestEpoch}|{t.Reason}").ToList();
    }

    [TestMethod]
    public void ASeededSweepRunTwiceWritesTheSameJournal()
    {
        string first = NewJournalPath(), second = NewJournalPath();
        var settings = new SweepSettings { MaxTrials = 15, EpochsPerTrial = 9, Seed = 7 };
        RunSweep(first, new SyntheticRunner(), new AshaScheduler(), settings);
        RunSweep(second, new SyntheticRunner(), new AshaScheduler(), settings);

        var a = JournalWithoutTimes(first);
        var b = JournalWithoutTimes(second);
        Assert.AreEqual(15, a.Count, "the journal records every trial");
        Assert.IsGreaterThan(15, a.Sum(line => line.Split('|')[3].Split(',').Length), "and every epoch it reported");
        CollectionAssert.AreEqual(a, b, "the same seed gives the same journal apart from timestamps");
        string third = NewJournalPath();
        RunSweep(third, new SyntheticRunner(), new AshaScheduler(), new SweepSettings { MaxTrials = 15, EpochsPerTrial = 9, Seed = 8 });
        CollectionAssert.AreNotEqual(a, JournalWithoutTimes(third), "another seed proposes other trials");
    }

    [TestMethod]
    public void AshaPrunesTrialsAndSpendsFewerEpochsThanRunningThemInFull()
    {
        var space = SyntheticRunner.Space();
        var settings = new SweepSettings { MaxTrials = 27, EpochsPerTrial = 9, Seed = 3 };
        var full = RunSweep(NewJournalPath(), new SyntheticRunner(), new NoEarlyStopping(), settings, new RandomSearchProposer(space, 3));
        var asha = RunSweep(NewJournalPath(), new SyntheticRunner(), new AshaScheduler { MinEpochs = 1, ReductionFactor = 3 }, settings, new RandomSearchProposer(space, 3));

        TestContext.WriteLine($"full: {full.TotalEpochs} epochs, best {full.Best!.BestMetric:F4}; ASHA: {asha.TotalEpochs} epochs, best {asha.Best!.BestMetric:F4}, {asha.Trials.Count(t => t.Status == TrialStatus.Pruned)} pruned");
        Assert.AreEqual(27 * 9, full.TotalEpochs);
        Assert.IsLessThan(full.TotalEpochs / 2, asha.TotalEpochs, "ASHA stops most trials at its rungs");
        Assert.IsGreaterThan(10, asha.Trials.Count(t => t.Status == TrialStatus.Pruned));
        CollectionAssert.AreEqual(full.Trials.Select(t => t.Configuration.ToJson()).ToList(), asha.Trials.Select(t => t.Configuration.ToJson()).ToList(),
            "random search proposes the same stream either way");
        Assert.IsTrue(asha.Trials.Where(t => t.Status == TrialStatus.Pruned).All(t => t.Epochs is 1 or 3 && t.Reason!.Contains("ASHA rung")));
        Assert.IsGreaterThan(full.Best.BestMetric!.Value - 0.05, asha.Best.BestMetric!.Value, "the best trial survives the rungs");
    }

    [TestMethod]
    public void MedianRuleStopsTrialsBelowTheMedian()
    {
        var result = RunSweep(NewJournalPath(), new SyntheticRunner(), new MedianStoppingRule { GraceEpochs = 1, MinTrials = 3 },
            new SweepSettings { MaxTrials = 20, EpochsPerTrial = 6, Seed = 5 }, new RandomSearchProposer(SyntheticRunner.Space(), 5));
        var pruned = result.Trials.Where(t => t.Status == TrialStatus.Pruned).ToList();
        Assert.IsNotEmpty(pruned);
        Assert.IsTrue(pruned.All(t => t.Reason!.Contains("median rule") && t.Epochs >= 2));
    }

    [TestMethod]
    public void AThrowingTrialIsRecordedAsFailedAndTheSweepCompletes()
    {
        var runner = new SyntheticRunner { Fails = c => c.GetString("kind") == "b" };
        var result = RunSweep(NewJournalPath(), runner, new NoEarlyStopping(), new SweepSettings { MaxTrials = 12, EpochsPerTrial = 3, Seed = 2 },
            new RandomSearchProposer(SyntheticRunner.Space(), 2));
        var failed = result.Trials.Where(t => t.Status == TrialStatus.Failed).ToList();
        Assert.AreEqual(12, result.Trials.Count, "the sweep goes on after a failure");
        Assert.IsNotEmpty(failed);
        Assert.IsTrue(failed.All(t => t.Configuration.GetString("kind") == "b" && t.Reason == "InvalidOperationException: Training stopped: the loss became NaN at epoch 2, batch 1." && t.Epochs == 1));
        Assert.IsTrue(result.Trials.Where(t => t.Configuration.GetString("kind") != "b").All(t => t.Status == TrialStatus.Completed));
        Assert.IsFalse(result.Leaderboard.Any(t => t.Status == TrialStatus.Failed), "failed trials are not ranked");
        Assert.AreEqual(Math.Min(10, result.Leaderboard.Count) + failed.Count, result.ToTable().Rows.Count, "the table lists failed trials with their reason");
    }

    [TestMethod]
    public void ConditionalParametersAppearOnlyWhenTheirConditionHolds()
    {
        var space = SyntheticRunner.Space();
        var random = new Random(1);
        var samples = Enumerable.Range(0, 300).Select(_ => space.Sample(random)).ToList();
        Assert.IsTrue(samples.All(c => c.Has("width3") == (c.GetInt("depth") >= 3)));
        Assert.IsTrue(samples.Any(c => c.Has("width3")) && samples.Any(c => !c.Has("width3")));
        Assert.IsTrue(samples.Where(c => c.Has("width3")).All(c => c.GetInt("width3") is >= 8 and <= 64));

        // TPE's proposals keep to the conditions too, and so does the CNN space.
        var result = RunSweep(NewJournalPath(), new SyntheticRunner(), new NoEarlyStopping(), new SweepSettings { MaxTrials = 25, EpochsPerTrial = 2, Seed = 4 });
        Assert.IsTrue(result.Trials.All(t => t.Configuration.Has("width3") == (t.Configuration.GetInt("depth") >= 3)));
        var cnn = SearchSpaces.Cnn();
        foreach (var c in Enumerable.Range(0, 200).Select(_ => cnn.Sample(random)))
        {
            Assert.AreEqual(c.GetString("family") == "DenseNet", c.Has("growthRate"));
            Assert.AreEqual(c.GetString("family") == "ResNet", c.Has("bottleneck"));
            Assert.AreEqual(c.GetString("optimizer") == "Sgd", c.Has("momentum"));
            Assert.AreEqual(c.ToJson(), Configuration.FromJson(c.ToJson(), cnn).ToJson(), "configurations round-trip through JSON");
        }
    }

    [TestMethod]
    public void BudgetsOfEpochsAndTimeAndCancellationAreKept()
    {
        var epochs = RunSweep(NewJournalPath(), new SyntheticRunner(), new NoEarlyStopping(), new SweepSettings { MaxTrials = 50, EpochsPerTrial = 5, MaxTotalEpochs = 23 });
        Assert.AreEqual(23, epochs.TotalEpochs);
        Assert.AreEqual(TrialStatus.Stopped, epochs.Trials[^1].Status);

        const int epochMs = 100;
        var clock = Stopwatch.StartNew();
        var timed = RunSweep(NewJournalPath(), new SyntheticRunner { EpochMilliseconds = epochMs }, new NoEarlyStopping(),
            new SweepSettings { MaxTrials = 50, EpochsPerTrial = 5, MaxTime = TimeSpan.FromMilliseconds(1000) });
        TestContext.WriteLine($"time budget 1,000 ms: took {clock.ElapsedMilliseconds} ms, {timed.TotalEpochs} epochs");
        Assert.IsLessThan(1000 + epochMs + 400, clock.ElapsedMilliseconds, "the sweep overshoots its time by at most one epoch (plus bookkeeping)");
        Assert.IsTrue(timed.Trials[^1].Status is TrialStatus.Stopped or TrialStatus.Completed);

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(750));
        var cancelled = RunSweep(NewJournalPath(), new SyntheticRunner { EpochMilliseconds = epochMs }, new NoEarlyStopping(),
            new SweepSettings { MaxTrials = 50, EpochsPerTrial = 5, CancellationToken = cancel.Token });
        Assert.IsLessThan(50, cancelled.Trials.Count);
        // The token fires mid-trial as a rule; on a busy machine it can fall between two trials, and then none is stopped.
        // A cancelled trial is interrupted, and its configuration waits in the journal for the next run.
        var interrupted = cancelled.Trials.Where(t => t.Status == TrialStatus.Interrupted).ToList();
        if (interrupted.Count == 1)
        {
            StringAssert.StartsWith(interrupted[0].Reason, "the sweep was cancelled");
            var queued = cancelled.Trials.Single(t => t.Status == TrialStatus.Queued);
            Assert.AreEqual(interrupted[0].Configuration.ToJson(), queued.Configuration.ToJson());
        }
        else
            Assert.AreEqual(TrialStatus.Completed, cancelled.Trials[^1].Status, "a cancelled sweep's last trial is interrupted, or completed just before the token fired");
    }

    [TestMethod]
    public void TwoWorkersRunTrialsSideBySideWithoutRepeatingIds()
    {
        var runner = new SyntheticRunner { EpochMilliseconds = 20 };
        int threads = TorchSharp.torch.get_num_threads();
        var result = RunSweep(NewJournalPath(), runner, new NoEarlyStopping(), new SweepSettings { MaxTrials = 10, EpochsPerTrial = 3, Workers = 2 });
        Assert.AreEqual(threads, TorchSharp.torch.get_num_threads(), "the sweep gives the process its thread count back");
        Assert.AreEqual(2, runner.MaxConcurrency);
        Assert.AreEqual(10, result.Trials.Count);
        CollectionAssert.AllItemsAreUnique(runner.TrialsRun);
        Assert.IsTrue(result.Trials.All(t => t.Status == TrialStatus.Completed && t.Epochs == 3));
    }

    [TestMethod]
    public void AJournalWrittenForAnotherSpaceIsRefused()
    {
        string path = NewJournalPath();
        RunSweep(path, new SyntheticRunner(), new NoEarlyStopping(), new SweepSettings { MaxTrials = 2, EpochsPerTrial = 1 });
        var other = new SearchSpace();
        other.Uniform("y", 0, 1);
        using var journal = new SweepJournal(path);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            new Sweep(other, new SyntheticRunner(), new RandomSearchProposer(other, 1), new NoEarlyStopping(), journal, new SweepSettings()).Run());
        StringAssert.Contains(e.Message, "different search space");
    }

    [TestMethod]
    public void AKilledSweepResumesKeepingEveryCompletedTrialWithoutRepeatingIds()
    {
        string journalPath = NewJournalPath();
        string tool = Path.Combine(AppContext.BaseDirectory, "deepvariants.dll");
        Assert.IsTrue(File.Exists(tool), $"the command-line tool is built next to the tests: {tool}");
        string arguments = $"\"{tool}\" sweep --task demo --trials 10 --epochs 4 --epoch-ms 150 --early-stopping None --journal \"{journalPath}\" --no-refit --output \"{journalPath}.out\"";

        using (var process = Process.Start(new ProcessStartInfo("dotnet", arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!)
        {
            // Kill the process (no polite cancel) once three trials have completed and a fourth is under way.
            var clock = Stopwatch.StartNew();
            while (CountCompleted(journalPath) < 3 && clock.Elapsed < TimeSpan.FromSeconds(60))
                Thread.Sleep(50);
            Thread.Sleep(250);
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        List<TrialRecord> before;
        using (var journal = new SweepJournal(journalPath))
            before = journal.Trials(Microsoft.ML.DeepVariants.Cli.DemoTrialRunner.Space()).ToList();
        var completedBefore = before.Where(t => t.Status == TrialStatus.Completed).ToList();
        Assert.IsGreaterThanOrEqualTo(3, completedBefore.Count);
        Assert.IsTrue(before.Any(t => t.Status == TrialStatus.Running), "the kill left a trial running");

        using (var process = Process.Start(new ProcessStartInfo("dotnet", arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!)
        {
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            Assert.AreEqual(0, process.ExitCode, output + process.StandardError.ReadToEnd());
        }
        using (var journal = new SweepJournal(journalPath))
        {
            var after = journal.Trials(Microsoft.ML.DeepVariants.Cli.DemoTrialRunner.Space());
            CollectionAssert.AllItemsAreUnique(after.Select(t => t.Id).ToList());
            foreach (var done in completedBefore)
            {
                var same = after.Single(t => t.Id == done.Id);
                Assert.AreEqual(TrialStatus.Completed, same.Status);
                CollectionAssert.AreEqual(done.EpochMetrics.ToList(), same.EpochMetrics.ToList(), $"trial {done.Id} is kept, not run again");
                Assert.AreEqual(1, after.Count(t => t.Configuration.ToJson() == done.Configuration.ToJson()), "no completed configuration runs twice");
            }
            var interrupted = after.Where(t => t.Status == TrialStatus.Interrupted).ToList();
            Assert.IsNotEmpty(interrupted);
            foreach (var t in interrupted)
                Assert.IsTrue(after.Any(r => r.Id > t.Id && r.Status == TrialStatus.Completed && r.Configuration.ToJson() == t.Configuration.ToJson()),
                    $"interrupted trial {t.Id} runs again under a new id");
            Assert.AreEqual(10, after.Count(t => t.Status == TrialStatus.Completed), "the resumed sweep finishes its 10 trials");
        }
    }

    private static string Tool => Path.Combine(AppContext.BaseDirectory, "deepvariants.dll");

    /// <summary>Runs the command-line tool to its end: its exit code and everything it wrote.</summary>
    internal static (int ExitCode, string Output) RunTool(string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo("dotnet", $"\"{Tool}\" {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output.Result + errors);
    }

    [TestMethod]
    public void ARestartKilledRightAfterMarkingATrialInterruptedStillRunsItAgain()
    {
        string journalPath = NewJournalPath();
        string arguments = $"sweep --task demo --trials 6 --epochs 4 --epoch-ms 150 --early-stopping None --journal \"{journalPath}\" --no-refit --output \"{journalPath}.out\"";
        using (var process = Process.Start(new ProcessStartInfo("dotnet", $"\"{Tool}\" {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true })!)
        {
            var clock = Stopwatch.StartNew();
            while (CountCompleted(journalPath) < 2 && clock.Elapsed < TimeSpan.FromSeconds(60))
                Thread.Sleep(50);
            Thread.Sleep(250);
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        var space = Microsoft.ML.DeepVariants.Cli.DemoTrialRunner.Space();
        TrialRecord cut;
        using (var journal = new SweepJournal(journalPath))
            cut = journal.Trials(space).Single(t => t.Status == TrialStatus.Running);

        // A restart that marks the trial interrupted and then dies before the re-run starts: a sweep whose cancellation
        // has already been requested does exactly the recovery, then stops.
        using (var journal = new SweepJournal(journalPath))
            new Sweep(space, new Microsoft.ML.DeepVariants.Cli.DemoTrialRunner(0), new TpeProposer(space, 1), new NoEarlyStopping(), journal,
                new SweepSettings { MaxTrials = 6, EpochsPerTrial = 4, Seed = 1, CancellationToken = new CancellationToken(canceled: true) }).Run();
        TrialRecord queued;
        using (var journal = new SweepJournal(journalPath))
        {
            var trials = journal.Trials(space);
            Assert.AreEqual(TrialStatus.Interrupted, trials.Single(t => t.Id == cut.Id).Status);
            queued = trials.Single(t => t.Status == TrialStatus.Queued);
            Assert.AreEqual(cut.Configuration.ToJson(), queued.Configuration.ToJson(), "the interrupted configuration waits in the journal, not in memory");
        }

        var (code, output) = RunTool(arguments);
        Assert.AreEqual(0, code, output);
        using (var journal = new SweepJournal(journalPath))
        {
            var after = journal.Trials(space);
            Assert.AreEqual(TrialStatus.Completed, after.Single(t => t.Id == queued.Id).Status, "the queued trial ran under its id");
            Assert.AreEqual(6, after.Count(t => t.Status == TrialStatus.Completed));
            Assert.IsFalse(after.Any(t => t.Status is TrialStatus.Queued or TrialStatus.Running));
        }
    }

    [TestMethod]
    public void TwoProcessesWithTheSameSeedWriteTheSameJournal()
    {
        // The proposals and trial seeds come from a stable mix of the seed (not from the per-process System.HashCode),
        // so two processes agree, event for event.
        string first = NewJournalPath(), second = NewJournalPath();
        foreach (string journal in new[] { first, second })
        {
            var (code, output) = RunTool($"sweep --task demo --trials 12 --epochs 6 --epoch-ms 0 --seed 5 --journal \"{journal}\" --no-refit --output \"{journal}.out\"");
            Assert.AreEqual(0, code, output);
        }
        var space = Microsoft.ML.DeepVariants.Cli.DemoTrialRunner.Space();
        var a = JournalWithoutTimes(first, space);
        Assert.AreEqual(12, a.Count);
        CollectionAssert.AreEqual(a, JournalWithoutTimes(second, space));
    }

    [TestMethod]
    public void AJournalPathThatIsNotSQLiteIsNamed()
    {
        string path = NewJournalPath();
        File.WriteAllText(path, "these are my notes, not a database, and they are long enough to be read as a header by SQLite ....");
        var error = Assert.ThrowsExactly<InvalidDataException>(() => new SweepJournal(path));
        StringAssert.Contains(error.Message, path);
        StringAssert.Contains(error.Message, "not a SQLite database");
    }

    [TestMethod]
    public void AnEmptySearchSpaceIsRefusedBeforeAnyTrial()
    {
        string path = NewJournalPath();
        using var journal = new SweepJournal(path);
        var runner = new SyntheticRunner();
        var error = Assert.ThrowsExactly<ArgumentException>(() =>
            new Sweep(new SearchSpace(), runner, new RandomSearchProposer(new SearchSpace(), 1), new NoEarlyStopping(), journal, new SweepSettings { MaxTrials = 5 }).Run());
        StringAssert.Contains(error.Message, "no parameters");
        Assert.IsEmpty(runner.TrialsRun);
    }

    private static int CountCompleted(string path)
    {
        if (!File.Exists(path))
            return 0;
        try
        {
            using var journal = new SweepJournal(path);
            return journal.Trials(Microsoft.ML.DeepVariants.Cli.DemoTrialRunner.Space()).Count(t => t.Status == TrialStatus.Completed);
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException or InvalidDataException)
        {
            return 0; // the tool is creating the file
        }
    }
}

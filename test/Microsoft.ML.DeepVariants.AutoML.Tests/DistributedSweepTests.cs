using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.DeepVariants.AutoML.Storage;
using Microsoft.ML.DeepVariants.Cli;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

/// <summary>
/// Worker processes of the command-line tool sharing one study: on a real PostgreSQL 15 server (<see cref="PostgresServer"/>)
/// and on one SQLite file. The demo task's epochs are sleeps, so the processes wait on the study, not on the cores,
/// and two of these tests run at once (TestParallelism.cs).
/// </summary>
[TestClass]
public sealed partial class DistributedSweepTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly SearchSpace Space = DemoTrialRunner.Space();
    private static string Tool => Path.Combine(AppContext.BaseDirectory, "deepvariants.dll");

    private string NewStorage(string kind) => kind == "postgresql"
        ? PostgresServer.NewDatabase()
        : "sqlite:///" + Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"study-{Guid.NewGuid():N}.db");

    [TestMethod]
    [DataRow("postgresql")]
    [DataRow("sqlite")]
    public void FourWorkerProcessesFinishExactlyTheTrialsAskedEachRunOnce(string kind)
    {
        string storage = NewStorage(kind);
        var workers = Enumerable.Range(0, 4).Select(i => Worker.Start(storage, "four", trials: 24, epochMs: 150, TestContext, $"--seed 1")).ToList();
        foreach (var worker in workers)
            Assert.AreEqual(0, worker.WaitForExit(TimeSpan.FromSeconds(120)), worker.Output);

        using var journal = SweepJournal.Open(storage, "four");
        var trials = journal.Trials(Space);
        CollectionAssert.AreEqual(Enumerable.Range(0, 24).ToList(), trials.Select(t => t.Id).ToList(), "24 trials, numbered once each");
        Assert.IsTrue(trials.All(t => t.Status is TrialStatus.Completed or TrialStatus.Pruned), string.Join("\n", trials.Select(t => $"{t.Id} {t.Status} {t.Reason}")));
        // Each trial's outcome is printed by the one worker that ran it.
        foreach (var trial in trials)
            Assert.AreEqual(1, workers.Sum(w => w.Finished(trial.Id)), $"trial {trial.Id} ran in exactly one worker");
        int ranSome = trials.Select(t => t.Worker).Distinct().Count();
        TestContext.WriteLine($"{kind}: {trials.Count(t => t.Status == TrialStatus.Pruned)} pruned, {ranSome} workers ran trials; " +
            string.Join("; ", workers.Select(w => w.Coordination)));
        Assert.IsGreaterThanOrEqualTo(3, ranSome, "the workers share the trials");
        var (code, shown) = RunTool($"study show --storage \"{storage}\" --study four --top 24");
        Assert.AreEqual(0, code, shown);
        Assert.AreEqual(ranSome, Regex.Matches(shown, @"│ \S+ pid (\d+)\s+│").Select(m => m.Groups[1].Value).Distinct().Count(), "the leaderboard names each trial's worker");

        // ASHA's rungs are the study's: some trial was pruned against more trials at its rung than its own worker had run there.
        bool shared = trials.Where(t => t.Status == TrialStatus.Pruned).Any(t =>
        {
            var m = RungCount().Match(t.Reason!);
            int rung = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), compared = int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            return compared > trials.Count(o => o.Worker == t.Worker && o.Id <= t.Id && o.Epochs >= rung);
        });
        Assert.IsTrue(shared, "pruning compares trials of every worker");
    }

    [TestMethod]
    [DataRow("postgresql")]
    [DataRow("sqlite")]
    public void TwoWorkersKilledAtRandomMomentsLoseNoTrial(string kind)
    {
        string storage = NewStorage(kind);
        int seed = Environment.TickCount & 0xffff;
        var random = new Random(seed);
        // Each worker stands for a machine of its own, so a killed one is found by its heartbeat alone.
        var workers = Enumerable.Range(0, 4).Select(i => Worker.Start(storage, "killed", trials: 24, epochMs: 150, TestContext,
            "--early-stopping None --heartbeat 0.5 --grace 2.5", host: $"machine-{i}")).ToList();
        var victims = workers.OrderBy(_ => random.Next()).Take(2).ToList();
        var cut = new List<int>();
        using (var journal = SweepJournal.Open(storage, "killed"))
            foreach (var victim in victims)
            {
                bool Running() => journal.Trials(Space).Any(t => t.Status == TrialStatus.Running && t.Worker!.StartsWith(victim.Host + ":", StringComparison.Ordinal));
                var clock = Stopwatch.StartNew();
                while (!Running() && clock.Elapsed < TimeSpan.FromSeconds(60))
                    Thread.Sleep(20);
                Thread.Sleep(random.Next(0, 400));
                // A random moment within a trial (the gap between two trials is a few milliseconds; it is skipped).
                while (!Running() && clock.Elapsed < TimeSpan.FromSeconds(60))
                    Thread.Sleep(5);
                victim.Kill();
                cut.AddRange(journal.Trials(Space).Where(t => t.Status == TrialStatus.Running && t.Worker!.StartsWith(victim.Host + ":", StringComparison.Ordinal)).Select(t => t.Id));
            }
        foreach (var survivor in workers.Except(victims))
            Assert.AreEqual(0, survivor.WaitForExit(TimeSpan.FromSeconds(120)), survivor.Output);

        using (var journal = SweepJournal.Open(storage, "killed"))
        {
            var trials = journal.Trials(Space);
            TestContext.WriteLine($"{kind}, seed {seed}: killed {string.Join(", ", victims.Select(v => v.Host))} in trials {string.Join(", ", cut)}\n" +
                string.Join("\n", trials.Select(t => $"{t.Id} {t.Status} {t.Worker} {t.Reason}")));
            // A kill that lands in the few milliseconds between two trials cuts none; that both do is all but impossible.
            Assert.IsNotEmpty(cut, "a victim was killed in a trial");
            CollectionAssert.AllItemsAreUnique(trials.Select(t => t.Id).ToList());
            var counted = trials.Where(t => t.Status != TrialStatus.Interrupted).ToList();
            Assert.AreEqual(24, counted.Count, "the study holds the 24 trials asked for, re-runs in place of the lost ones");
            Assert.IsTrue(counted.All(t => t.Status == TrialStatus.Completed), "every trial finished, none waits or runs");
            foreach (int number in cut)
            {
                var lost = trials.Single(t => t.Id == number);
                Assert.AreEqual(TrialStatus.Interrupted, lost.Status);
                StringAssert.Contains(lost.Reason, "heartbeat", "found by its heartbeat");
                int rerun = int.Parse(RunsAgain().Match(lost.Reason!).Groups[1].Value, CultureInfo.InvariantCulture);
                var again = trials.Single(t => t.Id == rerun);
                Assert.AreEqual(TrialStatus.Completed, again.Status, $"trial {number}'s re-run {rerun} completed");
                Assert.AreEqual(lost.Configuration.ToJson(), again.Configuration.ToJson(), "with the same configuration");
            }
            foreach (var trial in counted)
                Assert.AreEqual(1, workers.Sum(w => w.Finished(trial.Id)), $"trial {trial.Id} completed in exactly one worker");
        }
    }

    [TestMethod]
    public void CtrlCStopsAWorkerCleanlyLeavingItsTrialForTheNext()
    {
        string storage = NewStorage("sqlite");
        var worker = Worker.Start(storage, "stopped", trials: 6, epochMs: 400, TestContext, "--early-stopping None");
        using (var journal = SweepJournal.Open(storage, "stopped"))
        {
            var clock = Stopwatch.StartNew();
            while (!journal.Trials(Space).Any(t => t.Status == TrialStatus.Running && t.Epochs >= 1) && clock.Elapsed < TimeSpan.FromSeconds(60))
                Thread.Sleep(20);
            TestContext.WriteLine($"after {clock.Elapsed.TotalSeconds:F1} s: " + string.Join("; ", journal.Trials(Space).Select(t => $"{t.Id} {t.Status} {t.Epochs}")));
        }
        worker.Interrupt();
        Assert.AreEqual(130, worker.WaitForExit(TimeSpan.FromSeconds(30)), worker.Output);
        StringAssert.Contains(worker.Output, "cancelled");
        using (var journal = SweepJournal.Open(storage, "stopped"))
        {
            var trials = journal.Trials(Space);
            var interrupted = trials.Single(t => t.Status == TrialStatus.Interrupted);
            StringAssert.StartsWith(interrupted.Reason, "the sweep was cancelled");
            var queued = trials.Single(t => t.Status == TrialStatus.Queued);
            Assert.AreEqual(interrupted.Configuration.ToJson(), queued.Configuration.ToJson());
        }
        var next = Worker.Start(storage, "stopped", trials: 6, epochMs: 0, TestContext, "--early-stopping None");
        Assert.AreEqual(0, next.WaitForExit(TimeSpan.FromSeconds(60)), next.Output);
        using (var journal = SweepJournal.Open(storage, "stopped"))
            Assert.AreEqual(6, journal.Trials(Space).Count(t => t.Status == TrialStatus.Completed), "the next worker ran the waiting trial and the rest");
    }

    [TestMethod]
    [DataRow("postgresql")]
    [DataRow("sqlite")]
    public void OptunaReadsADeepVariantsStudyAndDeepVariantsRunsWhatOptunaAdds(string kind)
    {
        string storage = NewStorage(kind);
        string url = kind == "postgresql" ? PostgresServer.Url(storage) : "sqlite:///" + storage["sqlite:///".Length..];
        var workers = Enumerable.Range(0, 2).Select(_ => Worker.Start(storage, "shared", trials: 8, epochMs: 30, TestContext, "", epochs: 6)).ToList();
        foreach (var worker in workers)
            Assert.AreEqual(0, worker.WaitForExit(TimeSpan.FromSeconds(120)), worker.Output);

        List<TrialRecord> ours;
        using (var journal = SweepJournal.Open(storage, "shared"))
            ours = journal.Trials(Space).ToList();
        var read = Python("read", url, "shared").AsObject();
        Assert.AreEqual("MAXIMIZE", read["direction"]!.GetValue<string>());
        Assert.AreEqual("1", read["user_attrs"]!["deepvariants.seed"]!.GetValue<string>());
        var theirs = read["trials"]!.AsArray();
        Assert.HasCount(ours.Count, theirs);
        Assert.IsTrue(ours.Any(t => t.Status == TrialStatus.Pruned) && ours.Any(t => t.Status == TrialStatus.Completed), "both outcomes are compared");
        foreach (var t in ours)
        {
            var p = theirs.Single(x => x!["number"]!.GetValue<int>() == t.Id)!;
            Assert.AreEqual(t.Status == TrialStatus.Completed ? "COMPLETE" : "PRUNED", p["state"]!.GetValue<string>(), $"trial {t.Id}");
            Assert.AreEqual(t.BestMetric!.Value, p["value"]!.GetValue<double>(), $"trial {t.Id}'s value");
            CollectionAssert.AreEqual(t.EpochMetrics.ToList(), p["intermediate"]!.AsObject().Select(kv => kv.Value!.GetValue<double>()).ToList(), $"trial {t.Id}'s epochs");
            var parameters = p["params"]!.AsObject();
            Assert.HasCount(t.Configuration.Values.Count, parameters);
            Assert.AreEqual(t.Configuration.GetDouble("x"), parameters["x"]!.GetValue<double>());
            Assert.AreEqual(t.Configuration.GetDouble("rate"), parameters["rate"]!.GetValue<double>());
            Assert.AreEqual(t.Configuration.GetString("kind"), parameters["kind"]!.GetValue<string>());
            if (t.Configuration.Has("depth"))
                Assert.AreEqual(t.Configuration.GetInt("depth"), parameters["depth"]!.GetValue<int>());
            var distributions = p["distributions"]!;
            Assert.IsTrue(JsonNode.DeepEquals(JsonNode.Parse("""{"type": "float", "low": -5.0, "high": 5.0, "log": false}"""), distributions["x"]), distributions.ToJsonString());
            Assert.IsTrue(JsonNode.DeepEquals(JsonNode.Parse("""{"type": "float", "low": 0.001, "high": 1.0, "log": true}"""), distributions["rate"]), distributions.ToJsonString());
            Assert.IsTrue(JsonNode.DeepEquals(JsonNode.Parse("""{"type": "categorical", "choices": ["a", "b", "c"]}"""), distributions["kind"]), distributions.ToJsonString());
            if (t.Configuration.Has("depth"))
                Assert.IsTrue(JsonNode.DeepEquals(JsonNode.Parse("""{"type": "int", "low": 1, "high": 4, "log": false, "step": 1}"""), distributions["depth"]), distributions.ToJsonString());
            Assert.IsTrue(p["user_attrs"]!["worker"] is not null, "the worker is a user attribute");
        }

        // Python adds a trial (ask/tell) and enqueues one: DeepVariants ranks the first and runs the second.
        var added = Python("add", url, "shared");
        int told = added["told"]!.GetValue<int>(), enqueued = added["enqueued"]!.AsArray().Single()!.GetValue<int>();
        var (code, shown) = RunTool($"study show --storage \"{storage}\" --study shared --top 3");
        Assert.AreEqual(0, code, shown);
        StringAssert.Matches(shown, new Regex($@"│ 1\s+│ {told}\s+│ Completed\s+│ 0\.9990"), "Python's trial leads the leaderboard");
        var last = Worker.Start(storage, "shared", trials: 10, epochMs: 0, TestContext, "", epochs: 6);
        Assert.AreEqual(0, last.WaitForExit(TimeSpan.FromSeconds(60)), last.Output);
        using (var journal = SweepJournal.Open(storage, "shared"))
        {
            var trials = journal.Trials(Space);
            Assert.HasCount(10, trials);
            Assert.AreEqual(told, trials.MaxBy(t => t.BestMetric)!.Id);
            var run = trials.Single(t => t.Id == enqueued);
            Assert.AreEqual(TrialStatus.Completed, run.Status, last.Output);
            Assert.AreEqual("""{"x":0.25,"rate":0.5,"kind":"b"}""", run.Configuration.ToJson(), "the enqueued parameters ran as Optuna fixed them");
        }
        (code, string listed) = RunTool($"study list --storage \"{storage}\"");
        Assert.AreEqual(0, code, listed);
        StringAssert.Matches(listed, new Regex(@"│ shared\s+│ 10\s+│"), "the study and its 10 trials");
        string csv = Path.Combine(TestContext.TestRunResultsDirectory ?? Path.GetTempPath(), $"trials-{Guid.NewGuid():N}.csv");
        (code, string exported) = RunTool($"study export --storage \"{storage}\" --study shared --output \"{csv}\"");
        Assert.AreEqual(0, code, exported);
        var rows = File.ReadAllLines(csv);
        Assert.HasCount(11, rows, "a header and the 10 trials");
        StringAssert.StartsWith(rows[0], "trial,status,best_metric");
        Assert.IsFalse(File.Exists(csv + ".tmp"));
    }

    [TestMethod]
    [DataRow("postgresql")]
    [DataRow("sqlite")]
    public void ALostTrialIsQueuedAgainAtMostMaxRetriesTimes(string kind)
    {
        using var journal = SweepJournal.Open(NewStorage(kind), "retries");
        var storage = journal.Storage;
        int study = storage.FindStudy("retries", create: false)!.Value;
        var configuration = Space.Sample(new Random(3));
        // A worker on another machine claims the trial, then is never heard of again.
        ClaimRequest Elsewhere(int maxRetries) => new()
        {
            MaxTrials = 1, Worker = "elsewhere:4242:0", MaxRetries = maxRetries, IsStale = _ => null,
            Choose = (_, _, _) => SweepJournal.ToStored(configuration, Space),
        };
        var first = storage.Claim(study, Elsewhere(1));
        Assert.AreEqual(ClaimOutcome.Claimed, first.Outcome);
        Assert.AreEqual(ClaimOutcome.Wait, storage.Claim(study, Elsewhere(1)).Outcome, "a full study waits while a trial that heartbeats runs");
        Thread.Sleep(1200);
        string? Lost(StoredTrial t) => SweepJournal.Lost(t, TimeSpan.FromSeconds(1));
        CollectionAssert.AreEqual(new[] { 0 }, storage.Recover(study, Lost, maxRetries: 1).ToList());
        var trials = journal.Trials(Space);
        Assert.AreEqual(TrialStatus.Interrupted, trials[0].Status);
        StringAssert.Contains(trials[0].Reason, "heartbeat");
        Assert.AreEqual(TrialStatus.Queued, trials[1].Status);
        Assert.AreEqual(configuration.ToJson(), trials[1].Configuration.ToJson(), "queued with the same parameters");

        // The re-run is claimed, and lost too: the second loss exceeds MaxRetries = 1, so the trial fails for good.
        var second = storage.Claim(study, Elsewhere(1));
        Assert.AreEqual(1, second.Trial!.Number, "the queued trial is claimed, not a new one");
        Assert.AreEqual(configuration.ToJson(), SweepJournal.ToRecord(second.Trial, Space).Configuration.ToJson());
        Thread.Sleep(1200);
        CollectionAssert.AreEqual(new[] { 1 }, storage.Recover(study, Lost, maxRetries: 1).ToList());
        trials = journal.Trials(Space);
        Assert.HasCount(2, trials, "nothing more is queued");
        Assert.AreEqual(TrialStatus.Failed, trials[1].Status);
        StringAssert.Contains(trials[1].Reason, "lost 2 times (at most 1 re-runs)");
        Assert.AreEqual(ClaimOutcome.Done, storage.Claim(study, Elsewhere(1)).Outcome, "the study holds its one trial, failed");
        Assert.IsFalse(storage.Report(second.Trial.TrialId, 1, 0.5), "the lost worker's late report is refused");
    }

    [TestMethod]
    public void BadStoragesAreRefusedByName()
    {
        string folder = TestContext.TestRunResultsDirectory ?? Path.GetTempPath();
        var (code, output) = RunTool("sweep --task demo --trials 1 --storage postgresql://sweeper:secret-word@127.0.0.1:1/sweeps --no-refit --output " + Path.Combine(folder, "bad-out"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(output, "postgresql://sweeper@127.0.0.1:1/sweeps could not be reached");
        Assert.DoesNotContain("secret-word", output, "the password never reaches the console");

        (code, output) = RunTool("sweep --task demo --trials 1 --storage mysql://db/sweeps --no-refit");
        Assert.AreEqual(Cli.CommandLine.BadInput, code, output);
        StringAssert.Contains(output, "'mysql://db/sweeps' is neither PostgreSQL");

        (code, output) = RunTool($"sweep --task demo --trials 1 --journal a.db --storage sqlite:///{folder}/b.db --no-refit");
        Assert.AreEqual(Cli.CommandLine.BadInput, code, output);
        StringAssert.Contains(output, "--journal and --storage");

        (code, output) = RunTool($"sweep --task demo --trials 1 --heartbeat 5 --grace 5 --no-refit");
        Assert.AreEqual(Cli.CommandLine.BadInput, code, output);
        StringAssert.Contains(output, "--grace must be longer than --heartbeat");

        string journal = Path.Combine(folder, $"named-{Guid.NewGuid():N}.db");
        Assert.AreEqual(0, RunTool($"sweep --task demo --trials 2 --epoch-ms 0 --journal \"{journal}\" --study mine --no-refit --output \"{journal}.out\"").ExitCode);
        (code, output) = RunTool($"study show --journal \"{journal}\" --study yours");
        Assert.AreEqual(Cli.CommandLine.BadInput, code, output);
        StringAssert.Contains(output, "has no study 'yours'; it has 'mine'");
    }

    [GeneratedRegex(@"ASHA rung (\d+): .* of (\d+) trials")]
    private static partial Regex RungCount();

    [GeneratedRegex(@"runs again as trial (\d+)")]
    private static partial Regex RunsAgain();

    private static JsonNode Python(params string[] arguments)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "Interop", "optuna_interop.py");
        using var process = Process.Start(new ProcessStartInfo(File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3", [script, .. arguments])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.AreEqual(0, process.ExitCode, $"optuna_interop.py {string.Join(" ", arguments)}: {errors}");
        return JsonNode.Parse(output.Result)!;
    }

    private static (int ExitCode, string Output) RunTool(string arguments) => SweepTests.RunTool(arguments);

    /// <summary>One <c>deepvariants sweep</c> worker process on the demo task, its output collected as it comes.</summary>
    private sealed class Worker
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        private Worker(Process process, string? host)
        {
            _process = process;
            Host = host;
        }

        public string? Host { get; }

        public string Output
        {
            get
            {
                lock (_output)
                    return _output.ToString();
            }
        }

        /// <summary>The worker's "coordination: ..." line (claims and reports timed).</summary>
        public string Coordination => Output.Split('\n').FirstOrDefault(l => l.StartsWith("coordination:", StringComparison.Ordinal))?.Trim() ?? "(none)";

        public static Worker Start(string storage, string study, int trials, int epochMs, TestContext context, string extra, string? host = null, int epochs = 4)
        {
            string folder = Path.Combine(context.TestRunResultsDirectory ?? Path.GetTempPath(), $"worker-{Guid.NewGuid():N}");
            var start = new ProcessStartInfo("dotnet",
                $"\"{Tool}\" sweep --task demo --trials {trials} --epochs {epochs} --epoch-ms {epochMs} --time 300 --storage \"{storage}\" --study {study} --no-refit --output \"{folder}\" {extra}")
            { RedirectStandardOutput = true, RedirectStandardError = true };
            if (host is not null)
                start.Environment["DEEPVARIANTS_WORKER_HOST"] = host;
            var process = new Process { StartInfo = start };
            var worker = new Worker(process, host);
            process.OutputDataReceived += (_, e) => { lock (worker._output) worker._output.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { lock (worker._output) worker._output.AppendLine(e.Data); };
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return worker;
        }

        /// <summary>How many times this worker printed that trial <paramref name="id"/> completed or was pruned.</summary>
        public int Finished(int id) => Regex.Matches(Output, $@"^trial {id}: (completed|pruned)", RegexOptions.Multiline).Count;

        public void Kill()
        {
            _process.Kill();  // SIGKILL, at once (the tool runs in this one process): no chance to clean up
            _process.WaitForExit();
        }

        // Ctrl+C, as a terminal sends it.
        public void Interrupt()
        {
            using var kill = Process.Start("kill", ["-INT", _process.Id.ToString(CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }

        public int WaitForExit(TimeSpan timeout)
        {
            if (!_process.WaitForExit(timeout))
            {
                _process.Kill(entireProcessTree: true);
                Assert.Fail($"the worker did not finish within {timeout}: {Output}");
            }
            _process.WaitForExit();  // the output's last lines
            return _process.ExitCode;
        }
    }
}

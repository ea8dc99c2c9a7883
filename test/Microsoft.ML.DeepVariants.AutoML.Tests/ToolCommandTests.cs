using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.OnnxRuntime;
using Spectre.Console;
using Tool = Microsoft.ML.DeepVariants.Cli.CommandLine;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

/// <summary>
/// The deepvariants commands on real data (Fashion-MNIST PNG folders, a UCR .ts file, Landsat and diamonds CSV slices),
/// run in-process on a console that records what they print, and their refusals of bad input.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class ToolCommandTests
{
    private static string _root = "", _train = "", _test = "";

    public TestContext TestContext { get; set; } = null!;

    private static string Timeseries => Path.Combine(AppContext.BaseDirectory, "Data", "timeseries", "ItalyPowerDemand");
    private static string Tables => Path.Combine(AppContext.BaseDirectory, "Data", "tabular");

    [ClassInitialize]
    public static void WriteImageFolders(TestContext context)
    {
        // Real PNG files, one folder per class: 40 training and 20 test images each of trousers, bags and sneakers.
        _root = Path.Combine(context.TestRunResultsDirectory ?? Path.GetTempPath(), $"tool-{Guid.NewGuid():N}");
        (_train, _test) = (Path.Combine(_root, "train"), Path.Combine(_root, "test"));
        var rows = FashionMnist.Read(FashionMnistSplit.Train, maxRows: 1500);
        foreach (var group in rows.Where(r => r.Label is "Trouser" or "Bag" or "Sneaker").GroupBy(r => r.Label))
        {
            int i = 0;
            foreach (var row in group.Take(60))
                FashionMnist.SavePng(row, Path.Combine(i < 40 ? _train : _test, group.Key, $"{i++}.png"));
        }
    }

    [ClassCleanup]
    public static void RemoveFolders()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }

    private (int Code, string Output) Run(params string[] args)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 1000;
        int code = Tool.Run(args, console);
        TestContext.WriteLine($"$ deepvariants {string.Join(' ', args)}\n{writer}(exit {code})\n");
        return (code, writer.ToString());
    }

    private static double Figure(string output, string name) =>
        double.Parse(Regex.Match(output, $@"{Regex.Escape(name)}\W+(-?[0-9.]+)").Groups[1].Value, CultureInfo.InvariantCulture);

    private string Folder(string name) => Path.Combine(_root, $"{name}-{Guid.NewGuid():N}");

    [TestMethod]
    public void TrainEvaluatePredictInspectAndExportWorkOnAFolderOfPngImages()
    {
        string output = Folder("cnn"), plots = Folder("plots"), predictions = Path.Combine(output, "predictions.csv"), onnx = Path.Combine(output, "model.onnx");
        var (code, log) = Run("train", "--data", _train, "--epochs", "4", "--output", output, "--plots", plots, "--seed", "3");
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "120 images of 3 classes");
        StringAssert.Contains(log, "epoch 4/", "an epoch line for every epoch");
        foreach (string file in new[] { "model.zip", "model.json", "history.csv" })
            Assert.IsTrue(File.Exists(Path.Combine(output, file)), file);
        Assert.IsGreaterThan(10_000L, new FileInfo(Path.Combine(plots, "training-curves.png")).Length, "the curves are a real picture");
        Assert.IsFalse(Directory.EnumerateFiles(output, "*.tmp", SearchOption.AllDirectories).Any() || Directory.EnumerateFiles(output, ".*").Any(), "no temporary file is left");
        Assert.AreEqual(5, File.ReadAllLines(Path.Combine(output, "history.csv")).Length, "a header and 4 epochs");

        (code, log) = Run("evaluate", "--model", Path.Combine(output, "model.zip"), "--data", _test, "--plots", plots);
        Assert.AreEqual(0, code, log);
        double accuracy = Figure(log, "accuracy");
        Assert.IsGreaterThan(85.0, accuracy, "trousers, bags and sneakers are told apart on 60 images never trained on");
        StringAssert.Contains(log, "Sneaker");
        Assert.IsGreaterThan(5_000L, new FileInfo(Path.Combine(plots, "confusion-matrix.png")).Length);

        (code, log) = Run("predict", "--model", Path.Combine(output, "model.zip"), "--data", _test, "--output", predictions);
        Assert.AreEqual(0, code, log);
        var lines = File.ReadAllLines(predictions);
        Assert.AreEqual("image,predicted,probability,probability.Bag,probability.Sneaker,probability.Trouser", lines[0]);
        Assert.HasCount(61, lines);
        double right = lines.Skip(1).Select(l => l.Split(',')).Average(f => Path.GetFileName(Path.GetDirectoryName(f[0])) == f[1] ? 100.0 : 0.0);
        Assert.AreEqual(accuracy, right, 0.01, "predict and evaluate agree");

        (code, log) = Run("inspect", Path.Combine(output, "model.zip"));
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "ImagePath");
        StringAssert.Contains(log, "Conv ");
        StringAssert.Contains(log, "PredictedLabel");

        (code, log) = Run("export", "--model", Path.Combine(output, "model.zip"), "--output", onnx);
        Assert.AreEqual(0, code, log);
        using var session = new InferenceSession(onnx);
        Assert.AreEqual(784, session.InputMetadata.Values.Single().Dimensions.Where(d => d > 0).Aggregate(1, (a, d) => a * d), "the graph reads one 1 x 28 x 28 image");
        (code, log) = Run("inspect", onnx);
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "parameters");
    }

    [TestMethod]
    public void TrainEvaluateAndPredictWorkOnATsFile()
    {
        string output = Folder("series"), predictions = Path.Combine(output, "predictions.csv");
        var (code, log) = Run("train", "--data", Path.Combine(Timeseries, "ItalyPowerDemand_TRAIN.ts"), "--epochs", "20", "--output", output);
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "67 series of 24-24 steps");
        (code, log) = Run("evaluate", "--model", Path.Combine(output, "model.zip"), "--data", Path.Combine(Timeseries, "ItalyPowerDemand_TEST.ts"));
        Assert.AreEqual(0, code, log);
        Assert.IsGreaterThan(90.0, Figure(log, "accuracy"), "ItalyPowerDemand's test set, 1,029 series");
        (code, log) = Run("predict", "--model", Path.Combine(output, "model.zip"), "--data", Path.Combine(Timeseries, "ItalyPowerDemand_TEST.ts"), "--output", predictions);
        Assert.AreEqual(0, code, log);
        Assert.HasCount(1030, File.ReadAllLines(predictions));

        // Another family of network, by name: the FCN, a temporal CNN.
        string fcn = Folder("fcn");
        (code, log) = Run("train", "--data", Path.Combine(Timeseries, "ItalyPowerDemand_TRAIN.ts"), "--family", "Fcn", "--epochs", "20", "--output", fcn);
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "sequence classifier (Fcn)");
        (code, log) = Run("evaluate", "--model", Path.Combine(fcn, "model.zip"), "--data", Path.Combine(Timeseries, "ItalyPowerDemand_TEST.ts"));
        Assert.AreEqual(0, code, log);
        Assert.IsGreaterThan(90.0, Figure(log, "accuracy"), "the FCN on ItalyPowerDemand's test set");
        (code, log) = Run("train", "--data", Path.Combine(Timeseries, "ItalyPowerDemand_TRAIN.ts"), "--family", "InceptionTime", "--output", Folder("inception"));
        Assert.AreEqual(2, code, log);
        StringAssert.Contains(log, "KernelSize");
    }

    [TestMethod]
    public void TrainEvaluateAndPredictWorkOnCsvTables()
    {
        // Landsat: a classification over 36 numeric columns; 1,287 rows to train, 643 others to test (every 5th and 10th row, as the file is grouped by class).
        var satellite = File.ReadAllLines(Path.Combine(Tables, "satellite.csv"));
        string train = Path.Combine(_root, "satellite-train.csv"), test = Path.Combine(_root, "satellite-test.csv"), unlabelled = Path.Combine(_root, "satellite-unlabelled.csv");
        File.WriteAllLines(train, satellite.Take(1).Concat(satellite.Skip(1).Where((_, i) => i % 5 == 0)));
        File.WriteAllLines(test, satellite.Take(1).Concat(satellite.Skip(1).Where((_, i) => i % 10 == 3)));
        File.WriteAllLines(unlabelled, File.ReadAllLines(test).Select(l => l[..l.LastIndexOf(',')]));
        string output = Folder("table");
        var (code, log) = Run("train", "--data", train, "--label", "classes", "--epochs", "10", "--output", output);
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "classification of 'classes'");
        (code, log) = Run("evaluate", "--model", Path.Combine(output, "model.zip"), "--data", test);
        Assert.AreEqual(0, code, log);
        Assert.IsGreaterThan(82.0, Figure(log, "accuracy"), "six soil classes, chance is under 25 %");
        (code, log) = Run("predict", "--model", Path.Combine(output, "model.zip"), "--data", unlabelled, "--output", Path.Combine(output, "p.csv"));
        Assert.AreEqual(0, code, log);
        Assert.HasCount(File.ReadAllLines(test).Length, File.ReadAllLines(Path.Combine(output, "p.csv")));
        (code, log) = Run("predict", "--model", Path.Combine(output, "model.zip"), "--data", Path.Combine(Tables, "diamonds.csv"), "--output", Path.Combine(output, "q.csv"));
        Assert.AreEqual(2, code, log);
        StringAssert.Contains(log, "has no column 'x.1', which model");
        Assert.IsFalse(File.Exists(Path.Combine(output, "q.csv")));

        // diamonds: a regression with three text columns as categories; 2,000 rows in a stride (the file runs through prices in order).
        var diamonds = File.ReadAllLines(Path.Combine(Tables, "diamonds.csv"));
        string diamondsTrain = Path.Combine(_root, "diamonds-train.csv"), diamondsTest = Path.Combine(_root, "diamonds-test.csv");
        File.WriteAllLines(diamondsTrain, diamonds.Take(1).Concat(diamonds.Skip(1).Where((_, i) => i % 27 == 0)));
        File.WriteAllLines(diamondsTest, diamonds.Take(1).Concat(diamonds.Skip(1).Where((_, i) => i % 53 == 5)));
        output = Folder("regression");
        (code, log) = Run("train", "--data", diamondsTrain, "--label", "price", "--epochs", "30", "--output", output);
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, "regression of 'price'");
        StringAssert.Contains(log, "6 numeric and 3 categorical columns");
        (code, log) = Run("evaluate", "--model", Path.Combine(output, "model.zip"), "--data", diamondsTest);
        Assert.AreEqual(0, code, log);
        // The mean absolute error against that of always guessing the median price: R² would be ruled by the few test rows with
        // impossible sizes (a y of 31.8 mm), on which a network extrapolates far.
        var prices = File.ReadAllLines(diamondsTest).Skip(1).Select(l => double.Parse(l.Split(',')[6], CultureInfo.InvariantCulture)).Order().ToList();
        double median = prices[prices.Count / 2], guess = prices.Average(p => Math.Abs(p - median));
        TestContext.WriteLine($"MAE {Figure(log, "MAE"):F1}, guessing the median {guess:F1}");
        Assert.IsLessThan(0.3 * guess, Figure(log, "MAE"), "price from carat, cut, colour, clarity and size");
    }

    [TestMethod]
    public void BadInputIsRefusedByNameWithExitCode2AndNothingWritten()
    {
        string bad = Path.Combine(_root, "bad");
        Directory.CreateDirectory(Path.Combine(bad, "empty"));
        Directory.CreateDirectory(Path.Combine(bad, "one", "Bag"));
        File.Copy(Directory.GetFiles(Path.Combine(_train, "Bag"))[0], Path.Combine(bad, "one", "Bag", "0.png"));
        foreach (string label in new[] { "Bag", "Trouser" })
        {
            Directory.CreateDirectory(Path.Combine(bad, "corrupt", label));
            foreach (var file in Directory.GetFiles(Path.Combine(_train, label)).Take(10))
                File.Copy(file, Path.Combine(bad, "corrupt", label, Path.GetFileName(file)));
        }
        string broken = Path.Combine(bad, "corrupt", "Bag", "broken.png");
        File.WriteAllBytes(broken, File.ReadAllBytes(Directory.GetFiles(Path.Combine(bad, "corrupt", "Bag"))[0])[..40]);   // a truncated PNG
        File.WriteAllText(Path.Combine(bad, "ragged.csv"), "a,b,label\n1,2,x\n3,y\n");
        File.WriteAllBytes(Path.Combine(bad, "binary.csv"), [0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 1, 2, 3]);
        File.WriteAllText(Path.Combine(bad, "text.csv"), "a,b,label\n1,2,x\n3,4,y\n5,6,x\n");
        File.WriteAllText(Path.Combine(bad, "model.zip"), "not a zip");
        File.WriteAllText(Path.Combine(bad, "model.onnx"), "not a graph");
        File.WriteAllText(Path.Combine(bad, "data.xyz"), "?");
        File.WriteAllText(Path.Combine(bad, "a-file"), "");
        var italy = File.ReadAllLines(Path.Combine(Timeseries, "ItalyPowerDemand_TRAIN.ts"));
        File.WriteAllLines(Path.Combine(bad, "one-class.ts"), italy.Where(l => !l.Contains(':') || l.EndsWith(":1", StringComparison.Ordinal)));
        string missing = Path.Combine(bad, "missing");

        var cases = new (string[] Args, string Expected)[]
        {
            (["train", "--data", missing], $"'{missing}' does not exist"),
            (["train", "--data", Path.Combine(bad, "empty")], "is empty; expected one folder of images per class"),
            (["train", "--data", Path.Combine(bad, "one")], "has one class folder ('Bag'); a classifier needs at least two"),
            (["train", "--data", Path.Combine(bad, "corrupt")], $"1 of 21 images do not decode: '{broken}'"),
            (["train", "--data", Path.Combine(bad, "ragged.csv")], "ragged.csv', line 3: 2 fields where the header has 3"),
            (["train", "--data", Path.Combine(bad, "binary.csv")], "binary.csv' is not a text file"),
            (["train", "--data", Path.Combine(bad, "text.csv"), "--label", "nope"], "has no column 'nope'; its columns are 'a', 'b', 'label'"),
            (["train", "--data", Path.Combine(bad, "text.csv"), "--task", "Regression"], "--label: '" + Path.Combine(bad, "text.csv") + "' has no column 'Label'"),
            (["train", "--data", Path.Combine(bad, "text.csv"), "--label", "label", "--task", "Regression"], "--task Regression: label column 'label'"),
            (["train", "--data", Path.Combine(bad, "data.xyz")], "is a '.xyz' file"),
            (["train", "--data", Path.Combine(bad, "one-class.ts")], "one-class.ts' has one class ('1')"),
            (["train", "--data", _train, "--epochs", "0"], "--epochs must be 1 or more, got 0"),
            (["train", "--data", _train, "--holdout", "1.5"], "--holdout must be at least 0 and below 1, got 1.5"),
            (["train", "--data", _train, "--output", Path.Combine(bad, "a-file")], "a-file' is a file; expected a folder"),
            (["train", "--data", _train, "--epochz", "3"], "Unrecognized command or argument '--epochz'"),
            (["sweep", "--train", Path.Combine(bad, "text.csv"), "--label", "label", "--time", "-5"], "--time must be a number of seconds above zero, got -5"),
            (["sweep", "--train", Path.Combine(bad, "empty")], "is empty"),
            (["sweep", "--task", "image-classification"], "--train is needed for task 'image-classification'"),
            (["evaluate", "--model", Path.Combine(bad, "nothing.zip"), "--data", _test], "nothing.zip' does not exist"),
            (["evaluate", "--model", Path.Combine(bad, "model.zip"), "--data", _test], "model.zip' is not a saved ML.NET model"),
            (["predict", "--model", Path.Combine(bad, "model.zip"), "--data", _test], "model.zip' is not a saved ML.NET model"),
            (["inspect", missing], $"'{missing}' does not exist"),
            (["inspect", Path.Combine(bad, "model.onnx")], "model.onnx' is not an ONNX model"),
            (["export", "--model", Path.Combine(bad, "model.zip")], "model.zip' is not a saved ML.NET model"),
        };
        var failures = new List<string>();
        foreach (var (args, expected) in cases)
        {
            string output = Folder("refused");
            // Each case gets its own output folder (and journal), which must not exist afterwards.
            string[] withOutput = args[0] switch
            {
                _ when args.Contains("--output") => args,
                "train" => [.. args, "--output", output],
                "sweep" => [.. args, "--output", output, "--journal", Path.Combine(output, "sweep.db")],
                "predict" or "export" => [.. args, "--output", Path.Combine(output, "out")],
                _ => args,
            };
            var (code, log) = Run(withOutput);
            if (code != 2 || !log.Contains(expected, StringComparison.Ordinal) || log.Contains("   at ", StringComparison.Ordinal) || Directory.Exists(output))
                failures.Add($"{string.Join(' ', args)}: exit {code}, output folder {(Directory.Exists(output) ? "written" : "absent")}, printed: {log.Trim()}");
        }
        Assert.IsEmpty(failures, string.Join("\n", failures));
        Assert.IsGreaterThanOrEqualTo(24, cases.Length);
    }

    [TestMethod]
    public void ACorruptImageIsSkippedOnRequestAndNamed()
    {
        string data = Path.Combine(_root, "skip");
        foreach (string label in new[] { "Bag", "Trouser" })
        {
            Directory.CreateDirectory(Path.Combine(data, label));
            foreach (var file in Directory.GetFiles(Path.Combine(_train, label)).Take(16))
                File.Copy(file, Path.Combine(data, label, Path.GetFileName(file)));
        }
        string broken = Path.Combine(data, "Trouser", "zz-broken.jpg");
        File.WriteAllText(broken, "this is not a JPEG");
        string output = Folder("skipped");
        var (code, log) = Run("train", "--data", data, "--on-corrupt", "Skip", "--epochs", "1", "--output", output);
        Assert.AreEqual(0, code, log);
        StringAssert.Contains(log, $"left out 1 of 33 images that do not decode: '{broken}'");
        StringAssert.Contains(log, "32 images of 2 classes");
    }

    [TestMethod]
    public void ASweepRefusesAJournalOfOtherDataUnlessResumedAndFailsWhenEveryTrialFails()
    {
        var satellite = File.ReadAllLines(Path.Combine(Tables, "satellite.csv"));
        string first = Path.Combine(_root, "sweep-a.csv"), second = Path.Combine(_root, "sweep-b.csv");
        File.WriteAllLines(first, satellite.Take(1).Concat(satellite.Skip(1).Where((_, i) => i % 10 == 0)));
        File.WriteAllLines(second, satellite.Take(1).Concat(satellite.Skip(1).Where((_, i) => i % 10 == 1)));
        string output = Folder("sweep"), journal = Path.Combine(output, "sweep.db"), plots = Path.Combine(output, "plots");
        string[] Sweep(string train, int trials, params string[] more) =>
            ["sweep", "--train", train, "--label", "classes", "--trials", trials.ToString(CultureInfo.InvariantCulture), "--epochs", "1", "--early-stopping", "None", "--journal", journal, "--output", output, "--no-refit", .. more];
        var (code, log) = Run(Sweep(first, 2, "--plots", plots));
        Assert.AreEqual(0, code, log);
        Assert.HasCount(3, File.ReadAllLines(Path.Combine(output, "leaderboard.csv")));
        Assert.IsGreaterThan(5_000L, new FileInfo(Path.Combine(plots, "sweep-best-so-far.png")).Length);
        long journalBytes = new FileInfo(journal).Length;

        (code, log) = Run(Sweep(second, 2));
        Assert.AreEqual(2, code, log);
        StringAssert.Contains(log, $"--journal: '{journal}' was written for other training data");
        Assert.AreEqual(journalBytes, new FileInfo(journal).Length, "the refused sweep did not touch the journal");
        (code, log) = Run(Sweep(second, 3, "--resume"));
        Assert.AreEqual(0, code, log);
        Assert.HasCount(4, File.ReadAllLines(Path.Combine(output, "leaderboard.csv")), "the resumed sweep keeps the two trials and adds one");

        string failing = Folder("failing");
        (code, log) = Run("sweep", "--task", "demo", "--demo-fail", "--epoch-ms", "0", "--trials", "3", "--journal", Path.Combine(failing, "sweep.db"), "--output", failing);
        Assert.AreEqual(1, code, log);
        StringAssert.Contains(log, "every one of the 3 trials failed: 3 x ");
        StringAssert.Contains(log, "this trial fails");
    }
}

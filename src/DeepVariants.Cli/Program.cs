// deepvariants sweep --task image-classification --train <folder of class folders> --time 600
// Model Builder-style sweeps from the command line, with a live leaderboard; the journal makes a killed sweep resumable.
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.AutoML;
using Microsoft.ML.DeepVariants.Cli;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.Transforms.Image;
using Spectre.Console;

var task = new Option<string>("--task") { Description = "image-classification, sequence-classification or demo (a closed-form objective, no data).", Required = true };
var train = new Option<string?>("--train") { Description = "Training data: a folder with one folder of images per class, or a UEA/UCR .ts file." };
var validation = new Option<string?>("--validation") { Description = "Validation data, as --train; 20% of the training data when left out." };
var time = new Option<int?>("--time") { Description = "Wall-time budget in seconds." };
var trials = new Option<int>("--trials") { Description = "Trials at most.", DefaultValueFactory = _ => 20 };
var epochs = new Option<int>("--epochs") { Description = "Epochs per trial at most.", DefaultValueFactory = _ => 9 };
var maxEpochs = new Option<long?>("--max-epochs") { Description = "Epochs over all trials at most." };
var workers = new Option<int>("--workers") { Description = "Trials run at once; the cores are shared out between them.", DefaultValueFactory = _ => 1 };
var journal = new Option<string>("--journal") { Description = "The SQLite journal; running again on it resumes.", DefaultValueFactory = _ => "sweep.db" };
var output = new Option<string>("--output") { Description = "Folder for model.zip, model.json and leaderboard.csv.", DefaultValueFactory = _ => "sweep-output" };
var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
var search = new Option<SearchAlgorithm>("--search") { DefaultValueFactory = _ => SearchAlgorithm.Tpe };
var stopping = new Option<TrialStopping>("--early-stopping") { DefaultValueFactory = _ => TrialStopping.Asha };
var size = new Option<int>("--image-size") { Description = "Images are resized to this many pixels square.", DefaultValueFactory = _ => 28 };
var rgb = new Option<bool>("--rgb") { Description = "Keep colour (3 channels) instead of grayscale." };
var epochDelay = new Option<int>("--epoch-ms") { Description = "Demo task: milliseconds per epoch.", DefaultValueFactory = _ => 50, Hidden = true };
var noRefit = new Option<bool>("--no-refit") { Description = "Skip refitting the best configuration at the end." };

var sweep = new Command("sweep", "Search architectures and hyperparameters, with early stopping, a resumable journal and a live leaderboard.")
{
    task, train, validation, time, trials, epochs, maxEpochs, workers, journal, output, seed, search, stopping, size, rgb, epochDelay, noRefit,
};
sweep.SetAction((parse, cancellation) =>
{
    var ml = new MLContext(parse.GetValue(seed));
    NativeAllocator.KeepFreedMemory();
    var settings = new ExperimentSettings
    {
        JournalPath = parse.GetValue(journal)!, MaxTrials = parse.GetValue(trials), EpochsPerTrial = parse.GetValue(epochs),
        MaxTotalEpochs = parse.GetValue(maxEpochs), MaxTime = parse.GetValue(time) is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
        Workers = parse.GetValue(workers), Seed = parse.GetValue(seed), Search = parse.GetValue(search), EarlyStopping = parse.GetValue(stopping),
        CancellationToken = cancellation,
    };
    var (space, runner) = parse.GetValue(task) switch
    {
        "demo" => (DemoTrialRunner.Space(), (ITrialRunner)new DemoTrialRunner(parse.GetValue(epochDelay))),
        "image-classification" => Images(ml, Require(parse.GetValue(train), "--train"), parse.GetValue(validation), parse.GetValue(size), parse.GetValue(rgb)),
        "sequence-classification" => Sequences(ml, Require(parse.GetValue(train), "--train"), parse.GetValue(validation)),
        var other => throw new ArgumentException($"Unknown task '{other}'; expected image-classification, sequence-classification or demo."),
    };
    using var experiment = ml.DeepVariantsAutoML.CreateExperiment(space, runner, settings);
    var result = RunWithLeaderboard(experiment, settings);
    AnsiConsole.Write(result.ToTable());
    string folder = parse.GetValue(output)!;
    Directory.CreateDirectory(folder);
    result.WriteCsv(Path.Combine(folder, "leaderboard.csv"));
    AnsiConsole.MarkupLine($"{result.Trials.Count} trials, {result.TotalEpochs} epochs in all, {result.Elapsed.TotalSeconds:F0} s; journal {Markup.Escape(experiment.Journal.Path)}");
    if (result.Best is { } best && !parse.GetValue(noRefit))
    {
        // The demo task has no ML.NET model; its refit writes a one-line description.
        string model = Path.Combine(folder, parse.GetValue(task) == "demo" ? "model.txt" : "model.zip");
        AnsiConsole.MarkupLine($"Refitting trial {best.Id} on training plus validation data for {best.BestEpoch} epoch(s) ...");
        experiment.RefitBest(result, model);
        AnsiConsole.MarkupLine($"Saved {Markup.Escape(model)} and {Markup.Escape(Path.ChangeExtension(model, ".json"))}");
    }
    return Task.FromResult(0);
});

var root = new RootCommand("DeepVariants.ML: deep-learning variants for ML.NET.") { sweep };
return root.Parse(args).Invoke();

static string Require(string? value, string option) => value ?? throw new ArgumentException($"The task needs {option}.");

static SweepResult RunWithLeaderboard(SweepExperiment experiment, ExperimentSettings settings)
{
    if (Console.IsOutputRedirected)
    {
        settings.OnEvent = e =>
        {
            if (e.Kind is not ("epoch" or "proposed"))
                Console.WriteLine($"trial {e.TrialId}: {e.Kind}{(e.Detail is null ? "" : $" ({e.Detail})")}");
        };
        return experiment.Run();
    }
    SweepResult? result = null;
    var table = new Table().AddColumns("trial", "status", "best", "epochs");
    var rows = new Dictionary<int, (string Status, double Best, int Epochs)>();
    AnsiConsole.Live(table).Start(live =>
    {
        settings.OnEvent = e =>
        {
            lock (rows)
            {
                (string Status, double Best, int Epochs) row = rows.GetValueOrDefault(e.TrialId, ("running", double.NaN, 0));
                row = e.Kind switch
                {
                    "epoch" => (row.Status, double.IsNaN(row.Best) ? e.Metric!.Value : Math.Max(row.Best, e.Metric!.Value), e.Epoch!.Value),
                    "proposed" => ("running", double.NaN, 0),
                    _ => (e.Kind, row.Best, row.Epochs),
                };
                rows[e.TrialId] = row;
                table.Rows.Clear();
                foreach (var (id, r) in rows.OrderByDescending(r => double.IsNaN(r.Value.Best) ? -1 : r.Value.Best).Take(15))
                    table.AddRow(id.ToString(), r.Status, double.IsNaN(r.Best) ? "-" : r.Best.ToString("F4"), r.Epochs.ToString());
                live.Refresh();
            }
        };
        result = experiment.Run();
    });
    return result!;
}

static (SearchSpace, ITrialRunner) Images(MLContext ml, string trainFolder, string? validationFolder, int size, bool rgb)
{
    var preprocessing = ImagePipeline(ml, size, rgb);
    IDataView Load(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Image folder '{folder}' does not exist; expected one folder of images per class.");
        // Sorted, so that the class order and the rows (hence a seeded sweep) do not depend on how the file system lists them.
        var rows = Directory.GetDirectories(folder).Order(StringComparer.Ordinal).SelectMany(classFolder => Directory.EnumerateFiles(classFolder)
            .Where(f => f.EndsWith(".png", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .Select(f => new ImageRow { ImagePath = Path.GetFullPath(f), Label = Path.GetFileName(classFolder) })).ToList();
        if (rows.Count == 0)
            throw new InvalidDataException($"Image folder '{folder}' has no .png or .jpg files in class folders.");
        return ml.Data.LoadFromEnumerable(rows);
    }
    var rawTrain = Load(trainFolder);
    IDataView rawValidation;
    if (validationFolder is null)
    {
        var split = ml.Data.TrainTestSplit(rawTrain, 0.2, seed: 1);
        (rawTrain, rawValidation) = (split.TrainSet, split.TestSet);
    }
    else
    {
        rawValidation = Load(validationFolder);
    }
    var fitted = preprocessing.Fit(rawTrain);
    var trainData = ml.Data.Cache(fitted.Transform(rawTrain));
    var validationData = ml.Data.Cache(fitted.Transform(rawValidation));
    var runner = new CnnTrialRunner(ml, trainData, validationData, size, size, rgb ? 3 : 1, preprocessing: fitted, inputSchema: rawTrain.Schema);
    return (SearchSpaces.Cnn(), runner);
}

static IEstimator<ITransformer> ImagePipeline(MLContext ml, int size, bool rgb)
{
    var images = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath"))
        .Append(ml.Transforms.ResizeImages("Image", size, size, "Image"));
    return rgb
        ? images.Append(ml.Transforms.ExtractPixels("Features", "Image", ImagePixelExtractingEstimator.ColorBits.Rgb, interleavePixelColors: false, scaleImage: 1f / 255))
        : images.Append(ml.Transforms.ConvertToGrayscale("Image", "Image"))
            .Append(ml.Transforms.ExtractPixels("Features", "Image", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255));
}

static (SearchSpace, ITrialRunner) Sequences(MLContext ml, string trainFile, string? validationFile)
{
    var problem = TimeSeriesFile.Read(trainFile);
    IDataView trainData = TimeSeriesFile.ToDataView(ml, problem), validationData;
    if (validationFile is null)
    {
        var split = ml.Data.TrainTestSplit(trainData, 0.2, seed: 1);
        (trainData, validationData) = (split.TrainSet, split.TestSet);
    }
    else
    {
        validationData = TimeSeriesFile.Load(ml, validationFile);
    }
    return (SearchSpaces.Sequence(), new SequenceTrialRunner(ml, trainData, validationData, problem.Dimensions));
}

internal sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.DeepVariants.Tabular;
using Microsoft.ML.Transforms.Image;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a Command namespace, which would hide System.CommandLine's type inside this namespace.
using Command = System.CommandLine.Command;

/// <summary>How a table's label is learned.</summary>
public enum TableTask
{
    /// <summary>Regression for a numeric label column, classification otherwise.</summary>
    Auto,
    /// <summary>One class per distinct value (numbers included).</summary>
    Classification,
    /// <summary>A number; the label column must be numeric.</summary>
    Regression,
}

/// <summary>The sequence classifier's network, as the tool names it.</summary>
public enum SeriesNetwork
{
    /// <summary>One LSTM layer (the library's default).</summary>
    Lstm,
    /// <summary>One GRU layer.</summary>
    Gru,
    /// <summary>The fully convolutional network (three convolution blocks, global average pooling).</summary>
    Fcn,
    /// <summary>The residual temporal CNN.</summary>
    ResNet,
    /// <summary>InceptionTime (kernels of 10, 20 and 40 steps: series must be at least that long).</summary>
    InceptionTime,
    /// <summary>A Transformer encoder.</summary>
    Transformer,
}

/// <summary>
/// <c>deepvariants train</c>: one model with sensible defaults from a folder of images, a <c>.ts</c> file or a CSV,
/// saved as an ML.NET model zip with a card (model.json) and the training history (history.csv).
/// </summary>
internal static class TrainCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var data = new Option<string>("--data") { Description = "Training data: a folder with one folder of images per class (images/cat/1.png), a UEA/UCR .ts file, or a CSV file with a header row.", Required = true };
        var validation = new Option<string?>("--validation") { Description = "Validation data of the same kind; when left out, --holdout of the training data is held out." };
        var holdout = new Option<double>("--holdout") { Description = "Fraction of the training data held out for validation when --validation is not given; 0 trains on all of it. Example: --holdout 0.1", DefaultValueFactory = _ => 0.2 };
        var label = new Option<string>("--label") { Description = "A CSV's label column. Example: --label price", DefaultValueFactory = _ => "Label" };
        var task = new Option<TableTask>("--task") { Description = "A CSV's task: Auto (regression for a numeric label, classification otherwise), Classification or Regression.", DefaultValueFactory = _ => TableTask.Auto };
        var epochs = new Option<int?>("--epochs") { Description = $"Epochs to train; each model's default when left out (CNN {new CnnClassifierOptions().Epochs}, " +
            $"sequence {new SequenceClassifierOptions().Epochs}, table {new TabularNetworkOptions().Epochs}). Example: --epochs 10" };
        var batchSize = new Option<int?>("--batch-size") { Description = "Rows per training batch; each model's default when left out." };
        var size = new Option<int>("--image-size") { Description = "Images are resized to this many pixels square. Example: --image-size 64", DefaultValueFactory = _ => 28 };
        var rgb = new Option<bool>("--rgb") { Description = "Keep colour (3 channels) instead of grayscale." };
        var family = new Option<SeriesNetwork>("--family") { Description = "Series: the network, Lstm, Gru, Fcn, ResNet, InceptionTime or Transformer, with its defaults. Example: --family Fcn", DefaultValueFactory = _ => SeriesNetwork.Lstm };
        var architecture = new Option<CnnFamily>("--architecture") { Description = "Images: the CNN family, LeNet, Vgg, ResNet, Inception or DenseNet, with that family's default depth and width. Example: --architecture ResNet", DefaultValueFactory = _ => new CnnArchitecture().Family };
        var corrupt = new Option<CorruptImages>("--on-corrupt") { Description = "An image that does not decode: Fail (refuse the data, naming it) or Skip (leave it out with a warning).", DefaultValueFactory = _ => CorruptImages.Fail };
        var output = new Option<string>("--output") { Description = "Folder for model.zip, model.json and history.csv. Example: --output models/fashion", DefaultValueFactory = _ => "deepvariants-model" };
        var plots = new Option<string?>("--plots") { Description = "Folder for training-curves.png (loss and metric per epoch). Example: --plots plots" };
        var seed = new Option<int>("--seed") { Description = "Seed for weights, shuffling and the holdout split.", DefaultValueFactory = _ => 1 };
        var device = new Option<TorchDeviceKind>("--device") { Description = "Auto (CUDA when available), Cpu or Cuda.", DefaultValueFactory = _ => TorchDeviceKind.Auto };

        var command = new Command("train", "Train one model on images, series or a table, with sensible defaults, and save it as an ML.NET model.\n" +
            "Examples:\n  deepvariants train --data images/ --epochs 10 --output model\n  deepvariants train --data GunPoint_TRAIN.ts --validation GunPoint_TEST.ts\n" +
            "  deepvariants train --data diamonds.csv --label price --plots plots")
        {
            data, validation, holdout, label, task, epochs, batchSize, size, rgb, architecture, family, corrupt, output, plots, seed, device,
        };
        command.SetAction(parse =>
        {
            var settings = new TrainSettings(parse.GetValue(data)!, parse.GetValue(validation), parse.GetValue(holdout), parse.GetValue(label)!, parse.GetValue(task),
                parse.GetValue(epochs), parse.GetValue(batchSize), parse.GetValue(size), parse.GetValue(rgb), parse.GetValue(architecture), parse.GetValue(family), parse.GetValue(corrupt), parse.GetValue(output)!,
                parse.GetValue(plots), parse.GetValue(seed), parse.GetValue(device));
            return Train(settings, console);
        });
        return command;
    }

    internal sealed record TrainSettings(string Data, string? Validation, double Holdout, string Label, TableTask Task, int? Epochs, int? BatchSize,
        int ImageSize, bool Rgb, CnnFamily Architecture, SeriesNetwork Family, CorruptImages Corrupt, string Output, string? Plots, int Seed, TorchDeviceKind Device);

    /// <summary>A prepared fit: the estimator, its data, the steps in front of it, and the raw schema the saved model reads.</summary>
    private sealed record Plan(IDeepVariantsEstimator Estimator, IDataView Train, IDataView? Validation, ITransformer? Preprocessing, DataViewSchema InputSchema,
        ModelCard Card, string Summary);

    private static int Train(TrainSettings s, IAnsiConsole console)
    {
        if (s.Epochs is <= 0)
            throw new UsageException($"--epochs must be 1 or more, got {s.Epochs}.");
        if (s.BatchSize is <= 0)
            throw new UsageException($"--batch-size must be 1 or more, got {s.BatchSize}.");
        if (!(s.Holdout >= 0 && s.Holdout < 1))
            throw new UsageException($"--holdout must be at least 0 and below 1, got {s.Holdout.ToString(CultureInfo.InvariantCulture)}.");
        if (s.ImageSize is < 8 or > 1024)
            throw new UsageException($"--image-size must be from 8 to 1,024 pixels, got {s.ImageSize}.");
        RequireFolder(s.Output, "--output");
        if (s.Plots is not null)
            RequireFolder(s.Plots, "--plots");
        var kind = DataSources.KindOf(s.Data, "--data");
        if (s.Validation is not null && DataSources.KindOf(s.Validation, "--validation") != kind)
            throw new UsageException($"--validation: '{s.Validation}' is not the same kind of data as --data '{s.Data}' ({kind}).");

        var ml = new MLContext(s.Seed);
        NativeAllocator.KeepFreedMemory();
        var relay = new ProgressRelay();
        var plan = TrainingFeedback.Phase(console, "Reading and checking the data", () => kind switch
        {
            SourceKind.Images => Images(ml, s, relay, console),
            SourceKind.Series => Series(ml, s, relay),
            _ => Table(ml, s, relay),
        });
        console.MarkupLine(Markup.Escape(plan.Summary));
        var fit = TrainingFeedback.Run(console, "training", progress =>
        {
            relay.Target = progress;
            return plan.Estimator.Train(plan.Train, plan.Validation);
        });
        ITransformer model = plan.Preprocessing is null ? fit.Model : new TransformerChain<ITransformer>(plan.Preprocessing, fit.Model);

        Directory.CreateDirectory(s.Output);
        string modelPath = Path.Combine(s.Output, "model.zip");
        OutputFiles.Write(modelPath, stream => ml.Model.Save(model, plan.InputSchema, stream));
        OutputFiles.WriteText(ModelCard.PathFor(modelPath), plan.Card.ToJson());
        OutputFiles.WriteText(Path.Combine(s.Output, "history.csv"), HistoryCsv(fit.History));
        console.MarkupLine(Markup.Escape($"{fit.History.Epochs.Count} epochs on {fit.History.Device}, {fit.ParameterCount:N0} parameters; " +
            $"kept epoch {fit.History.BestEpoch}{(fit.History.StopReason is { } why ? $" ({why})" : "")}."));
        foreach (string warning in fit.History.Warnings)
            console.MarkupLine($"[yellow]warning:[/] {Markup.Escape(warning)}");
        console.MarkupLine(Markup.Escape($"Saved {modelPath}, {ModelCard.PathFor(modelPath)} and {Path.Combine(s.Output, "history.csv")}."));
        if (s.Plots is not null)
        {
            string curves = Path.Combine(s.Plots, "training-curves.png");
            TrainingPlots.WriteCurves(curves, fit.History);
            console.MarkupLine(Markup.Escape($"Plotted {curves}."));
        }
        return CommandLine.Success;
    }

    internal static void RequireFolder(string path, string option)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new UsageException($"{option} must name a folder.");
        if (File.Exists(path))
            throw new UsageException($"{option}: '{path}' is a file; expected a folder (it is created when missing).");
    }

    private static (IDataView Train, IDataView? Validation) Split(MLContext ml, IDataView train, IDataView? validation, TrainSettings s)
    {
        if (validation is not null || s.Holdout == 0)
            return (train, validation);
        var split = ml.Data.TrainTestSplit(train, s.Holdout, seed: s.Seed);
        return (split.TrainSet, split.TestSet);
    }

    private static Plan Images(MLContext ml, TrainSettings s, IProgress<TrainingProgress> progress, IAnsiConsole console)
    {
        var rows = DataSources.Images(s.Data, "--data", labelled: true, s.Corrupt, console);
        var validationRows = s.Validation is null ? null : DataSources.Images(s.Validation, "--validation", labelled: true, s.Corrupt, console);
        var raw = ml.Data.LoadFromEnumerable(rows);
        var preprocessing = ImagePipeline(ml, s.ImageSize, s.Rgb).Fit(raw);
        var (train, validation) = Split(ml, ml.Data.Cache(preprocessing.Transform(raw)),
            validationRows is null ? null : ml.Data.Cache(preprocessing.Transform(ml.Data.LoadFromEnumerable(validationRows))), s);
        var options = new CnnClassifierOptions
        {
            ImageHeight = s.ImageSize, ImageWidth = s.ImageSize, Channels = s.Rgb ? 3 : 1, Seed = s.Seed, Device = s.Device,
            Architecture = new CnnArchitecture { Family = s.Architecture },
        };
        Configure(options, s, progress);
        int classes = rows.Select(r => r.Label).Distinct().Count();
        return new Plan(ml.Transforms.DeepVariants.CnnClassifier(options), train, validation, preprocessing, raw.Schema,
            new ModelCard("images", "Label", "classification", Path.GetFullPath(s.Data)),
            $"Training a {s.Architecture} CNN classifier on {rows.Count:N0} images of {classes} classes at {s.ImageSize}x{s.ImageSize} ({(s.Rgb ? "RGB" : "grayscale")}), {EpochsText(options)}.");
    }

    private static SequenceArchitecture SeriesArchitecture(SeriesNetwork network) => network switch
    {
        SeriesNetwork.Lstm => new SequenceArchitecture { Cell = RecurrentCell.Lstm },
        SeriesNetwork.Gru => new SequenceArchitecture { Cell = RecurrentCell.Gru },
        SeriesNetwork.Fcn => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.Fcn },
        SeriesNetwork.ResNet => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.ResNet },
        SeriesNetwork.InceptionTime => new SequenceArchitecture { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime },
        SeriesNetwork.Transformer => new SequenceArchitecture { Family = SequenceFamily.Transformer },
        _ => throw new UsageException($"--family: unknown network '{network}'."),
    };

    /// <summary>Image paths to the CHW pixels the CNN reads, as the saved model's first steps.</summary>
    internal static IEstimator<ITransformer> ImagePipeline(MLContext ml, int size, bool rgb)
    {
        var images = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", size, size, "Image"));
        return rgb
            ? images.Append(ml.Transforms.ExtractPixels("Features", "Image", ImagePixelExtractingEstimator.ColorBits.Rgb, interleavePixelColors: false, scaleImage: 1f / 255))
            : images.Append(ml.Transforms.ConvertToGrayscale("Image", "Image"))
                .Append(ml.Transforms.ExtractPixels("Features", "Image", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255));
    }

    private static Plan Series(MLContext ml, TrainSettings s, IProgress<TrainingProgress> progress)
    {
        var problem = DataSources.Series(s.Data, "--data", labelled: true);
        var validationProblem = s.Validation is null ? null : DataSources.Series(s.Validation, "--validation", labelled: false);
        if (validationProblem is not null && validationProblem.Dimensions != problem.Dimensions)
            throw new UsageException($"--validation: '{s.Validation}' has {validationProblem.Dimensions} dimensions; --data '{s.Data}' has {problem.Dimensions}.");
        // One length for both files when they differ, so that the model reads the longer one too.
        int length = validationProblem is null || problem.EqualLength && validationProblem.MaxLength == problem.MaxLength ? 0 : Math.Max(problem.MaxLength, validationProblem.MaxLength);
        var all = TimeSeriesFile.ToDataView(ml, problem, length);
        var (train, validation) = Split(ml, all, validationProblem is null ? null : TimeSeriesFile.ToDataView(ml, validationProblem, length), s);
        var options = new SequenceClassifierOptions { Channels = problem.Dimensions, Seed = s.Seed, Device = s.Device, Architecture = SeriesArchitecture(s.Family) };
        Configure(options, s, progress);
        return new Plan(ml.Transforms.DeepVariants.SequenceClassifier(options), train, validation, null, all.Schema,
            new ModelCard("series", "Label", "classification", Path.GetFullPath(s.Data)),
            $"Training a sequence classifier ({s.Family}) on {problem.Cases.Count:N0} series of {problem.MinLength}-{problem.MaxLength} steps, " +
            $"{problem.Dimensions} dimension(s), {problem.Cases.Select(c => c.Label).Distinct().Count()} classes, {EpochsText(options)}.");
    }

    private static Plan Table(MLContext ml, TrainSettings s, IProgress<TrainingProgress> progress)
    {
        var problem = TableProblem.Read(ml, s.Data, s.Validation, s.Label, s.Task, "--data", "--task");
        var (train, validation) = Split(ml, problem.Train, problem.Validation, s);
        var options = problem.Columns;
        (options.Seed, options.Device) = (s.Seed, s.Device);
        Configure(options, s, progress);
        string task = problem.Regression ? "regression" : "classification";
        return new Plan(ml.Transforms.DeepVariants.TabularNetwork(options), train, validation, null, problem.Train.Schema,
            new ModelCard("table", s.Label, task, Path.GetFullPath(s.Data)),
            $"Training a tabular network ({task} of '{s.Label}') on {problem.Rows:N0} rows: " +
            $"{options.NumericColumnNames.Length} numeric and {options.CategoricalColumnNames.Length} categorical columns, {EpochsText(options)}.");
    }

    private static void Configure(TrainingOptions options, TrainSettings s, IProgress<TrainingProgress> progress)
    {
        options.Progress = progress;
        if (s.Epochs is { } epochs)
            options.Epochs = epochs;
        if (s.BatchSize is { } batchSize)
            options.BatchSize = batchSize;
    }

    private static string EpochsText(TrainingOptions options) =>
        $"{options.Epochs} epochs" + (options.MinimumSteps > 0 ? $" (more if that is under {options.MinimumSteps:N0} batches, as on small data)" : "");

    internal static string HistoryCsv(TrainingHistory history)
    {
        var lines = new List<string> { "epoch,loss,metric,validation_loss,validation_metric,learning_rate,seconds" };
        static string F(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "";
        lines.AddRange(history.Epochs.Select(e =>
            $"{e.Epoch},{F(e.Loss)},{F(e.Metric)},{F(e.ValidationLoss)},{F(e.ValidationMetric)},{F(e.LearningRate)},{F(e.Elapsed.TotalSeconds)}"));
        return string.Join('\n', lines) + "\n";
    }
}

/// <summary>Writes the tool's files through a temporary name in the same folder, then moves them, so a failure leaves no half-written file.</summary>
internal static class OutputFiles
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = File.Create(temporary))
                write(stream);
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    public static void WriteText(string path, string text) => Write(path, stream =>
    {
        using var writer = new StreamWriter(stream);
        writer.Write(text);
    });
}

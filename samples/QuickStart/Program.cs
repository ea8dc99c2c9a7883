// Quick start: train a CNN on Fashion-MNIST inside an ML.NET pipeline, evaluate it, save it, load it back
// in a fresh MLContext and predict. Run from any folder; files go to --output:
//   dotnet run -c Release --project samples/QuickStart            (about 3 minutes on 2 cores)
//   dotnet run -c Release --project samples/QuickStart -- --epochs 15 --architecture ResNet
using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using DeepVariants.Samples;
using Spectre.Console;

var epochs = new Option<int>("--epochs") { Description = "Passes over the 60,000 training images.", DefaultValueFactory = _ => 5 };
var architecture = new Option<CnnFamily>("--architecture") { Description = "LeNet, Vgg, ResNet, Inception or DenseNet.", DefaultValueFactory = _ => CnnFamily.LeNet };
var data = new Option<string>("--data") { Description = "Folder with the Fashion-MNIST IDX files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
var output = new Option<string>("--output") { Description = "Folder for fashion-cnn.zip (relative to the working directory).", DefaultValueFactory = _ => Path.Combine("output", "quickstart") };
var seed = new Option<int>("--seed") { Description = "MLContext seed.", DefaultValueFactory = _ => 1 };
var root = new RootCommand("Train a CNN on Fashion-MNIST with DeepVariants.ML and ML.NET.") { epochs, architecture, data, output, seed };
root.SetAction(result => Run(result.GetValue(epochs), result.GetValue(architecture), result.GetValue(data)!, result.GetValue(output)!, result.GetValue(seed)));
return root.Parse(args).Invoke();

static int Run(int epochs, CnnFamily architecture, string dataFolder, string outputFolder, int seed)
{
    NativeAllocator.KeepFreedMemory();
    string modelPath = Path.Combine(SampleConsole.OutputFolder(outputFolder), "fashion-cnn.zip");
    var clock = Stopwatch.StartNew();
    var ml = new MLContext(seed);
    var (train, test) = SampleConsole.Phase("Reading Fashion-MNIST", () => (ml.Data.Cache(FashionMnist.Load(ml, FashionMnistSplit.Train, directory: dataFolder)),
        ml.Data.Cache(FashionMnist.Load(ml, FashionMnistSplit.Test, directory: dataFolder))));

    var options = new CnnClassifierOptions
    {
        ImageHeight = FashionMnist.Height, ImageWidth = FashionMnist.Width, Architecture = new CnnArchitecture { Family = architecture },
        Epochs = epochs, BatchSize = 128, LearningRate = 2e-3f, Schedule = LearningRateSchedule.Cosine,
    };
    // The label is keyed as data preparation, outside the saved model (keys in the data set's class order, so the
    // confusion table follows ClassNames): a model that started with MapValueToKey("Label") would need a Label column
    // to predict. The saved model maps the predicted key back to the class name, so predictions need features only.
    var classOrder = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(name => new ClassName { Label = name }));
    var labelKeys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classOrder).Fit(train);
    var pipeline = ml.Transforms.DeepVariants.CnnClassifier(options)
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));

    ITransformer model = SampleConsole.Train(options, () => pipeline.Fit(labelKeys.Transform(train)));
    double trainSeconds = clock.Elapsed.TotalSeconds;

    var metrics = SampleConsole.Phase("Scoring the 10,000 test images", () => ml.MulticlassClassification.Evaluate(model.Transform(labelKeys.Transform(test))));
    AnsiConsole.MarkupLine($"[bold]{architecture}[/], {epochs} epochs: test accuracy [green]{metrics.MicroAccuracy:P2}[/] (macro {metrics.MacroAccuracy:P2}), trained in {trainSeconds:F0} s");

    var table = new Table().Title("Confusion (rows: truth, columns: predicted)").AddColumn("");
    foreach (string name in FashionMnist.ClassNames)
        table.AddColumn(new TableColumn(Short(name)).RightAligned());
    var counts = metrics.ConfusionMatrix.Counts;
    for (int truth = 0; truth < counts.Count; truth++)
        table.AddRow([Short(FashionMnist.ClassNames[truth]), .. counts[truth].Select((c, p) => p == truth ? $"[green]{c}[/]" : c.ToString())]);
    AnsiConsole.Write(table);

    ml.Model.Save(model, train.Schema, modelPath);
    var fresh = new MLContext();
    var loaded = fresh.Model.Load(modelPath, out _);
    var engine = fresh.Model.CreatePredictionEngine<UnlabelledImage, ClassPrediction>(loaded);
    AnsiConsole.MarkupLine($"Saved to [blue]{modelPath}[/] ({new FileInfo(modelPath).Length / 1024} KiB); loaded it back in a new MLContext, predicting from pixels alone:");
    foreach (var image in FashionMnist.Read(FashionMnistSplit.Test, maxRows: 5, directory: dataFolder))
    {
        var prediction = engine.Predict(new UnlabelledImage { Features = image.Features });
        AnsiConsole.MarkupLine($"  truth {image.Label,-12} predicted {prediction.PredictedClass,-12} ({prediction.Score.Max():P1})");
    }
    AnsiConsole.MarkupLine($"Total time {clock.Elapsed.TotalSeconds:F0} s.");
    return 0;
}

static string Short(string name) => name.Split('/')[0];

sealed class ClassName
{
    public string Label { get; set; } = "";
}

sealed class UnlabelledImage
{
    [Microsoft.ML.Data.VectorType(FashionMnist.Height * FashionMnist.Width)]
    public float[] Features { get; set; } = [];
}

sealed class ClassPrediction
{
    public string PredictedClass { get; set; } = "";
    public float[] Score { get; set; } = [];
}


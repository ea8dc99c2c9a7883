// Grad-CAM sample: trains a CNN classifier on Fashion-MNIST with a Grad-CAM output column, then writes a grid of
// heatmap overlays for test images (red: the pixels that drove the predicted class).
//   dotnet run -c Release --project samples/GradCam -- --epochs 2 --output output/gradcam
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using DeepVariants.Samples;
using Spectre.Console;

var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 2 };
var rows = new Option<int>("--train-rows") { Description = "Training images.", DefaultValueFactory = _ => 20000 };
var output = new Option<string>("--output") { Description = "Folder for gradcam-grid.png (relative to the working directory).", DefaultValueFactory = _ => Path.Combine("output", "gradcam") };
var data = new Option<string>("--data") { Description = "Folder with the Fashion-MNIST IDX files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
var root = new RootCommand("Train a CNN and draw Grad-CAM heatmaps over test images.") { epochs, rows, output, data };
root.SetAction(r => Run(r.GetValue(epochs), r.GetValue(rows), r.GetValue(output)!, r.GetValue(data)!));
return root.Parse(args).Invoke();

static int Run(int epochs, int trainRows, string outputFolder, string dataFolder)
{
    NativeAllocator.KeepFreedMemory();
    string gridPath = Path.Combine(SampleConsole.OutputFolder(outputFolder), "gradcam-grid.png");
    var ml = new MLContext(seed: 1);
    var train = SampleConsole.Phase("Reading Fashion-MNIST", () => ml.Data.Cache(FashionMnist.Load(ml, FashionMnistSplit.Train, trainRows, dataFolder)));
    var options = new CnnClassifierOptions
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = epochs, BatchSize = 64, GradCamColumnName = "GradCam",
        Architecture = new CnnArchitecture { Family = CnnFamily.ResNet, Depth = 3, Width = 32 },
    };
    var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.Transforms.DeepVariants.CnnClassifier(options))
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
    ITransformer model = SampleConsole.Train(options, () => pipeline.Fit(train));

    var testRows = FashionMnist.Read(FashionMnistSplit.Test, 16, dataFolder);
    var scored = model.Transform(ml.Data.LoadFromEnumerable(testRows));
    var images = testRows.Select(r => r.Features).ToList();
    var heatmaps = scored.GetColumn<float[]>("GradCam").ToList();
    var truth = testRows.Select(r => r.Label).ToList();
    var predicted = scored.GetColumn<string>("PredictedClass").ToList();
    GradCamHelpers.WriteOverlayGrid(gridPath, images, heatmaps, 28, 28, columns: 4);
    var table = new Table().AddColumns("image", "truth", "predicted");
    for (int i = 0; i < truth.Count; i++)
        table.AddRow($"{i / 4 + 1},{i % 4 + 1}", truth[i], predicted[i]);
    AnsiConsole.Write(table);
    AnsiConsole.MarkupLine($"Wrote [blue]{gridPath}[/]: 16 test images (row, column as in the table) with their Grad-CAM heatmaps.");
    return 0;
}

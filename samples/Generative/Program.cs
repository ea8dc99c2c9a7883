// Generative sample: trains a variational autoencoder, a DCGAN, a conditional DCGAN and pix2pix (edges to images) on
// Fashion-MNIST, writes one PNG grid per model, and prints the Fréchet distance of each model's samples to real test
// images (in the embedding of a LeNet featurizer trained here; not an FID) and the conditional GAN's classification
// accuracy score.
//   dotnet run -c Release --project samples/Generative -- --epochs 3 --output output/generative
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Generative;
using DeepVariants.Samples;
using Spectre.Console;

var epochs = new Option<int>("--epochs") { Description = "Training epochs of each model.", DefaultValueFactory = _ => 3 };
var rows = new Option<int>("--train-rows") { Description = "Training images.", DefaultValueFactory = _ => 20000 };
var output = new Option<string>("--output") { Description = "Folder for the PNG grids (relative to the working directory).", DefaultValueFactory = _ => Path.Combine("output", "generative") };
var data = new Option<string>("--data") { Description = "Folder with the Fashion-MNIST IDX files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
var root = new RootCommand("Train generative models on Fashion-MNIST, draw their samples and score them.") { epochs, rows, output, data };
root.SetAction(r => Run(r.GetValue(epochs), r.GetValue(rows), r.GetValue(output)!, r.GetValue(data)!));
return root.Parse(args).Invoke();

static int Run(int epochs, int trainRows, string outputFolder, string dataFolder)
{
    NativeAllocator.KeepFreedMemory();
    string folder = SampleConsole.OutputFolder(outputFolder);
    var ml = new MLContext(seed: 1);
    var raw = SampleConsole.Phase("Reading Fashion-MNIST", () => ml.Data.Cache(FashionMnist.Load(ml, FashionMnistSplit.Train, trainRows, dataFolder)));
    var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw);
    var train = keys.Transform(raw);
    var test = keys.Transform(FashionMnist.Load(ml, FashionMnistSplit.Test, 2000, dataFolder));
    var metrics = new Table().AddColumns("model", "Fréchet distance to real test images", "classification accuracy score");

    var featurizerOptions = new CnnFeaturizerOptions { ImageHeight = 28, ImageWidth = 28, Epochs = epochs, Seed = 1 };
    var featurizer = SampleConsole.Train(featurizerOptions, () => ml.Transforms.DeepVariants.CnnFeaturizer(featurizerOptions).Fit(train));
    double Distance(IDataView images, string column) => GenerativeMetrics.FrechetDistance(featurizer, test, images, "Features", column);
    void Draw(string name, IEnumerable<float[]> images, int columns = 8)
    {
        GenerativePlots.WriteGrid(Path.Combine(folder, name), images.ToList(), 28, 28, columns: columns);
        AnsiConsole.MarkupLine($"Wrote [blue]{Path.Combine(folder, name)}[/].");
    }
    metrics.AddRow("real training images (the floor)", $"{Distance(ml.Data.TakeRows(raw, 2000), "Features"):F2}", "");

    var vaeOptions = new VariationalAutoencoderOptions { Kind = VariationalAutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, LatentSize = 16, Epochs = epochs };
    var vae = SampleConsole.Train(vaeOptions, () => ml.Transforms.DeepVariants.VariationalAutoencoder(vaeOptions).Train(raw));
    var vaeSamples = vae.Generate(ml, 2000, seed: 1);
    Draw("vae-samples.png", vaeSamples.GetColumn<float[]>("Generated").Take(64));
    metrics.AddRow("variational autoencoder", $"{Distance(vaeSamples, "Generated"):F2}", "");

    foreach (string? condition in new[] { null, "Label" })
    {
        var ganOptions = new GanOptions { ImageHeight = 28, ImageWidth = 28, ConditionColumnName = condition, Width = 32, Epochs = epochs, GeneratorAverageDecay = 0.999f };
        var gan = SampleConsole.Train(ganOptions, () => ml.Transforms.DeepVariants.Gan(ganOptions).Train(train));
        var samples = gan.Generate(ml, 2000, seed: 1);
        // Conditional: ten columns, one class each, in key order.
        Draw(condition is null ? "dcgan-samples.png" : "cdcgan-samples.png", samples.GetColumn<float[]>("Generated").Take(condition is null ? 64 : 100), condition is null ? 8 : 10);
        string cas = "";
        if (condition is not null)
        {
            var asImages = ml.Transforms.CopyColumns("Features", "Generated").Fit(samples).Transform(samples);
            cas = $"{GenerativeMetrics.ClassificationAccuracyScore(ml.Transforms.DeepVariants.CnnClassifier(28, 28, epochs: epochs), asImages, test):P1}";
        }
        metrics.AddRow(condition is null ? "DCGAN" : "conditional DCGAN", $"{Distance(samples, "Generated"):F2}", cas);
    }

    // pix2pix: edges (a Sobel filter) to images.
    IDataView Edges(IEnumerable<FashionMnistImage> images) =>
        ml.Data.LoadFromEnumerable(images.Select(i => new EdgePair { Edges = EdgeMaps.Sobel(i.Features, 28, 28), Features = i.Features }).ToList());
    var pairs = Edges(FashionMnist.Read(FashionMnistSplit.Train, trainRows, dataFolder));
    var testPairs = Edges(FashionMnist.Read(FashionMnistSplit.Test, 2000, dataFolder));
    var translationOptions = new ImageToImageOptions { SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28, Width = 16, Epochs = epochs };
    var pix2pix = SampleConsole.Train(translationOptions, () => ml.Transforms.DeepVariants.ImageToImage(translationOptions).Fit(pairs));
    var translated = pix2pix.Transform(testPairs);
    var edges = translated.GetColumn<float[]>("Edges").Take(12).ToList();
    var images = translated.GetColumn<float[]>("Translated").Take(12).ToList();
    var real = translated.GetColumn<float[]>("Features").Take(12).ToList();
    Draw("pix2pix-edges.png", Enumerable.Range(0, 12).SelectMany(i => new[] { edges[i], images[i], real[i] }), columns: 6);
    AnsiConsole.Write(metrics);
    AnsiConsole.MarkupLine($"pix2pix, edges to images: PSNR {ImageQuality.Psnr(translated, "Translated", "Features"):F2} dB, SSIM {ImageQuality.Ssim(translated, "Translated", "Features", 28, 28):F3} " +
        "(each triple in pix2pix-edges.png is edges | translated | real).");
    return 0;
}

sealed class EdgePair
{
    [VectorType(784)]
    public float[] Edges { get; set; } = [];
    [VectorType(784)]
    public float[] Features { get; set; } = [];
}

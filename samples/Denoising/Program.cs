// Denoising sample: trains a convolutional denoising autoencoder on Fashion-MNIST with Gaussian noise
// (sigma 0.4, clipped to [0, 1]), reports PSNR and SSIM, and writes a PNG grid: clean | noisy | denoised.
//   dotnet run -c Release --project samples/Denoising -- --epochs 3 --output output/denoising
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Datasets;
using DeepVariants.Samples;
using Spectre.Console;

var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 3 };
var rows = new Option<int>("--train-rows") { Description = "Training images.", DefaultValueFactory = _ => 20000 };
var output = new Option<string>("--output") { Description = "Folder for denoising-grid.png (relative to the working directory).", DefaultValueFactory = _ => Path.Combine("output", "denoising") };
var data = new Option<string>("--data") { Description = "Folder with the Fashion-MNIST IDX files.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
var root = new RootCommand("Train a denoising autoencoder on Fashion-MNIST and draw what it does.") { epochs, rows, output, data };
root.SetAction(r => Run(r.GetValue(epochs), r.GetValue(rows), r.GetValue(output)!, r.GetValue(data)!));
return root.Parse(args).Invoke();

static int Run(int epochs, int trainRows, string outputFolder, string dataFolder)
{
    NativeAllocator.KeepFreedMemory();
    string gridPath = Path.Combine(SampleConsole.OutputFolder(outputFolder), "denoising-grid.png");
    const float sigma = 0.4f;
    var ml = new MLContext(seed: 1);
    var train = SampleConsole.Phase("Reading Fashion-MNIST", () => ml.Data.Cache(FashionMnist.Load(ml, FashionMnistSplit.Train, trainRows, dataFolder)));
    var options = new DenoisingAutoencoderOptions
    {
        Kind = AutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, CodeSize = 128,
        NoiseStandardDeviation = sigma, InputMinimum = 0, InputMaximum = 1, Epochs = epochs, BatchSize = 64,
    };
    ITransformer model = SampleConsole.Train(options, () => ml.Transforms.DeepVariants.DenoisingAutoencoder(options).Fit(train));

    var random = new Random(7);
    var test = FashionMnist.Read(FashionMnistSplit.Test, 1000, dataFolder).Select(image => new Pair
    {
        Clean = image.Features,
        Features = image.Features.Select(v => Math.Clamp(v + sigma * Gaussian(random), 0f, 1f)).ToArray(),
    }).ToList();
    var scored = model.Transform(ml.Data.LoadFromEnumerable(test));
    var table = new Table().AddColumns("", "PSNR (dB)", "SSIM");
    table.AddRow("noisy", $"{ImageQuality.Psnr(scored, "Features", "Clean"):F2}", $"{ImageQuality.Ssim(scored, "Features", "Clean", 28, 28):F3}");
    table.AddRow("denoised", $"{ImageQuality.Psnr(scored, "Denoised", "Clean"):F2}", $"{ImageQuality.Ssim(scored, "Denoised", "Clean", 28, 28):F3}");
    AnsiConsole.Write(table);

    var denoised = scored.GetColumn<float[]>("Denoised").Take(8).ToArray();
    WriteGrid(gridPath, Enumerable.Range(0, 8).Select(i => new[] { test[i].Clean, test[i].Features, denoised[i] }).ToArray());
    AnsiConsole.MarkupLine($"Wrote [blue]{gridPath}[/]: each row is clean | noisy | denoised.");
    return 0;
}

// Rows of 28x28 images, each pixel drawn as a 4x4 block, with 4-pixel gutters; written through a temporary file.
static void WriteGrid(string path, float[][][] rows)
{
    const int scale = 4, cell = 28 * scale, gutter = 4;
    int columns = rows[0].Length, width = columns * (cell + gutter) + gutter, height = rows.Length * (cell + gutter) + gutter;
    var pixels = new byte[width * height * 4];
    Array.Fill(pixels, (byte)255);
    for (int r = 0; r < rows.Length; r++)
        for (int c = 0; c < columns; c++)
            for (int y = 0; y < cell; y++)
                for (int x = 0; x < cell; x++)
                {
                    byte v = (byte)Math.Round(Math.Clamp(rows[r][c][(y / scale) * 28 + x / scale], 0f, 1f) * 255);
                    int at = ((gutter + r * (cell + gutter) + y) * width + gutter + c * (cell + gutter) + x) * 4;
                    pixels[at] = pixels[at + 1] = pixels[at + 2] = v;
                }
    using var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, pixels);
    string temporary = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileNameWithoutExtension(path)}.{Guid.NewGuid():N}.png");
    image.Save(temporary);
    File.Move(temporary, path, overwrite: true);
}

static float Gaussian(Random random) => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));

sealed class Pair
{
    [VectorType(784)]
    public float[] Features { get; set; } = [];
    [VectorType(784)]
    public float[] Clean { get; set; } = [];
}


using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Adversarial;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Generative;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Generative models and adversarial robustness on the full Fashion-MNIST (60,000 training, 10,000 test images), in
/// parts that can run alone (<c>--only</c>; the report keeps the other parts' rows):
/// <list type="bullet">
/// <item><c>reference</c>: this project's reference featurizer (a LeNet trained on the real images) and, in its embedding, the
/// Fréchet distance of the real test set to 10,000 real training images, the floor; a LeNet classifier trained on real data.</item>
/// <item><c>vae</c>, <c>gan</c>, <c>cgan</c>: the Fréchet distance of 10,000 samples of a convolutional VAE, a DCGAN and a
/// conditional DCGAN; the conditional one's classification accuracy score (a LeNet trained on 60,000 samples alone, scored on the real test set).</item>
/// <item><c>pix2pix</c>: edges (a Sobel filter) to images, PSNR and SSIM on the test set, of pix2pix against the same U-Net trained on L1 alone.</item>
/// <item><c>adversarial</c>: accuracy under FGSM and PGD at ε = 0.05 and 0.1 of a plain and a PGD-trained LeNet.</item>
/// </list>
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- generative
/// </summary>
internal static class GenerativeBenchmark
{
    private const string Header = "| part | measure |";
    private static readonly string[] Parts = ["reference", "vae", "gan", "cgan", "pix2pix", "adversarial"];

    public static System.CommandLine.Command Command()
    {
        var only = new Option<string>("--only") { Description = "Comma-separated parts: " + string.Join(", ", Parts) + ".", DefaultValueFactory = _ => string.Join(",", Parts) };
        var ganEpochs = new Option<int>("--gan-epochs") { DefaultValueFactory = _ => 4 };
        var ganWidth = new Option<int>("--gan-width") { DefaultValueFactory = _ => 32 };
        var vaeEpochs = new Option<int>("--vae-epochs") { DefaultValueFactory = _ => 5 };
        var classifierEpochs = new Option<int>("--classifier-epochs") { DefaultValueFactory = _ => 4 };
        var translationEpochs = new Option<int>("--pix2pix-epochs") { DefaultValueFactory = _ => 2 };
        var translationWidth = new Option<int>("--pix2pix-width") { DefaultValueFactory = _ => 16 };
        var adversarialEpochs = new Option<int>("--adversarial-epochs") { DefaultValueFactory = _ => 2 };
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/generative.md" };
        var command = new System.CommandLine.Command("generative", "VAE, DCGAN and conditional DCGAN samples by Fréchet distance and classification accuracy score; accuracy under attack.")
        {
            only, ganEpochs, ganWidth, vaeEpochs, classifierEpochs, translationEpochs, translationWidth, adversarialEpochs, report,
        };
        command.SetAction(r => Run(r.GetValue(only)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), r.GetValue(ganEpochs),
            r.GetValue(ganWidth), r.GetValue(vaeEpochs), r.GetValue(classifierEpochs), r.GetValue(translationEpochs), r.GetValue(translationWidth), r.GetValue(adversarialEpochs), r.GetValue(report)!));
        return command;
    }

    private static int Run(string[] parts, int ganEpochs, int ganWidth, int vaeEpochs, int classifierEpochs, int translationEpochs, int translationWidth, int adversarialEpochs, string reportPath)
    {
        if (parts.Except(Parts).FirstOrDefault() is { } unknown)
            throw new ArgumentException($"Unknown part '{unknown}' in --only; the parts are {string.Join(", ", Parts)}.");
        NativeAllocator.KeepFreedMemory();
        var ml = new MLContext(seed: 1);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n })));
        var rawTrain = FashionMnist.Load(ml, FashionMnistSplit.Train);
        var keying = keys.Fit(rawTrain);
        var train = keying.Transform(rawTrain);
        var test = keying.Transform(FashionMnist.Load(ml, FashionMnistSplit.Test));
        var realTrainSlice = ml.Data.TakeRows(rawTrain, 10_000);
        string imageFolder = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(reportPath))!, "generative");
        Directory.CreateDirectory(imageFolder);
        var rows = new List<string>();
        // Written after every row, so a long run that fails late keeps what it measured.
        var previous = BenchmarkReport.Rows(reportPath, Header);
        void WriteReport()
        {
            var order = Parts.Select((p, i) => (p, i)).ToDictionary(x => x.p, x => x.i);
            var table = BenchmarkReport.Remaining(previous, rows).Concat(rows)
                .OrderBy(l => order.GetValueOrDefault(l.Split('|')[1].Trim(), 99)).ToList();
            var lines = new List<string>
            {
                "# Generative models and adversarial robustness benchmark",
                "",
                $"Machine: {Environment.ProcessorCount} cores, no GPU. Data: the full Fashion-MNIST, 60,000 training and 10,000 test images.",
                "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- generative` (the defaults: `--gan-epochs 4 --gan-width 32 --vae-epochs 5 --classifier-epochs 4 --pix2pix-epochs 2 --pix2pix-width 16 --adversarial-epochs 2`);",
                "a part alone: `-- generative --only cgan` (parts: " + string.Join(", ", Parts) + "); the report keeps the other parts' rows.",
                "",
                "The Fréchet distance is FID's formula (Heusel et al. 2017) in the embedding of this project's reference featurizer, a",
                "LeNet trained on the real Fashion-MNIST training set with a fixed seed, not Inception-v3: the figures compare with one",
                "another, not with published FIDs. Every distance is to the real test set. The classification accuracy score is Ravuri",
                "and Vinyals 2019's.",
                "",
                "| part | measure | value | target | notes |",
                "|---|---|---|---|---|",
            };
            lines.AddRange(table);
            BenchmarkReport.Write(reportPath, lines);
        }
        void Add(string part, string measure, string value, string target, string notes)
        {
            string line = $"| {part} | {measure} | {value} | {target} | {notes} |";
            rows.Add(line);
            AnsiConsole.WriteLine(line);
            WriteReport();
        }

        // The reference featurizer and the real-data classifier, trained with fixed seeds, so every part's figures share them.
        var architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Depth = 2, Width = 32, LayersPerBlock = 1, HiddenSize = 128 };
        var featurizer = new Lazy<ITransformer>(() => ml.Transforms.DeepVariants.CnnFeaturizer(new CnnFeaturizerOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = classifierEpochs, Seed = 1, Architecture = architecture, Device = TorchDeviceKind.Cpu,
        }).Fit(train));
        CnnClassifierEstimator Classifier(AdversarialTraining? adversarial = null) => ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = adversarial is null ? classifierEpochs : adversarialEpochs, Seed = 1, Architecture = architecture, Device = TorchDeviceKind.Cpu, Adversarial = adversarial,
        });
        var realClassifier = new Lazy<FitResult>(() => Classifier().Train(train));
        double Accuracy(ITransformer model) => ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
        double Frechet(IDataView images, string column) => GenerativeMetrics.FrechetDistance(featurizer.Value, test, images, "Features", column);
        string Seconds(Stopwatch clock) => $"{clock.Elapsed.TotalMinutes:F1} min to train";

        if (parts.Contains("reference"))
        {
            Add("reference", "Fréchet distance, real test set to 10,000 real training images (the floor)", $"{Frechet(realTrainSlice, "Features"):F2}", "",
                $"featurizer: LeNet (2 blocks of one convolution, width 32, hidden 128) trained {classifierEpochs} epochs on the real training set; its 128-value embedding");
            Add("reference", "real-data classifier, test accuracy", $"{Accuracy(realClassifier.Value.Model):P2}", "", $"the same LeNet as a classifier, {classifierEpochs} epochs");
        }
        if (parts.Contains("vae"))
        {
            var clock = Stopwatch.StartNew();
            var vae = ml.Transforms.DeepVariants.VariationalAutoencoder(new VariationalAutoencoderOptions
            {
                Kind = VariationalAutoencoderKind.Convolutional, ImageHeight = 28, ImageWidth = 28, LatentSize = 16, Epochs = vaeEpochs, Seed = 1, Device = TorchDeviceKind.Cpu,
            }).Train(rawTrain);
            clock.Stop();
            var samples = vae.Generate(ml, 10_000, seed: 1);
            WriteGrid(Path.Combine(imageFolder, "vae-samples.png"), samples, VariationalAutoencoderFitResult.GeneratedColumnName, 64);
            Add("vae", "Fréchet distance of 10,000 samples", $"{Frechet(samples, "Generated"):F2}", "",
                $"convolutional VAE, latent 16, Bernoulli, {vaeEpochs} epochs, {Seconds(clock)}; samples: generative/vae-samples.png");
        }
        GanFitResult TrainGan(string? condition, out Stopwatch clock)
        {
            clock = Stopwatch.StartNew();
            var fit = ml.Transforms.DeepVariants.Gan(new GanOptions
            {
                ImageHeight = 28, ImageWidth = 28, ConditionColumnName = condition, LatentSize = 64, Width = ganWidth, Epochs = ganEpochs,
                GeneratorAverageDecay = 0.999f, Seed = 1, Device = TorchDeviceKind.Cpu,
                Progress = new Progress<TrainingProgress>(p => { if (p.IsEpochEnd) AnsiConsole.WriteLine($"  epoch {p.Epoch}/{p.Epochs}, {p.Elapsed.TotalMinutes:F1} min"); }),
            }).Train(train);
            clock.Stop();
            return fit;
        }
        string GanNotes(GanFitResult fit, Stopwatch clock) =>
            $"width {ganWidth}, latent 64, non-saturating loss, Adam 2e-4 (β₁ 0.5), batch 64, moving average 0.999 served, {ganEpochs} epochs, {Seconds(clock)}; " +
            $"last epoch: D loss {fit.Losses[^1].DiscriminatorLoss:F3}, G loss {fit.Losses[^1].GeneratorLoss:F3}, D accuracy {fit.Losses[^1].DiscriminatorAccuracy:P0}";
        if (parts.Contains("gan"))
        {
            var gan = TrainGan(null, out var clock);
            var samples = gan.Generate(ml, 10_000, seed: 1);
            WriteGrid(Path.Combine(imageFolder, "dcgan-samples.png"), samples, "Generated", 64);
            Add("gan", "Fréchet distance of 10,000 DCGAN samples", $"{Frechet(samples, "Generated"):F2}", "", GanNotes(gan, clock) + "; samples: generative/dcgan-samples.png");
        }
        if (parts.Contains("cgan"))
        {
            var gan = TrainGan("Label", out var clock);
            var samples = gan.Generate(ml, 10_000, seed: 1);
            WriteGrid(Path.Combine(imageFolder, "cdcgan-samples.png"), samples, "Generated", 100, columns: 10);
            var path = gan.Interpolate(ml, Latent(gan, 2), Latent(gan, 3), steps: 10, classIndex: 7);
            GenerativePlots.WriteGrid(Path.Combine(imageFolder, "cdcgan-interpolation.png"), path, 28, 28, columns: 10);
            Add("cgan", "Fréchet distance of 10,000 conditional DCGAN samples", $"{Frechet(samples, "Generated"):F2}", "",
                GanNotes(gan, clock) + "; samples (one class a column, in label order): generative/cdcgan-samples.png");
            var many = gan.Generate(ml, 60_000, seed: 2);
            var asImages = ml.Transforms.CopyColumns("Features", "Generated").Fit(many).Transform(many);
            double cas = GenerativeMetrics.ClassificationAccuracyScore(Classifier(), asImages, test);
            Add("cgan", "classification accuracy score", $"{cas:P2}", "≥ 80 %",
                $"the reference LeNet trained on 60,000 conditional samples (6,000 a class) alone, scored on the real test set; trained on real data it scores {Accuracy(realClassifier.Value.Model):P2}");
        }
        if (parts.Contains("pix2pix"))
        {
            // Edges (a Sobel filter) to images: the same U-Net with the PatchGAN's loss and with L1 alone.
            static List<EdgePair> Edges(FashionMnistSplit split) =>
                FashionMnist.Read(split).Select(r => new EdgePair { Edges = EdgeMaps.Sobel(r.Features, 28, 28), Features = r.Features }).ToList();
            var pairs = ml.Data.LoadFromEnumerable(Edges(FashionMnistSplit.Train));
            var testPairs = ml.Data.LoadFromEnumerable(Edges(FashionMnistSplit.Test));
            var pictures = new List<float[]>();
            var sources = testPairs.GetColumn<float[]>("Edges").Take(8).ToList();
            var targets = testPairs.GetColumn<float[]>("Features").Take(8).ToList();
            var translations = new List<List<float[]>>();
            foreach (var (name, adversarialWeight) in new[] { ("U-Net, L1 alone", 0f), ("pix2pix (U-Net, L1 + PatchGAN)", 1f) })
            {
                var clock = Stopwatch.StartNew();
                var fit = ml.Transforms.DeepVariants.ImageToImage(new ImageToImageOptions
                {
                    SourceColumnName = "Edges", TargetColumnName = "Features", ImageHeight = 28, ImageWidth = 28, Width = translationWidth, Epochs = translationEpochs,
                    AdversarialWeight = adversarialWeight, Seed = 1, Device = TorchDeviceKind.Cpu,
                }).Train(pairs);
                clock.Stop();
                var translated = fit.Model.Transform(testPairs);
                translations.Add(translated.GetColumn<float[]>("Translated").Take(8).ToList());
                Add("pix2pix", $"{name}: PSNR / SSIM, edges to images", $"{Autoencoders.ImageQuality.Psnr(translated, "Translated", "Features"):F2} dB / " +
                    $"{Autoencoders.ImageQuality.Ssim(translated, "Translated", "Features", 28, 28):F3}", "",
                    $"U-Net depth 2, width {translationWidth}, λ = 100 on L1, Adam 2e-4 (β₁ 0.5), batch 64, {translationEpochs} epochs, {Seconds(clock)}; the 10,000 test items; pictures: generative/pix2pix-edges.png (edges, L1 alone, pix2pix, real; two items a row)");
            }
            for (int i = 0; i < 8; i++)
                pictures.AddRange([sources[i], translations[0][i], translations[1][i], targets[i]]);
            GenerativePlots.WriteGrid(Path.Combine(imageFolder, "pix2pix-edges.png"), pictures, 28, 28, columns: 8);
        }
        if (parts.Contains("adversarial"))
        {
            var clock = Stopwatch.StartNew();
            var defended = Classifier(new AdversarialTraining { Attack = AdversarialAttack.Pgd, Epsilon = 0.1f, Steps = 5 }).Train(train);
            clock.Stop();
            float[] budgets = [0, 0.05f, 0.1f];
            foreach (var (name, fit) in new[] { ("plain LeNet", realClassifier.Value), ("PGD-trained LeNet", defended) })
                foreach (var attack in new[] { AdversarialAttack.Fgsm, AdversarialAttack.Pgd })
                    foreach (var result in AdversarialEvaluation.Evaluate(ml, fit, test, budgets, attack, steps: 10))
                        if (result.Epsilon > 0 || attack == AdversarialAttack.Fgsm)
                            Add("adversarial", result.Epsilon == 0 ? $"{name}, clean" : $"{name}, {attack.ToString().ToUpperInvariant()} ε = {result.Epsilon:0.00}",
                                $"{result.Accuracy:P2}", name.StartsWith("PGD", StringComparison.Ordinal) && attack == AdversarialAttack.Pgd && result.Epsilon == 0.1f ? "≥ 70 %" : "",
                                name.StartsWith("PGD", StringComparison.Ordinal)
                                    ? $"trained {adversarialEpochs} epochs with half of each batch replaced by PGD examples (ε 0.1, 5 steps), {Seconds(clock)}; PGD attacks: 10 steps, random start"
                                    : $"{classifierEpochs} epochs on clean images");
        }

        AnsiConsole.MarkupLine($"Report written to [bold]{reportPath}[/].");
        return 0;
    }

    // A latent from the prior, the same for a seed.
    private static float[] Latent(GanFitResult gan, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, gan.LatentSize).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();
    }

    private static void WriteGrid(string path, IDataView samples, string column, int count, int columns = 8) =>
        GenerativePlots.WriteGrid(path, samples.GetColumn<float[]>(column).Take(count).ToList(), 28, 28, columns: columns);

    private sealed class EdgePair
    {
        [VectorType(784)]
        public float[] Edges { get; set; } = [];

        [VectorType(784)]
        public float[] Features { get; set; } = [];
    }

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }
}

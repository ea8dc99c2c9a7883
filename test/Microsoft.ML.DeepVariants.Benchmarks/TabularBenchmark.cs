using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Tabular;
using Microsoft.ML.DeepVariants.Tests;
using Spectre.Console;
using static Microsoft.ML.DeepVariants.Tests.TabularTables;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// The tabular network against ML.NET's LightGBM, FastTree and SDCA with their defaults, on the README splits of
/// Letter Recognition, Landsat Satellite and diamonds, in one run on one machine: test accuracy or RMSE and training
/// seconds, written to docs/benchmarks/tabular.md.
///   dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- tabular [--only diamonds]
/// </summary>
internal static class TabularBenchmark
{
    public static System.CommandLine.Command Command()
    {
        var report = new Option<string>("--report") { DefaultValueFactory = _ => "docs/benchmarks/tabular.md" };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "test/Microsoft.ML.DeepVariants.Tests/Data/tabular" };
        var only = new Option<string?>("--only") { Description = "Run only the problem whose name contains this text; the other rows are kept from the report." };
        var command = new System.CommandLine.Command("tabular", "The tabular network against LightGBM, FastTree and SDCA on three real tables.") { report, data, only };
        command.SetAction(r => Execute(r.GetValue(report)!, r.GetValue(data)!, r.GetValue(only)));
        return command;
    }

    /// <summary>One problem: its data with a text label (classification) or a Single label (regression), and what each trainer reads.</summary>
    private sealed record Problem(string Name, IDataView Train, IDataView Test, bool Regression, string Label, string[] Numeric, string[] Categorical,
        TabularNetworkOptions Network);

    private static IEnumerable<Problem> Problems(MLContext ml)
    {
        var (letterTrain, letterTest) = Letters();
        yield return new Problem("Letter Recognition", ml.Data.LoadFromEnumerable(letterTrain), ml.Data.LoadFromEnumerable(letterTest), false,
            nameof(LetterRow.Letter), ["Features"], [], Network(width: 512, depth: 3, dropout: 0.1f, epochs: 80, batch: 128, learningRate: 2e-3f));
        var (satelliteTrain, satelliteTest) = Satellite();
        yield return new Problem("Landsat Satellite", ml.Data.LoadFromEnumerable(satelliteTrain), ml.Data.LoadFromEnumerable(satelliteTest), false,
            nameof(SatelliteRow.Class), ["Features"], [], Network(width: 256, depth: 3, dropout: 0.2f, epochs: 100, batch: 64, learningRate: 1e-3f));
        var (diamondTrain, diamondTest) = Diamonds();
        yield return new Problem("diamonds", ml.Data.LoadFromEnumerable(diamondTrain), ml.Data.LoadFromEnumerable(diamondTest), true,
            nameof(DiamondRow.Price), DiamondRow.Numeric, DiamondRow.Categorical, Network(width: 256, depth: 3, dropout: 0f, epochs: 40, batch: 256, learningRate: 2e-3f));
    }

    private static TabularNetworkOptions Network(int width, int depth, float dropout, int epochs, int batch, float learningRate) => new()
    {
        Width = width, Depth = depth, Dropout = dropout, Epochs = epochs, BatchSize = batch, LearningRate = learningRate,
        Optimizer = OptimizerKind.AdamW, WeightDecay = 1e-5f, Schedule = LearningRateSchedule.Cosine, Seed = 1, Device = TorchDeviceKind.Cpu,
    };

    private static int Execute(string reportPath, string dataFolder, string? only)
    {
        TabularTables.Folder = dataFolder;
        var previous = BenchmarkReport.Rows(reportPath, "| problem");
        var previousSummaries = BenchmarkReport.Items(reportPath);
        var lines = new List<string>
        {
            "# Tabular network against ML.NET's trainers",
            "",
            $"The splits of `test/Microsoft.ML.DeepVariants.Tests/Data/tabular/README.md`, one run, {Environment.ProcessorCount} CPU cores, seed 1.",
            "LightGBM, FastTree and SDCA with their defaults (FastTree for 26 or 6 classes through one-versus-all; SDCA after min-max",
            "normalization; text categories one-hot encoded for all three). The tabular network reads the numeric columns as they are and",
            "the categories through embeddings, trains a fixed number of epochs (no model selection on the test split), and is evaluated",
            "through the saved model: fitted, saved with `mlContext.Model.Save`, loaded, scored through ONNX Runtime inside ML.NET.",
            "Command: `dotnet run -c Release --project test/Microsoft.ML.DeepVariants.Benchmarks -- tabular`",
            "",
            "| problem | trainer | train / test rows | test accuracy or RMSE | training seconds | configuration |",
            "|---|---|---|---|---|---|",
        };
        var summaries = new List<string>();
        var ml = new MLContext(seed: 1);
        foreach (var problem in Problems(ml))
        {
            if (only is not null && !problem.Name.Contains(only, StringComparison.OrdinalIgnoreCase))
            {
                lines.AddRange(previous.Where(p => p.Key.StartsWith(problem.Name + " |", StringComparison.Ordinal)).Select(p => p.Value));
                summaries.AddRange(previousSummaries.Where(l => l.StartsWith($"- {problem.Name}:", StringComparison.Ordinal)));
                continue;
            }
            string sizes = $"{Count(problem.Train):N0} / {Count(problem.Test):N0}";
            var scores = new Dictionary<string, double>();
            foreach (var (trainer, estimator, configuration) in Trainers(ml, problem))
            {
                var clock = Stopwatch.StartNew();
                var model = estimator.Fit(problem.Train);
                double seconds = clock.Elapsed.TotalSeconds;
                if (trainer == "DeepVariants tabular network")
                {
                    string saved = Path.Combine(Path.GetTempPath(), $"tabular-{Guid.NewGuid():N}.zip");
                    ml.Model.Save(model, problem.Train.Schema, saved);
                    model = new MLContext(seed: 1).Model.Load(saved, out _);
                    File.Delete(saved);
                }
                var scored = model.Transform(problem.Test);
                double score = problem.Regression
                    ? ml.Regression.Evaluate(scored, problem.Label).RootMeanSquaredError
                    : ml.MulticlassClassification.Evaluate(scored, "LabelKey").MicroAccuracy * 100;
                scores[trainer] = score;
                string line = $"| {problem.Name} | {trainer} | {sizes} | {(problem.Regression ? $"RMSE {score:F1}" : $"{score:F2} %")} | {seconds:F1} | {configuration} |";
                lines.Add(line);
                AnsiConsole.WriteLine(line);
                BenchmarkReport.Write(reportPath, [.. lines, .. BenchmarkReport.Remaining(previous, lines)]);
            }
            summaries.Add(Summary(problem, scores));
        }
        if (only is null || "Fashion-MNIST".Contains(only, StringComparison.OrdinalIgnoreCase))
            summaries.AddRange(Streams(ml, lines, previous, reportPath));
        else
        {
            lines.AddRange(previous.Where(p => p.Key.StartsWith("Fashion-MNIST", StringComparison.Ordinal)).Select(p => p.Value));
            summaries.AddRange(previousSummaries.Where(l => l.StartsWith("- Multi-", StringComparison.Ordinal)));
        }
        BenchmarkReport.Write(reportPath, [.. lines, "", "Targets (within 1 point of the best peer on Letter and Satellite, within 5 % RMSE on diamonds, ahead of SDCA everywhere;",
            "the multi-task and multi-stream networks ahead of their single-task and single-stream baselines):", "", .. summaries]);
        return 0;
    }

    // The worked examples: one CNN trunk with two heads (the item and its group) against a network per label, and the
    // image fused with a noisy hint of the class against either stream alone; 10,000 training images, the 10,000 test images.
    private static IEnumerable<string> Streams(MLContext ml, List<string> lines, Dictionary<string, string> previous, string reportPath)
    {
        var train = FashionStreams.Items(Datasets.FashionMnist.Read(Datasets.FashionMnistSplit.Train, maxRows: 10_000), seed: 1);
        var test = FashionStreams.Items(Datasets.FashionMnist.Read(Datasets.FashionMnistSplit.Test), seed: 2);
        var trainData = ml.Data.LoadFromEnumerable(train);
        var testData = ml.Data.LoadFromEnumerable(test);
        string sizes = $"{train.Count:N0} / {test.Count:N0}";
        TabularNetworkOptions Options(bool image, bool hint, StreamFusion fusion, params TabularLabel[] labels) => new()
        {
            NumericColumnNames = hint ? [nameof(FashionStreams.FashionItem.Hint)] : [],
            ImageColumnName = image ? nameof(FashionStreams.FashionItem.Pixels) : null, ImageHeight = 28, ImageWidth = 28, Fusion = fusion,
            LabelColumnName = labels[0].ColumnName, Labels = labels.Length > 1 ? labels : [], Width = 128, Depth = 1, Epochs = 8, BatchSize = 64,
            Schedule = LearningRateSchedule.Cosine, Seed = 1, Device = TorchDeviceKind.Cpu,
        };
        double Accuracy(ITransformer model, string label, string predicted)
        {
            var scored = model.Transform(testData);
            return PredictedClasses.Accuracy(scored, predicted, scored.GetColumn<string>(label)) * 100;
        }
        (ITransformer Model, double Seconds) Fit(TabularNetworkOptions options)
        {
            var clock = Stopwatch.StartNew();
            var model = ml.Transforms.DeepVariants.TabularNetwork(options).Fit(trainData);
            return (model, clock.Elapsed.TotalSeconds);
        }
        void Row(string problem, string trainer, double accuracy, double seconds, string configuration)
        {
            string line = $"| {problem} | {trainer} | {sizes} | {accuracy:F2} % | {seconds:F1} | {configuration} |";
            lines.Add(line);
            AnsiConsole.WriteLine(line);
            BenchmarkReport.Write(reportPath, [.. lines, .. BenchmarkReport.Remaining(previous, lines)]);
        }
        const string trunk = "CNN trunk (32-64 filters), width 128, 1 residual block, 8 epochs, batch 64, Adam lr 0.001 cosine";
        var item = new TabularLabel(nameof(FashionStreams.FashionItem.Item), TabularTaskKind.Multiclass);
        var group = new TabularLabel(nameof(FashionStreams.FashionItem.Group), TabularTaskKind.Multiclass);
        var (itemModel, itemSeconds) = Fit(Options(true, false, StreamFusion.Concatenate, item));
        double itemAlone = Accuracy(itemModel, item.ColumnName, "PredictedLabel");
        Row("Fashion-MNIST item", "single-task CNN", itemAlone, itemSeconds, trunk);
        var (groupModel, groupSeconds) = Fit(Options(true, false, StreamFusion.Concatenate, group));
        double groupAlone = Accuracy(groupModel, group.ColumnName, "PredictedLabel");
        Row("Fashion-MNIST group", "single-task CNN", groupAlone, groupSeconds, trunk);
        var (both, bothSeconds) = Fit(Options(true, false, StreamFusion.Concatenate, item, group));
        double itemShared = Accuracy(both, item.ColumnName, "PredictedLabel.Item"), groupShared = Accuracy(both, group.ColumnName, "PredictedLabel.Group");
        Row("Fashion-MNIST item", "multi-task CNN (item and group heads)", itemShared, bothSeconds, trunk + ", equal loss weights");
        Row("Fashion-MNIST group", "multi-task CNN (item and group heads)", groupShared, bothSeconds, trunk + ", equal loss weights");

        var results = new Dictionary<string, double>();
        foreach (var (name, image, hint, fusion) in new[] { ("image only", true, false, StreamFusion.Concatenate), ("hint only", false, true, StreamFusion.Concatenate),
            ("image and hint, concatenated", true, true, StreamFusion.Concatenate), ("image and hint, gated sum", true, true, StreamFusion.GatedSum) })
        {
            var (model, seconds) = Fit(Options(image, hint, fusion, item));
            results[name] = Accuracy(model, item.ColumnName, "PredictedLabel");
            Row("Fashion-MNIST item + noisy hint", name, results[name], seconds, image ? trunk : "MLP width 128, 1 residual block, 8 epochs");
        }
        double single = Math.Max(results["image only"], results["hint only"]);
        yield return $"- Multi-task: item {itemShared:F2} % against {itemAlone:F2} % alone ({(itemShared > itemAlone ? "ahead" : "behind")}); " +
            $"group {groupShared:F2} % against {groupAlone:F2} % alone ({(groupShared > groupAlone ? "ahead" : "behind")}); one trunk instead of two.";
        yield return $"- Multi-stream: concatenated {results["image and hint, concatenated"]:F2} %, gated sum {results["image and hint, gated sum"]:F2} %, " +
            $"against the better single stream {single:F2} % ({(Math.Min(results["image and hint, concatenated"], results["image and hint, gated sum"]) > single ? "both ahead" : "not both ahead")}).";
    }

    private static string Summary(Problem problem, Dictionary<string, double> scores)
    {
        double network = scores["DeepVariants tabular network"];
        var peers = scores.Where(s => s.Key != "DeepVariants tabular network").ToList();
        if (problem.Regression)
        {
            var best = peers.MinBy(p => p.Value);
            double ratio = network / best.Value;
            return $"- {problem.Name}: network RMSE {network:F1}, best peer {best.Key} {best.Value:F1} (ratio {ratio:F3}; target <= 1.05: {(ratio <= 1.05 ? "met" : "missed")}); " +
                $"SDCA {scores["SDCA"]:F1} ({(network < scores["SDCA"] ? "ahead" : "behind")}).";
        }
        var top = peers.MaxBy(p => p.Value);
        double gap = top.Value - network;
        return $"- {problem.Name}: network {network:F2} %, best peer {top.Key} {top.Value:F2} % (gap {gap:F2} points; target <= 1: {(gap <= 1 ? "met" : "missed")}); " +
            $"SDCA {scores["SDCA"]:F2} % ({(network > scores["SDCA"] ? "ahead" : "behind")}).";
    }

    private static IEnumerable<(string Name, IEstimator<ITransformer> Estimator, string Configuration)> Trainers(MLContext ml, Problem problem)
    {
        // The peers read one feature vector: numbers, then the one-hot categories.
        IEstimator<ITransformer> features = problem.Categorical.Length == 0
            ? ml.Transforms.Concatenate("PeerFeatures", problem.Numeric)
            : ml.Transforms.Categorical.OneHotEncoding([.. problem.Categorical.Select(c => new InputOutputColumnPair(c + ".OneHot", c))])
                .Append(ml.Transforms.Concatenate("PeerFeatures", [.. problem.Numeric, .. problem.Categorical.Select(c => c + ".OneHot")]));
        var network = problem.Network;
        network.NumericColumnNames = problem.Numeric;
        network.CategoricalColumnNames = problem.Categorical;
        string configuration = $"width {network.Width}, depth {network.Depth}, dropout {network.Dropout}, {network.Epochs} epochs, batch {network.BatchSize}, " +
            $"AdamW lr {network.LearningRate} cosine, weight decay {network.WeightDecay}";
        if (problem.Regression)
        {
            network.LabelColumnName = problem.Label;
            network.Task = TabularTaskKind.Regression;
            yield return ("LightGBM", features.Append(ml.Regression.Trainers.LightGbm(problem.Label, "PeerFeatures")), "defaults");
            yield return ("FastTree", features.Append(ml.Regression.Trainers.FastTree(problem.Label, "PeerFeatures")), "defaults");
            yield return ("SDCA", features.Append(ml.Transforms.NormalizeMinMax("PeerFeatures")).Append(ml.Regression.Trainers.Sdca(problem.Label, "PeerFeatures")), "defaults, min-max normalized");
            yield return ("DeepVariants tabular network", ml.Regression.Trainers.TabularNetwork(network), configuration);
            yield break;
        }
        var key = ml.Transforms.Conversion.MapValueToKey("LabelKey", problem.Label);
        network.LabelColumnName = "LabelKey";
        network.Task = TabularTaskKind.Multiclass;
        yield return ("LightGBM", key.Append(features).Append(ml.MulticlassClassification.Trainers.LightGbm("LabelKey", "PeerFeatures")), "defaults");
        yield return ("FastTree", key.Append(features).Append(ml.MulticlassClassification.Trainers.OneVersusAll(ml.BinaryClassification.Trainers.FastTree(labelColumnName: "LabelKey", featureColumnName: "PeerFeatures"), "LabelKey")),
            "defaults, one-versus-all");
        yield return ("SDCA", key.Append(features).Append(ml.Transforms.NormalizeMinMax("PeerFeatures")).Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("LabelKey", "PeerFeatures")),
            "defaults, min-max normalized");
        yield return ("DeepVariants tabular network", key.Append(ml.MulticlassClassification.Trainers.TabularNetwork(network)), configuration);
    }

    private static long Count(IDataView data) => data.GetRowCount() ?? throw new InvalidOperationException("The tables are loaded from lists, which know their row count.");
}

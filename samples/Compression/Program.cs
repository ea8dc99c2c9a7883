// Compression sample: trains a VGG teacher and a LeNet student a tenth its size on a Fashion-MNIST slice,
// distills the teacher into a second copy of the student, then prunes the teacher to 50, 80 and 90 % sparsity
// with one epoch of fine-tuning; prints parameters and test accuracy of each.
//   dotnet run -c Release --project samples/Compression -- --train-rows 20000
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Distillation;
using Microsoft.ML.DeepVariants.Pruning;
using DeepVariants.Samples;
using Spectre.Console;

var rows = new Option<int>("--train-rows") { Description = "Training images.", DefaultValueFactory = _ => 20000 };
var epochs = new Option<int>("--epochs") { Description = "Epochs of the teacher and the students.", DefaultValueFactory = _ => 5 };
var root = new RootCommand("Distill a CNN into one a tenth its size, and prune it.") { rows, epochs };
root.SetAction(r => Run(r.GetValue(rows), r.GetValue(epochs)));
return root.Parse(args).Invoke();

static int Run(int trainRows, int epochs)
{
    NativeAllocator.KeepFreedMemory();
    var ml = new MLContext(seed: 1);
    var classes = ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new ClassName { Label = n }));
    var toKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classes);
    var (train, test) = SampleConsole.Phase("Reading Fashion-MNIST", () =>
    {
        var trainRaw = FashionMnist.Load(ml, FashionMnistSplit.Train, trainRows);
        var testRaw = FashionMnist.Load(ml, FashionMnistSplit.Test);
        return (ml.Data.Cache(toKey.Fit(trainRaw).Transform(trainRaw)), ml.Data.Cache(toKey.Fit(testRaw).Transform(testRaw)));
    });
    CnnClassifierOptions Options(CnnArchitecture architecture) => new()
    {
        ImageHeight = 28, ImageWidth = 28, Architecture = architecture, Epochs = epochs, LearningRate = 2e-3f, Schedule = LearningRateSchedule.Cosine,
    };
    double Accuracy(ITransformer model) => SampleConsole.Phase("Scoring the test images", () => ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy);
    FitResult Fit(CnnClassifierOptions options) => SampleConsole.Train(options, () => ml.Transforms.DeepVariants.CnnClassifier(options).Train(train));

    var table = new Table().AddColumns("model", "parameters", "test accuracy");
    AnsiConsole.MarkupLine("Training the teacher (VGG) ...");
    var teacher = Fit(Options(new CnnArchitecture { Family = CnnFamily.Vgg, Depth = 3, Width = 32 }));
    table.AddRow("teacher: VGG", $"{teacher.ParameterCount:N0}", $"{Accuracy(teacher.Model):P2}");

    var student = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 8, HiddenSize = 24 };
    AnsiConsole.MarkupLine("Training the student alone, then distilled ...");
    var alone = Fit(Options(student));
    table.AddRow("student alone: LeNet", $"{alone.ParameterCount:N0}", $"{Accuracy(alone.Model):P2}");
    var distillation = new DistillationOptions { Student = Options(student), Temperature = 2, Alpha = 0.5 };
    var distilled = SampleConsole.Train(distillation.Student, () => ml.Transforms.DeepVariants.Distill(teacher.Model, distillation).Train(train));
    table.AddRow("distilled student", $"{distilled.ParameterCount:N0}", $"{Accuracy(distilled.Model):P2}");

    foreach (double sparsity in new[] { 0.5, 0.8, 0.9 })
    {
        AnsiConsole.MarkupLine($"Pruning the teacher to {sparsity:P0} ...");
        var pruning = new PruningOptions { Sparsity = sparsity, Epochs = 1, LearningRate = 2e-4f };
        var pruned = SampleConsole.Train(pruning, () => ml.Transforms.DeepVariants.Prune(teacher, pruning).Train(train, test));
        long nonZero = pruned.Report.Layers.Sum(l => l.Weights - l.Zeros);
        table.AddRow($"teacher pruned to {pruned.Report.Sparsity:P0}", $"{nonZero:N0} non-zero weights",
            $"{pruned.Report.AccuracyAfter:P2} ({pruned.Report.AccuracyPruned:P2} before fine-tuning)");
    }
    AnsiConsole.Write(table);
    return 0;
}

internal sealed class ClassName
{
    public string Label { get; set; } = "";
}

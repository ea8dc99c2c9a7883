// Sequences sample: trains an LSTM with attention pooling on a UEA/UCR problem (JapaneseVowels by default:
// 12 channels, series of 7 to 29 steps, 9 speakers), shows a confusion table, saves the model and predicts
// again from the saved file.
//   dotnet run -c Release --project samples/Sequences -- --problem test/Microsoft.ML.DeepVariants.Tests/Data/timeseries/JapaneseVowels
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Sequences;
using Spectre.Console;

var problem = new Option<string>("--problem") { Description = "Folder holding NAME_TRAIN.ts and NAME_TEST.ts.",
    DefaultValueFactory = _ => "test/Microsoft.ML.DeepVariants.Tests/Data/timeseries/JapaneseVowels" };
var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 40 };
var cell = new Option<RecurrentCell>("--cell") { Description = "Lstm or Gru.", DefaultValueFactory = _ => RecurrentCell.Lstm };
var root = new RootCommand("Classify multivariate series of any length with an LSTM or GRU.") { problem, epochs, cell };
root.SetAction(r => Run(r.GetValue(problem)!, r.GetValue(epochs), r.GetValue(cell)));
return root.Parse(args).Invoke();

static int Run(string folder, int epochs, RecurrentCell cell)
{
    NativeAllocator.KeepFreedMemory();
    string name = Path.GetFileName(Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar));
    var ml = new MLContext(seed: 1);
    var trainProblem = TimeSeriesFile.Read(Path.Combine(folder, $"{name}_TRAIN.ts"));
    var train = TimeSeriesFile.ToDataView(ml, trainProblem);
    var test = TimeSeriesFile.Load(ml, Path.Combine(folder, $"{name}_TEST.ts"));
    AnsiConsole.MarkupLine($"[bold]{name}[/]: {trainProblem.Cases.Count} training series of {trainProblem.Dimensions} channel(s), {trainProblem.MinLength} to {trainProblem.MaxLength} steps, {trainProblem.ClassLabels.Count} classes.");

    SequenceFitResult result = null!;
    AnsiConsole.Progress().Start(progress =>
    {
        var task = progress.AddTask("training", maxValue: epochs);
        var options = new SequenceClassifierOptions
        {
            Channels = trainProblem.Dimensions, Epochs = epochs, BatchSize = 32, LearningRate = 3e-3f, Schedule = LearningRateSchedule.Cosine,
            Architecture = new SequenceArchitecture { Cell = cell, HiddenSize = 64, Bidirectional = true, Pooling = SequencePooling.Attention },
            // p.Epochs is the epochs training runs: more than asked when MinimumSteps needs them.
            Progress = new Progress<TrainingProgress>(p => { if (p.IsEpochEnd) (task.MaxValue, task.Value) = (p.Epochs, p.Epoch); }),
        };
        result = ml.Transforms.DeepVariants.SequenceClassifier(options).Train(train);
    });

    var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(test));
    AnsiConsole.MarkupLine($"{cell}, {epochs} epochs, {result.ParameterCount:N0} parameters: test accuracy [bold]{metrics.MicroAccuracy:P2}[/]");
    AnsiConsole.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

    // A model fitted on a variable-length column pads it with a CustomMapping: register this assembly to load it.
    ml.Model.Save(result.Model, train.Schema, "sequences.zip");
    var loading = new MLContext();
    loading.ComponentCatalog.RegisterAssembly(typeof(SequenceClassifierEstimator).Assembly);
    var loaded = loading.Model.Load("sequences.zip", out _);
    var again = ml.MulticlassClassification.Evaluate(loaded.Transform(test));
    AnsiConsole.MarkupLine($"Saved to sequences.zip; the loaded model scores {again.MicroAccuracy:P2} on the test series.");
    return 0;
}

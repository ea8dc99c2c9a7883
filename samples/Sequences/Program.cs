// Sequences sample: trains a sequence classifier of a chosen family (an LSTM with attention pooling by default; FCN,
// ResNet, InceptionTime or a Transformer) on a UEA/UCR problem (JapaneseVowels by default: 12 channels, series of 7 to
// 29 steps, 9 speakers), shows a confusion table, saves the model and predicts again from the saved file. With
// attention (the LSTM and the Transformer) it also draws the first test series with its weights to attention.png.
// Its files go to --output.
//   dotnet run -c Release --project samples/Sequences -- --family Transformer --output output/sequences
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Sequences;
using DeepVariants.Samples;
using Spectre.Console;

var problem = new Option<string>("--problem") { Description = "Folder holding NAME_TRAIN.ts and NAME_TEST.ts.",
    DefaultValueFactory = _ => Path.Combine(AppContext.BaseDirectory, "Data", "JapaneseVowels") };
var epochs = new Option<int>("--epochs") { Description = "Training epochs.", DefaultValueFactory = _ => 40 };
var family = new Option<string>("--family") { Description = "Lstm, Gru, Fcn, ResNet, InceptionTime or Transformer.", DefaultValueFactory = _ => "Lstm" };
var output = new Option<string>("--output") { Description = "Folder for sequences.zip and attention.png (relative to the working directory).", DefaultValueFactory = _ => Path.Combine("output", "sequences") };
var root = new RootCommand("Classify multivariate series of any length with a recurrent, convolutional or Transformer network.") { problem, epochs, family, output };
root.SetAction(r => Run(r.GetValue(problem)!, r.GetValue(epochs), r.GetValue(family)!, r.GetValue(output)!));
return root.Parse(args).Invoke();

static int Run(string folder, int epochs, string family, string outputFolder)
{
    SequenceArchitecture architecture = family.ToLowerInvariant() switch
    {
        "lstm" or "gru" => new() { Cell = Enum.Parse<RecurrentCell>(family, ignoreCase: true), HiddenSize = 64, Bidirectional = true, Pooling = SequencePooling.Attention },
        "fcn" or "resnet" => new() { Family = SequenceFamily.TemporalConvolution, Preset = Enum.Parse<TemporalConvolutionPreset>(family, ignoreCase: true) },
        // JapaneseVowels' shortest training series have 7 steps: kernels of 8, 4 and 2 fit them all.
        "inceptiontime" => new() { Family = SequenceFamily.TemporalConvolution, Preset = TemporalConvolutionPreset.InceptionTime, KernelSize = 8 },
        "transformer" => new() { Family = SequenceFamily.Transformer, Layers = 2, ModelWidth = 64, Heads = 4, Dropout = 0.1f },
        _ => throw new ArgumentException($"--family must be Lstm, Gru, Fcn, ResNet, InceptionTime or Transformer, not '{family}'."),
    };
    NativeAllocator.KeepFreedMemory();
    string outputs = SampleConsole.OutputFolder(outputFolder);
    string name = Path.GetFileName(Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar));
    var ml = new MLContext(seed: 1);
    var trainProblem = TimeSeriesFile.Read(Path.Combine(folder, $"{name}_TRAIN.ts"));
    var train = TimeSeriesFile.ToDataView(ml, trainProblem);
    var test = TimeSeriesFile.Load(ml, Path.Combine(folder, $"{name}_TEST.ts"));
    AnsiConsole.MarkupLine($"[bold]{name}[/]: {trainProblem.Cases.Count} training series of {trainProblem.Dimensions} channel(s), {trainProblem.MinLength} to {trainProblem.MaxLength} steps, {trainProblem.ClassLabels.Count} classes.");

    var options = new SequenceClassifierOptions
    {
        Channels = trainProblem.Dimensions, Epochs = epochs, BatchSize = 32, LearningRate = 3e-3f, Schedule = LearningRateSchedule.Cosine,
        Architecture = architecture, AttentionColumnName = architecture.HasAttention ? "Attention" : null,
    };
    var result = SampleConsole.Train(options, () => ml.Transforms.DeepVariants.SequenceClassifier(options).Train(train));

    var scored = result.Model.Transform(test);
    var metrics = ml.MulticlassClassification.Evaluate(scored);
    AnsiConsole.MarkupLine($"{family}, {epochs} epochs, {result.ParameterCount:N0} parameters: test accuracy [bold]{metrics.MicroAccuracy:P2}[/]");
    AnsiConsole.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

    if (architecture.HasAttention)
    {
        string picture = Path.Combine(outputs, "attention.png");
        AttentionPlot.Write(picture, scored.GetColumn<float[]>("Series").First(), scored.GetColumn<float[]>("Attention").First(), trainProblem.Dimensions);
        AnsiConsole.MarkupLine($"The first test series and its attention weights: {Markup.Escape(picture)}");
    }

    // The saved model is ML.NET and ONNX transformers only: plain ML.NET loads it.
    string modelPath = Path.Combine(outputs, "sequences.zip");
    ml.Model.Save(result.Model, train.Schema, modelPath);
    var loaded = new MLContext().Model.Load(modelPath, out _);
    var again = ml.MulticlassClassification.Evaluate(loaded.Transform(test));
    AnsiConsole.MarkupLine($"Saved to {Markup.Escape(modelPath)}; the loaded model scores {again.MicroAccuracy:P2} on the test series.");
    return 0;
}

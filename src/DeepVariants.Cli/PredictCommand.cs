using System.CommandLine;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a Command namespace, which would hide System.CommandLine's type inside this namespace.
using Command = System.CommandLine.Command;

/// <summary><c>deepvariants predict</c>: a saved model on images, series or a table, one CSV row per input.</summary>
internal static class PredictCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var model = new Option<string>("--model") { Description = "The saved model (.zip).", Required = true };
        var data = new Option<string>("--data") { Description = "What to predict: an image, a folder of images (subfolders included), a .ts file, or a CSV with the model's columns (the label may be left out).", Required = true };
        var output = new Option<string>("--output") { Description = "The CSV written: the input (image file or row number), the prediction and, for a classifier, its probability and every class's. Example: --output predictions.csv", DefaultValueFactory = _ => "predictions.csv" };
        var corrupt = new Option<CorruptImages>("--on-corrupt") { Description = "An image that does not decode: Fail or Skip.", DefaultValueFactory = _ => CorruptImages.Fail };
        var command = new Command("predict", "Predict with a saved model and write one CSV row per input.\n" +
            "Examples:\n  deepvariants predict --model model/model.zip --data new-images/ --output predictions.csv\n  deepvariants predict --model model/model.zip --data new-rows.csv")
        {
            model, data, output, corrupt,
        };
        command.SetAction(parse => Predict(parse.GetValue(model)!, parse.GetValue(data)!, parse.GetValue(output)!, parse.GetValue(corrupt), console));
        return command;
    }

    private static int Predict(string modelPath, string dataPath, string output, CorruptImages corrupt, IAnsiConsole console)
    {
        if (Directory.Exists(output))
            throw new UsageException($"--output: '{output}' is a folder; expected the CSV file to write.");
        var ml = new MLContext(1);
        var saved = SavedModel.Load(ml, modelPath, "--model");
        var (data, names) = TrainingFeedback.Phase(console, "Reading and checking the data", () => saved.Read(ml, dataPath, "--data", label: null, corrupt, console));
        var scored = TrainingFeedback.Phase(console, "Scoring", () => TrainingFeedback.Materialize(ml, saved.Model.Transform(data)));
        var csv = new StringBuilder();
        string source = saved.Kind == SourceKind.Images ? "image" : "row";
        if (SavedModel.ClassNames(scored) is { } classes)
        {
            csv.AppendLine(string.Join(",", new[] { source, "predicted", "probability" }.Concat(classes.Select(c => $"probability.{c}")).Select(Quote)));
            var labels = scored.GetColumn<uint>("PredictedLabel").ToList();
            var scores = scored.GetColumn<float[]>("Score").ToList();
            for (int i = 0; i < labels.Count; i++)
            {
                string name = labels[i] == 0 ? "" : classes[labels[i] - 1];
                var row = new[] { names[i], name, scores[i].Max().ToString("R", CultureInfo.InvariantCulture) }
                    .Concat(scores[i].Select(s => s.ToString("R", CultureInfo.InvariantCulture)));
                csv.AppendLine(string.Join(",", row.Select(Quote)));
            }
            Report(console, labels.Count, output, labels.GroupBy(l => l == 0 ? "(none)" : classes[l - 1]).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}"));
        }
        else if (scored.Schema.GetColumnOrNull("Score") is { Type: NumberDataViewType })
        {
            csv.AppendLine($"{source},predicted");
            var values = scored.GetColumn<float>("Score").ToList();
            for (int i = 0; i < values.Count; i++)
                csv.AppendLine($"{Quote(names[i])},{values[i].ToString("R", CultureInfo.InvariantCulture)}");
            Report(console, values.Count, output, [$"mean {values.Average():G5}", $"from {values.Min():G5} to {values.Max():G5}"]);
        }
        else
        {
            throw new UsageException($"--model: '{modelPath}' writes neither a classifier's Score and PredictedLabel nor a regression's Score.");
        }
        OutputFiles.WriteText(output, csv.ToString());
        return CommandLine.Success;
    }

    private static void Report(IAnsiConsole console, int rows, string output, IEnumerable<string> summary) =>
        console.MarkupLine(Markup.Escape($"Wrote {rows:N0} predictions to {output}: {string.Join(", ", summary.Take(10))}."));

    private static string Quote(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? $"\"{value.Replace("\"", "\"\"")}\"" : value;
}

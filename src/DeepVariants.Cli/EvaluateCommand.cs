using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Data;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a Command namespace, which would hide System.CommandLine's type inside this namespace.
using Command = System.CommandLine.Command;

/// <summary><c>deepvariants evaluate</c>: a saved model's metrics on labelled data, with a confusion table for a classifier.</summary>
internal static class EvaluateCommand
{
    private const string TruthColumn = "DeepVariants.Truth";

    public static Command Create(IAnsiConsole console)
    {
        var model = new Option<string>("--model") { Description = "The saved model (.zip) that train, sweep or mlContext.Model.Save wrote.", Required = true };
        var data = new Option<string>("--data") { Description = "Labelled data of the kind the model reads: a folder of class folders, a .ts file or a CSV with the label column.", Required = true };
        var label = new Option<string?>("--label") { Description = "A CSV's label column; the one in model.json beside the model when left out, else 'Label'. Example: --label price" };
        var corrupt = new Option<CorruptImages>("--on-corrupt") { Description = "An image that does not decode: Fail or Skip.", DefaultValueFactory = _ => CorruptImages.Fail };
        var plots = new Option<string?>("--plots") { Description = "Folder for confusion-matrix.png (classifiers). Example: --plots plots" };
        var command = new Command("evaluate", "Score a saved model on labelled data: accuracy and a confusion table for a classifier, RMSE, MAE and R² for a regression.\n" +
            "Example:\n  deepvariants evaluate --model model/model.zip --data test-images/ --plots plots")
        {
            model, data, label, corrupt, plots,
        };
        command.SetAction(parse => Evaluate(parse.GetValue(model)!, parse.GetValue(data)!, parse.GetValue(label), parse.GetValue(corrupt), parse.GetValue(plots), console));
        return command;
    }

    private static int Evaluate(string modelPath, string dataPath, string? label, CorruptImages corrupt, string? plots, IAnsiConsole console)
    {
        if (plots is not null)
            TrainCommand.RequireFolder(plots, "--plots");
        var ml = new MLContext(1);
        var saved = SavedModel.Load(ml, modelPath, "--model");
        label ??= saved.Card?.Label ?? "Label";
        var (data, _) = TrainingFeedback.Phase(console, "Reading and checking the data", () => saved.Read(ml, dataPath, "--data", label, corrupt, console));
        // Scored once, into memory, so that the metrics and the tables below do not run the model again.
        var scored = TrainingFeedback.Phase(console, "Scoring", () => TrainingFeedback.Materialize(ml, saved.Model.Transform(data)));
        if (SavedModel.ClassNames(scored) is { } classes)
            return Classification(ml, scored, classes, label, dataPath, plots, console);
        if (scored.Schema.GetColumnOrNull("Score") is { Type: NumberDataViewType })
        {
            if (scored.Schema[label].Type is not NumberDataViewType)
                throw new UsageException($"--label: column '{label}' of '{dataPath}' holds {scored.Schema[label].Type}; the model is a regression, which needs numbers.");
            var metrics = ml.Regression.Evaluate(scored, label, "Score");
            var table = new Table().AddColumns("metric", "value");
            table.AddRow("rows", data.GetColumn<float>(label).Count(v => !float.IsNaN(v)).ToString("N0", CultureInfo.InvariantCulture));
            table.AddRow("RMSE", metrics.RootMeanSquaredError.ToString("G5", CultureInfo.InvariantCulture));
            table.AddRow("MAE", metrics.MeanAbsoluteError.ToString("G5", CultureInfo.InvariantCulture));
            table.AddRow("R²", metrics.RSquared.ToString("F4", CultureInfo.InvariantCulture));
            console.Write(table);
            return CommandLine.Success;
        }
        throw new UsageException($"--model: '{modelPath}' writes neither a classifier's Score and PredictedLabel nor a regression's Score, so there is nothing to evaluate.");
    }

    private static int Classification(MLContext ml, IDataView scored, string[] classes, string label, string dataPath, string? plots, IAnsiConsole console)
    {
        // The data's labels as text, then keyed in the model's class order, so that the evaluator compares like with like.
        var truthColumn = scored.Schema.GetColumnOrNull(label) ?? throw new UsageException($"--label: '{dataPath}' has no label column '{label}'.");
        IDataView withText = scored;
        string textColumn = label;
        if (truthColumn.Type is KeyDataViewType)
        {
            textColumn = TruthColumn + ".Text";
            withText = ml.Transforms.Conversion.MapKeyToValue(textColumn, label).Fit(scored).Transform(scored);
        }
        else if (truthColumn.Type is not TextDataViewType)
        {
            textColumn = TruthColumn + ".Text";
            withText = ml.Transforms.Conversion.ConvertType(textColumn, label, DataKind.String).Fit(scored).Transform(scored);
        }
        var truths = withText.GetColumn<ReadOnlyMemory<char>>(textColumn).Select(t => t.ToString()).ToList();
        var unknown = truths.Where(t => t.Length > 0 && Array.IndexOf(classes, t) < 0).GroupBy(t => t).ToList();
        if (unknown.Count > 0)
            console.MarkupLine($"[yellow]warning:[/] {Markup.Escape($"{unknown.Sum(g => g.Count())} rows of '{dataPath}' have classes the model never saw ({string.Join(", ", unknown.Take(5).Select(g => $"'{g.Key}'"))}); they are left out.")}");
        int rows = truths.Count(t => Array.IndexOf(classes, t) >= 0);
        if (rows == 0)
            throw new UsageException($"--data: no row of '{dataPath}' has a class the model knows ({string.Join(", ", classes.Take(10).Select(c => $"'{c}'"))}).");
        var order = ml.Data.LoadFromEnumerable(classes.Select(c => new ClassName { Value = c }));
        var keyed = ml.Transforms.Conversion.MapValueToKey(TruthColumn, textColumn, keyData: order).Fit(withText).Transform(withText);
        var metrics = ml.MulticlassClassification.Evaluate(keyed, TruthColumn, "Score", "PredictedLabel");

        var summary = new Table().AddColumns("metric", "value");
        summary.AddRow("rows", rows.ToString("N0", CultureInfo.InvariantCulture));
        summary.AddRow("accuracy", metrics.MicroAccuracy.ToString("P2", CultureInfo.InvariantCulture));
        summary.AddRow("macro accuracy", metrics.MacroAccuracy.ToString("P2", CultureInfo.InvariantCulture));
        summary.AddRow("log-loss", metrics.LogLoss.ToString("F4", CultureInfo.InvariantCulture));
        console.Write(summary);

        var confusion = new Table { Title = new TableTitle("confusion (rows: true class, columns: predicted)") };
        confusion.AddColumn("true \\ predicted");
        foreach (string c in classes)
            confusion.AddColumn(new TableColumn(Markup.Escape(c)).RightAligned());
        confusion.AddColumn(new TableColumn("recall").RightAligned());
        for (int t = 0; t < classes.Length; t++)
        {
            var counts = metrics.ConfusionMatrix.Counts[t];
            var cells = new List<string> { Markup.Escape(classes[t]) };
            cells.AddRange(counts.Select((n, p) => p == t ? $"[bold]{n:0}[/]" : $"{n:0}"));
            cells.Add(counts.Sum() > 0 ? metrics.ConfusionMatrix.PerClassRecall[t].ToString("P1", CultureInfo.InvariantCulture) : "-");
            confusion.AddRow(cells.ToArray());
        }
        console.Write(confusion);
        if (plots is not null)
        {
            string picture = Path.Combine(plots, "confusion-matrix.png");
            TrainingPlots.WriteConfusionMatrix(picture, metrics.ConfusionMatrix, classes);
            console.MarkupLine(Markup.Escape($"Plotted {picture}."));
        }
        return CommandLine.Success;
    }

    private sealed class ClassName
    {
        public string Value { get; set; } = "";
    }
}

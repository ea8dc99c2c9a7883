using System.IO.Compression;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Sequences;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

/// <summary>What <c>deepvariants train</c> writes beside a model (model.json): enough to evaluate it without repeating the options.</summary>
/// <param name="Kind">images, series or table.</param>
/// <param name="Label">The label column.</param>
/// <param name="Task">classification or regression.</param>
/// <param name="Data">The training data's path.</param>
internal sealed record ModelCard(string Kind, string Label, string Task, string Data)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static string PathFor(string modelPath) => Path.ChangeExtension(modelPath, ".json");

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The card beside <paramref name="modelPath"/>, or null when there is none (a sweep's model, a model from the API).</summary>
    public static ModelCard? ReadBeside(string modelPath)
    {
        string path = PathFor(modelPath);
        if (!File.Exists(path))
            return null;
        try
        {
            var card = JsonSerializer.Deserialize<ModelCard>(File.ReadAllText(path), Json);
            return card is { Kind: not null, Label: not null } ? card : null;
        }
        catch (JsonException)
        {
            return null;   // a sweep's model.json holds a configuration, not a card
        }
    }
}

/// <summary>
/// A saved ML.NET model and the data it reads: the kind of data is told by its input columns (<c>ImagePath</c> for
/// images, <c>Series</c> for series, otherwise a table's columns), so a model from the tool, a sweep or the API alike
/// can be evaluated and used to predict.
/// </summary>
internal sealed class SavedModel
{
    private SavedModel(string path, ITransformer model, DataViewSchema input, ModelCard? card) => (Path, Model, Input, Card) = (path, model, input, card);

    public string Path { get; }
    public ITransformer Model { get; }
    public DataViewSchema Input { get; }
    public ModelCard? Card { get; }

    public SourceKind Kind => Input.GetColumnOrNull("ImagePath") is not null ? SourceKind.Images
        : Input.GetColumnOrNull("Series") is not null ? SourceKind.Series
        : SourceKind.Table;

    public static SavedModel Load(MLContext mlContext, string path, string option)
    {
        if (!File.Exists(path))
            throw new UsageException($"{option}: model file '{path}' does not exist.");
        try
        {
            var model = mlContext.Model.Load(path, out var schema);
            return new SavedModel(path, model, schema, ModelCard.ReadBeside(path));
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or InvalidOperationException or IOException or ArgumentException)
        {
            throw new UsageException($"{option}: '{path}' is not a saved ML.NET model ({e.Message}); expected the .zip that train, sweep or mlContext.Model.Save wrote.");
        }
    }

    /// <summary>
    /// The rows at <paramref name="path"/> in the model's input columns, and a name for each (the image file, or the
    /// row number); with <paramref name="label"/>, the rows must carry that label.
    /// </summary>
    public (IDataView Data, string[] RowNames) Read(MLContext mlContext, string path, string option, string? label, CorruptImages corrupt, IAnsiConsole console)
    {
        switch (Kind)
        {
            case SourceKind.Images:
            {
                if (File.Exists(path) && !DataSources.ImageExtensions.Contains(System.IO.Path.GetExtension(path).ToLowerInvariant()))
                    throw new UsageException($"{option}: '{path}' is not an image or a folder of images, and model '{Path}' reads images.");
                var rows = DataSources.Images(path, option, labelled: label is not null, corrupt, console);
                return (mlContext.Data.LoadFromEnumerable(rows), rows.Select(r => r.ImagePath).ToArray());
            }
            case SourceKind.Series:
            {
                if (DataSources.KindOf(path, option) != SourceKind.Series)
                    throw new UsageException($"{option}: '{path}' is not a .ts file, and model '{Path}' reads series.");
                var problem = DataSources.Series(path, option, labelled: false);
                int length = Input["Series"].Type is VectorDataViewType { Size: > 0 } v ? v.Size / problem.Dimensions : 0;
                if (length > 0 && problem.MaxLength > length)
                    throw new UsageException($"{option}: '{path}' has series of {problem.MaxLength} steps; model '{Path}' reads at most {length}.");
                return (TimeSeriesFile.ToDataView(mlContext, problem, length), problem.Cases.Select((_, i) => (i + 1).ToString()).ToArray());
            }
            default:
            {
                if (DataSources.KindOf(path, option) != SourceKind.Table)
                    throw new UsageException($"{option}: '{path}' is not a CSV file, and model '{Path}' reads a table.");
                var table = CsvTable.Read(path, option);
                var types = new List<(string, DataKind)>();
                foreach (var column in Input)
                {
                    if (Array.IndexOf(table.Header, column.Name) < 0 && column.Name != (label ?? Card?.Label))
                        throw new UsageException($"{option}: '{path}' has no column '{column.Name}', which model '{Path}' reads; its columns are {string.Join(", ", table.Header.Select(h => $"'{h}'"))}.");
                    types.Add((column.Name, column.Type switch
                    {
                        TextDataViewType => DataKind.String,
                        BooleanDataViewType => DataKind.Boolean,
                        NumberDataViewType n when n == NumberDataViewType.Double => DataKind.Double,
                        _ => DataKind.Single,
                    }));
                }
                if (label is not null)
                    table.IndexOf(label, option);
                return (table.Load(mlContext, types), Enumerable.Range(1, table.Rows).Select(i => i.ToString()).ToArray());
            }
        }
    }

    /// <summary>
    /// The class names when <paramref name="scored"/> holds a classifier's outputs (a key-typed PredictedLabel and a
    /// Score vector), in key order; null otherwise (a regression's scalar Score, say).
    /// </summary>
    public static string[]? ClassNames(IDataView scored)
    {
        if (scored.Schema.GetColumnOrNull("PredictedLabel") is not { Type: KeyDataViewType } predicted
            || scored.Schema.GetColumnOrNull("Score") is not { Type: VectorDataViewType })
            return null;
        VBuffer<ReadOnlyMemory<char>> keyValues = default;
        predicted.GetKeyValues(ref keyValues);
        return keyValues.DenseValues().Select(v => v.ToString()).ToArray();
    }

    /// <summary>The ONNX graphs inside the zip (ML.NET's ONNX transformer keeps each as an entry of the model file).</summary>
    public static List<(string Entry, byte[] Bytes)> OnnxGraphs(string zipPath)
    {
        var graphs = new List<(string, byte[])>();
        using var zip = ZipFile.OpenRead(zipPath);
        foreach (var entry in zip.Entries.Where(e => e.Length > 16))
        {
            using var stream = entry.Open();
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            if (OnnxFile.TryParse(copy.ToArray(), out var bytes))
                graphs.Add((entry.FullName, bytes));
        }
        return graphs;
    }
}

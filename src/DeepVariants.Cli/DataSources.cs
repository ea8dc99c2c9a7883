using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Sequences;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

/// <summary>The three kinds of data the tool trains on, told apart by the path.</summary>
internal enum SourceKind
{
    /// <summary>A folder with one folder of images per class (or, to predict, a folder of images or one image).</summary>
    Images,
    /// <summary>A UEA/UCR <c>.ts</c> file.</summary>
    Series,
    /// <summary>A CSV (or TSV) file with a header row.</summary>
    Table,
}

/// <summary>What to do with an image that does not decode.</summary>
public enum CorruptImages
{
    /// <summary>Refuse the data, naming the files.</summary>
    Fail,
    /// <summary>Leave the files out, naming them in a warning.</summary>
    Skip,
}

/// <summary>
/// Reads and checks the tool's data once, up front, before any training: every image decoded, every CSV row counted, a
/// classification's classes counted, so that a mistake is reported with the file (and line) it is in.
/// </summary>
internal static class DataSources
{
    public static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp"];

    /// <summary>The kind of data at <paramref name="path"/>, given with <paramref name="option"/>.</summary>
    public static SourceKind KindOf(string path, string option)
    {
        if (Directory.Exists(path))
            return SourceKind.Images;
        if (!File.Exists(path))
            throw new UsageException($"{option}: '{path}' does not exist; expected a folder of images (one folder per class), a .ts file or a .csv file.");
        string extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension == ".ts")
            return SourceKind.Series;
        if (extension is ".csv" or ".tsv" or ".txt")
            return SourceKind.Table;
        if (ImageExtensions.Contains(extension))
            return SourceKind.Images;
        throw new UsageException($"{option}: '{path}' is a '{extension}' file; expected a folder of images, a .ts file or a .csv, .tsv or .txt file.");
    }

    /// <summary>
    /// The images under <paramref name="path"/>: with <paramref name="labelled"/>, one folder per class, at least two
    /// classes; without, every image in the folder and its subfolders (or the one image file), labelled by its folder.
    /// </summary>
    public static List<ImageRow> Images(string path, string option, bool labelled, CorruptImages corrupt, IAnsiConsole console)
    {
        if (File.Exists(path) && !labelled)
            return Checked([new ImageRow { ImagePath = Path.GetFullPath(path) }], option, corrupt, console);
        if (!Directory.Exists(path))
            throw new UsageException($"{option}: image folder '{path}' does not exist.");
        List<ImageRow> rows;
        if (labelled)
        {
            var classFolders = Directory.GetDirectories(path).Order(StringComparer.Ordinal).ToList();
            if (classFolders.Count == 0)
                throw new UsageException(Directory.EnumerateFiles(path).Any(IsImage)
                    ? $"{option}: '{path}' holds images but no class folders; expected one folder of images per class (for example {Path.Combine(path, "cat", "1.png")})."
                    : $"{option}: image folder '{path}' is empty; expected one folder of images per class.");
            // Sorted, so that the class order and the rows (hence a seeded fit) do not depend on how the file system lists them.
            rows = classFolders.SelectMany(folder => Directory.EnumerateFiles(folder).Where(IsImage).Order(StringComparer.Ordinal)
                .Select(f => new ImageRow { ImagePath = Path.GetFullPath(f), Label = Path.GetFileName(folder) })).ToList();
        }
        else
        {
            rows = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Where(IsImage).Order(StringComparer.Ordinal)
                .Select(f => new ImageRow { ImagePath = Path.GetFullPath(f), Label = Path.GetFileName(Path.GetDirectoryName(f)!) }).ToList();
        }
        if (rows.Count == 0)
            throw new UsageException($"{option}: image folder '{path}' has no {string.Join(", ", ImageExtensions)} images{(labelled ? " in its class folders" : "")}.");
        rows = Checked(rows, option, corrupt, console);
        if (labelled)
            RequireClasses(rows.Select(r => r.Label), option, path, "class folder");
        return rows;
    }

    private static bool IsImage(string file) => ImageExtensions.Contains(Path.GetExtension(file).ToLowerInvariant());

    // Decodes every image once, so that a corrupt file is named now rather than failing a fit half-way.
    private static List<ImageRow> Checked(List<ImageRow> rows, string option, CorruptImages corrupt, IAnsiConsole console)
    {
        var bad = new List<(ImageRow Row, string Why)>();
        foreach (var row in rows)
        {
            try
            {
                using var image = MLImage.CreateFromFile(row.ImagePath);
                if (image.Width < 1 || image.Height < 1)
                    bad.Add((row, "no pixels"));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The decoder's own words ("Invalid path" for a file it cannot read) say less than the file's name and size.
                bad.Add((row, $"{new FileInfo(row.ImagePath).Length:N0} bytes that the image decoder cannot read"));
            }
        }
        if (bad.Count == 0)
            return rows;
        string list = string.Join("; ", bad.Take(5).Select(b => $"'{b.Row.ImagePath}' ({b.Why})")) + (bad.Count > 5 ? $"; and {bad.Count - 5} more" : "");
        if (corrupt == CorruptImages.Fail)
            throw new UsageException($"{option}: {bad.Count} of {rows.Count} images do not decode: {list}. Remove them, or pass --on-corrupt skip to leave them out.");
        console.MarkupLine($"[yellow]warning:[/] {Markup.Escape($"{option}: left out {bad.Count} of {rows.Count} images that do not decode: {list}.")}");
        var skipped = bad.Select(b => b.Row).ToHashSet();
        var kept = rows.Where(r => !skipped.Contains(r)).ToList();
        return kept.Count > 0 ? kept : throw new UsageException($"{option}: none of the {rows.Count} images decode.");
    }

    /// <summary>A <c>.ts</c> file, read and checked; with <paramref name="labelled"/>, at least two classes.</summary>
    public static TimeSeriesProblem Series(string path, string option, bool labelled)
    {
        TimeSeriesProblem problem;
        try
        {
            problem = TimeSeriesFile.Read(path);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or FormatException)
        {
            throw new UsageException($"{option}: {e.Message}");
        }
        if (problem.Cases.Count == 0)
            throw new UsageException($"{option}: time-series file '{path}' has no cases after @data.");
        if (labelled)
            RequireClasses(problem.Cases.Select(c => c.Label), option, path, "class");
        return problem;
    }

    private static void RequireClasses(IEnumerable<string> labels, string option, string path, string what)
    {
        var classes = labels.Distinct(StringComparer.Ordinal).ToList();
        if (classes.Count < 2)
            throw new UsageException($"{option}: '{path}' has one {what} ('{classes.Single()}'); a classifier needs at least two.");
    }

    /// <summary>A fingerprint of the data at <paramref name="path"/> (file names, sizes and times for a folder, the bytes of a file), to tell a journal's data from other data.</summary>
    public static string Fingerprint(string path)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        if (Directory.Exists(path))
        {
            foreach (var file in Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                var info = new FileInfo(file);
                hash.AppendData(Encoding.UTF8.GetBytes($"{Path.GetRelativePath(path, file)}|{info.Length}|{info.LastWriteTimeUtc.Ticks}\n"));
            }
        }
        else
        {
            using var stream = File.OpenRead(path);
            var buffer = new byte[1 << 16];
            for (int read; (read = stream.Read(buffer)) > 0;)
                hash.AppendData(buffer, 0, read);
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..16];
    }
}

/// <summary>One image: its path and its class (the name of its folder; empty when unknown).</summary>
public sealed class ImageRow
{
    /// <summary>The image file.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The class, the name of the image's folder.</summary>
    public string Label { get; set; } = "";
}

/// <summary>
/// A CSV file with a header row, checked line by line before ML.NET's <see cref="TextLoader"/> reads it: the separator
/// (comma, semicolon or tab, from the header), the same number of fields on every line, and each column's type (a
/// number when every value parses as one, with empty, <c>?</c>, <c>NA</c> and <c>NaN</c> as missing; text otherwise).
/// </summary>
internal sealed class CsvTable
{
    private static readonly HashSet<string> MissingMarkers = new(StringComparer.OrdinalIgnoreCase) { "", "?", "NA", "NaN" };

    private CsvTable(string path, char separator, string[] header, bool[] numeric, int rows) =>
        (Path, Separator, Header, Numeric, Rows) = (path, separator, header, numeric, rows);

    public string Path { get; }
    public char Separator { get; }
    public string[] Header { get; }
    public bool[] Numeric { get; }
    public int Rows { get; }

    public static CsvTable Read(string path, string option)
    {
        if (!File.Exists(path))
            throw new UsageException($"{option}: CSV file '{path}' does not exist.");
        var head = new byte[4096];
        int count;
        using (var stream = File.OpenRead(path))
            count = stream.Read(head);
        if (head.AsSpan(0, count).Contains((byte)0))
            throw new UsageException($"{option}: '{path}' is not a text file (it holds zero bytes); expected a CSV file with a header row.");
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        string? first = reader.ReadLine();
        if (string.IsNullOrWhiteSpace(first))
            throw new UsageException($"{option}: CSV file '{path}' is empty; expected a header row, then one row per example.");
        char separator = System.IO.Path.GetExtension(path).Equals(".tsv", StringComparison.OrdinalIgnoreCase)
            ? '\t'
            : new[] { ',', ';', '\t' }.MaxBy(c => first.Count(x => x == c));
        string[] header = Split(first, separator);
        for (int i = 0; i < header.Length; i++)
        {
            if (header[i].Trim().Length == 0)
                throw new UsageException($"{option}: '{path}', line 1: column {i + 1} has no name; expected a header row that names every column.");
            if (Array.IndexOf(header, header[i]) != i)
                throw new UsageException($"{option}: '{path}', line 1: column name '{header[i]}' appears twice.");
        }
        if (header.Length == 1 && first.Length > 0 && !first.Contains(separator))
            throw new UsageException($"{option}: '{path}' has one column ('{header[0]}'); expected a header row with its columns separated by commas, semicolons or tabs.");
        var numeric = Enumerable.Repeat(true, header.Length).ToArray();
        int rows = 0, lineNumber = 1;
        for (string? line; (line = reader.ReadLine()) is not null;)
        {
            lineNumber++;
            if (line.Length == 0)
                continue;
            var fields = Split(line, separator);
            if (fields.Length != header.Length)
                throw new UsageException($"{option}: '{path}', line {lineNumber}: {fields.Length} fields where the header has {header.Length}.");
            for (int i = 0; i < fields.Length; i++)
                if (numeric[i] && !MissingMarkers.Contains(fields[i].Trim()) && !float.TryParse(fields[i], NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                    numeric[i] = false;
            rows++;
        }
        if (rows == 0)
            throw new UsageException($"{option}: CSV file '{path}' has a header but no rows.");
        return new CsvTable(path, separator, header, numeric, rows);
    }

    /// <summary>The index of <paramref name="column"/>, or a message that names it and lists the columns there are.</summary>
    public int IndexOf(string column, string option)
    {
        int index = Array.IndexOf(Header, column);
        return index >= 0 ? index
            : throw new UsageException($"{option}: '{Path}' has no column '{column}'; its columns are {string.Join(", ", Header.Select(h => $"'{h}'"))}.");
    }

    /// <summary>
    /// Loads the file with ML.NET's text loader, each column with the type in <paramref name="types"/> (a column the file
    /// lacks is read as missing: empty text or NaN), or its inferred type.
    /// </summary>
    public IDataView Load(MLContext mlContext, IReadOnlyList<(string Name, DataKind Type)> types)
    {
        var columns = types.Select(t => new TextLoader.Column(t.Name, t.Type, Array.IndexOf(Header, t.Name) is >= 0 and var i ? i : Header.Length)).ToArray();
        var loader = mlContext.Data.CreateTextLoader(new TextLoader.Options
        {
            Separators = [Separator], HasHeader = true, AllowQuoting = true, MissingRealsAsNaNs = true, Columns = columns,
        });
        return loader.Load(Path);
    }

    /// <summary>Every column with its inferred type; <paramref name="textColumn"/>, when given, as text.</summary>
    public IReadOnlyList<(string Name, DataKind Type)> InferredTypes(string? textColumn) =>
        Header.Select((h, i) => (h, Numeric[i] && h != textColumn ? DataKind.Single : DataKind.String)).ToList();

    // A quote-aware split of one line: "a,b" is one field, "" inside quotes is a quote.
    private static string[] Split(string line, char separator)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                    quoted = false;
                else
                    field.Append(c);
            }
            else if (c == '"')
                quoted = true;
            else if (c == separator)
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
                field.Append(c);
        }
        fields.Add(field.ToString());
        return [.. fields];
    }
}

/// <summary>
/// A CSV table read for the tabular network, by train and sweep alike: the label's task (regression for a numeric label
/// unless asked otherwise), every other column a numeric or a categorical input, the validation file in the same columns.
/// </summary>
internal sealed record TableProblem(IDataView Train, IDataView? Validation, Tabular.TabularNetworkOptions Columns, int Rows)
{
    public bool Regression => Columns.Task == Tabular.TabularTaskKind.Regression;

    public static TableProblem Read(MLContext mlContext, string trainPath, string? validationPath, string label, TableTask task,
        string trainOption, string taskOption)
    {
        var table = CsvTable.Read(trainPath, trainOption);
        bool numericLabel = table.Numeric[table.IndexOf(label, "--label")];
        if (task == TableTask.Regression && !numericLabel)
            throw new UsageException($"{taskOption} Regression: label column '{label}' of '{trainPath}' holds text; expected numbers.");
        bool regression = task == TableTask.Regression || task == TableTask.Auto && numericLabel;
        var types = table.InferredTypes(regression ? null : label);
        var features = types.Where(t => t.Name != label).ToList();
        if (features.Count == 0)
            throw new UsageException($"{trainOption}: '{trainPath}' has no column besides the label '{label}' to learn from.");
        var train = table.Load(mlContext, types);
        if (!regression)
        {
            var classes = train.GetColumn<ReadOnlyMemory<char>>(label).Select(v => v.ToString()).Where(v => v.Length > 0).Distinct().Take(2).ToList();
            if (classes.Count < 2)
                throw new UsageException($"--label: column '{label}' of '{trainPath}' has {(classes.Count == 0 ? "no values" : $"one class ('{classes[0]}')")}; a classifier needs at least two.");
        }
        IDataView? validation = null;
        if (validationPath is not null)
        {
            var validationTable = CsvTable.Read(validationPath, "--validation");
            foreach (var (name, _) in types)
                validationTable.IndexOf(name, "--validation");
            validation = validationTable.Load(mlContext, types);
        }
        var columns = new Tabular.TabularNetworkOptions
        {
            NumericColumnNames = features.Where(f => f.Type == DataKind.Single).Select(f => f.Name).ToArray(),
            CategoricalColumnNames = features.Where(f => f.Type == DataKind.String).Select(f => f.Name).ToArray(),
            LabelColumnName = label, Task = regression ? Tabular.TabularTaskKind.Regression : Tabular.TabularTaskKind.Multiclass,
        };
        return new TableProblem(train, validation, columns, table.Rows);
    }
}

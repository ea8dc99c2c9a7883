using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>One case of a time-series problem: its values step-major (the dimensions of step 1, then of step 2, ...) and its label.</summary>
/// <param name="Values">Length x Dimensions values, step-major.</param>
/// <param name="Length">Steps in the series.</param>
/// <param name="Label">The class label, as written in the file.</param>
public sealed record TimeSeriesCase(float[] Values, int Length, string Label);

/// <summary>A time-series classification problem read from a UEA/UCR <c>.ts</c> file.</summary>
/// <param name="Name">The <c>@problemName</c>.</param>
/// <param name="Dimensions">Values per step (1 for a univariate problem).</param>
/// <param name="EqualLength">Whether the file declares every series the same length.</param>
/// <param name="ClassLabels">The labels <c>@classLabel</c> declares, in its order.</param>
/// <param name="Cases">The series, in file order.</param>
public sealed record TimeSeriesProblem(string Name, int Dimensions, bool EqualLength, IReadOnlyList<string> ClassLabels, IReadOnlyList<TimeSeriesCase> Cases)
{
    /// <summary>Steps of the longest series.</summary>
    public int MaxLength => Cases.Count == 0 ? 0 : Cases.Max(c => c.Length);

    /// <summary>Steps of the shortest series.</summary>
    public int MinLength => Cases.Count == 0 ? 0 : Cases.Min(c => c.Length);
}

/// <summary>
/// Reads the sktime <c>.ts</c> format of the UEA &amp; UCR time-series classification archive: <c>#</c> comments,
/// <c>@</c> headers, then after <c>@data</c> one case a line, its dimensions separated by <c>:</c>, the values of a
/// dimension by <c>,</c>, and the class label last. Equal and unequal lengths, univariate and multivariate. A malformed
/// file is rejected with its line number and what was expected; nothing is skipped silently.
/// </summary>
/// <example>
/// <code>
/// var train = TimeSeriesFile.Load(mlContext, "JapaneseVowels_TRAIN.ts");   // columns Series, Length, Label
/// var model = mlContext.Transforms.DeepVariants.SequenceClassifier(new SequenceClassifierOptions { Channels = 12 }).Fit(train);
/// </code>
/// </example>
public static class TimeSeriesFile
{
    /// <summary>Reads a <c>.ts</c> file.</summary>
    public static TimeSeriesProblem Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Time-series file '{path}' does not exist.", path);
        string name = Path.GetFileNameWithoutExtension(path);
        int? dimensions = null, seriesLength = null;
        bool? equalLength = null, univariate = null;
        List<string>? labels = null;
        bool inData = false;
        var cases = new List<TimeSeriesCase>();
        int lineNumber = 0;
        foreach (string raw in File.ReadLines(path))
        {
            lineNumber++;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            Exception Error(string message) => new InvalidDataException($"{path}, line {lineNumber}: {message}");
            if (!inData)
            {
                if (!line.StartsWith('@'))
                    throw Error($"expected a '@' header line or '@data' before the cases, found '{Shorten(line)}'.");
                string[] parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                string key = parts[0].ToLowerInvariant();
                string? value = parts.Length > 1 ? parts[1] : null;
                switch (key)
                {
                    case "@problemname": name = value ?? name; break;
                    case "@timestamps":
                        if (ReadBool(value, key, Error))
                            throw Error("'@timeStamps true' (time-stamped values) is not supported; expected '@timeStamps false'.");
                        break;
                    case "@missing": ReadBool(value, key, Error); break;
                    case "@univariate": univariate = ReadBool(value, key, Error); break;
                    case "@dimensions": dimensions = ReadPositive(value, key, Error); break;
                    case "@equallength": equalLength = ReadBool(value, key, Error); break;
                    case "@serieslength": seriesLength = ReadPositive(value, key, Error); break;
                    case "@classlabel":
                        if (!ReadBool(value, key, Error))
                            throw Error("'@classLabel false' (a regression or unlabelled problem) is not supported; expected '@classLabel true' and the labels.");
                        labels = parts.Skip(2).ToList();
                        if (labels.Count < 2)
                            throw Error("'@classLabel true' must list at least two class labels.");
                        break;
                    case "@data":
                        if (labels is null)
                            throw Error("'@data' comes before '@classLabel true <labels>'; the class labels must be declared first.");
                        dimensions ??= univariate == false ? null : 1;
                        inData = true;
                        break;
                    case "@targetlabel":
                        throw Error("'@targetLabel' (a regression problem) is not supported; expected a classification problem with '@classLabel'.");
                    default: break; // other headers (for example @seriesLength on unequal data) carry nothing this reader needs
                }
                continue;
            }

            if (line.Contains('?'))
                throw Error("the case has missing values ('?'); this reader expects complete series. Fill or drop them before loading.");
            string[] fields = line.Split(':');
            int caseDimensions = fields.Length - 1;
            if (caseDimensions < 1)
                throw Error($"expected the dimensions and the class label separated by ':', found no ':' in '{Shorten(line)}'.");
            if (dimensions is null)
                dimensions = caseDimensions;
            else if (caseDimensions != dimensions)
                throw Error($"expected {dimensions} dimension(s) and a class label, found {caseDimensions} dimension(s).");
            string label = fields[^1].Trim();
            if (!labels!.Contains(label))
                throw Error($"class label '{label}' is not one of those '@classLabel' declares ({string.Join(" ", labels!)}).");

            var channels = new float[caseDimensions][];
            for (int d = 0; d < caseDimensions; d++)
            {
                string[] values = fields[d].Split(',');
                channels[d] = new float[values.Length];
                for (int i = 0; i < values.Length; i++)
                {
                    if (!float.TryParse(values[i], NumberStyles.Float, CultureInfo.InvariantCulture, out channels[d][i]) || !float.IsFinite(channels[d][i]))
                        throw Error($"dimension {d + 1}, value {i + 1}: '{Shorten(values[i])}' is not a finite number.");
                }
                if (d > 0 && channels[d].Length != channels[0].Length)
                    throw Error($"dimension {d + 1} has {channels[d].Length} values but dimension 1 has {channels[0].Length}; the dimensions of a case must have the same length.");
            }
            int length = channels[0].Length;
            if (equalLength == true && seriesLength is { } declared && length != declared)
                throw Error($"the file declares '@equalLength true' and '@seriesLength {declared}', but this case has {length} values per dimension.");
            var stepMajor = new float[length * caseDimensions];
            for (int t = 0; t < length; t++)
                for (int d = 0; d < caseDimensions; d++)
                    stepMajor[t * caseDimensions + d] = channels[d][t];
            cases.Add(new TimeSeriesCase(stepMajor, length, label));
        }
        if (!inData)
            throw new InvalidDataException($"{path}: no '@data' line; expected the '@' headers, then '@data', then one case a line.");
        if (cases.Count == 0)
            throw new InvalidDataException($"{path}: '@data' is followed by no cases.");
        if (equalLength == true && cases.Select(c => c.Length).Distinct().Count() > 1)
            throw new InvalidDataException($"{path}: the file declares '@equalLength true' but its cases have {cases.Min(c => c.Length)} to {cases.Max(c => c.Length)} steps.");
        return new TimeSeriesProblem(name, dimensions ?? 1, equalLength ?? cases.Select(c => c.Length).Distinct().Count() == 1, labels!, cases);
    }

    /// <summary>
    /// Loads a <c>.ts</c> file as an IDataView with columns <c>Series</c> (float vector, step-major), <c>Length</c>
    /// (steps, float) and <c>Label</c> (a key whose values are the labels in the order <c>@classLabel</c> declares them,
    /// so train and test files map alike and <c>mlContext.MulticlassClassification.Evaluate</c> works as it is). <c>Series</c> has a fixed size when every series has the same length
    /// or when <paramref name="padToLength"/> is given (shorter series are padded with NaN steps, which the sequence
    /// classifier ignores); otherwise it is a variable-length vector.
    /// </summary>
    public static IDataView Load(MLContext mlContext, string path, int padToLength = 0)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return ToDataView(mlContext, Read(path), padToLength);
    }

    /// <summary>The problem as an IDataView, as <see cref="Load"/> describes.</summary>
    public static IDataView ToDataView(MLContext mlContext, TimeSeriesProblem problem, int padToLength = 0)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentOutOfRangeException.ThrowIfNegative(padToLength);
        if (padToLength > 0 && problem.MaxLength > padToLength)
            throw new ArgumentOutOfRangeException(nameof(padToLength), padToLength,
                $"Problem '{problem.Name}' has series of {problem.MaxLength} steps, longer than padToLength {padToLength}.");
        int fixedLength = padToLength > 0 ? padToLength : problem.MinLength == problem.MaxLength ? problem.MaxLength : 0;
        int d = problem.Dimensions;
        var rows = problem.Cases.Select(c => new SeriesRow
        {
            Series = fixedLength == 0 || c.Length == fixedLength ? c.Values : Pad(c.Values, fixedLength * d),
            Length = c.Length,
            Label = c.Label,
        });
        var schema = SchemaDefinition.Create(typeof(SeriesRow));
        schema[nameof(SeriesRow.Series)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, fixedLength * d);
        var data = mlContext.Data.LoadFromEnumerable(rows.ToList(), schema);
        var classes = mlContext.Data.LoadFromEnumerable(problem.ClassLabels.Select(l => new ClassRow { Label = l }));
        return mlContext.Transforms.Conversion.MapValueToKey(nameof(SeriesRow.Label), keyData: classes).Fit(data).Transform(data);
    }

    private static float[] Pad(float[] values, int size)
    {
        var padded = new float[size];
        values.CopyTo(padded, 0);
        Array.Fill(padded, float.NaN, values.Length, size - values.Length);
        return padded;
    }

    private static bool ReadBool(string? value, string key, Func<string, Exception> error) => value?.ToLowerInvariant() switch
    {
        "true" => true,
        "false" => false,
        _ => throw error($"'{key}' must be followed by true or false, found '{value}'."),
    };

    private static int ReadPositive(string? value, string key, Func<string, Exception> error) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n
            : throw error($"'{key}' must be followed by a positive whole number, found '{value}'.");

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";

    private sealed class ClassRow
    {
        public string Label { get; set; } = "";
    }

    private sealed class SeriesRow
    {
        public float[] Series { get; set; } = [];
        public float Length { get; set; }
        public string Label { get; set; } = "";
    }
}

using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// The UCI and ggplot2 tables in Data/tabular (see its README), read into rows with the splits the README gives:
/// Letter Recognition (first 16,000 train), Landsat Satellite (first 4,435 train), diamonds (every fifth row test).
/// </summary>
public static class TabularTables
{
    public static string Folder { get; set; } = Path.Combine(AppContext.BaseDirectory, "Data", "tabular");

    public sealed class LetterRow
    {
        public string Letter { get; set; } = "";

        [VectorType(16)]
        public float[] Features { get; set; } = [];

        /// <summary>The binary task of the SVM literature (letter.p2): A to M against N to Z.</summary>
        public bool SecondHalf { get; set; }
    }

    public sealed class SatelliteRow
    {
        public string Class { get; set; } = "";

        [VectorType(36)]
        public float[] Features { get; set; } = [];
    }

    public sealed class DiamondRow
    {
        public float Carat { get; set; }
        public string Cut { get; set; } = "";
        public string Color { get; set; } = "";
        public string Clarity { get; set; } = "";
        public float Depth { get; set; }
        public float Table { get; set; }
        public float Price { get; set; }
        public float X { get; set; }
        public float Y { get; set; }
        public float Z { get; set; }

        /// <summary>The numeric columns, for models that take one feature vector.</summary>
        public static readonly string[] Numeric = [nameof(Carat), nameof(Depth), nameof(Table), nameof(X), nameof(Y), nameof(Z)];
        public static readonly string[] Categorical = [nameof(Cut), nameof(Color), nameof(Clarity)];
    }

    public static (List<LetterRow> Train, List<LetterRow> Test) Letters()
    {
        var rows = Read("letter-recognition.csv").Select(f => new LetterRow
        {
            Letter = f[0], Features = f.Skip(1).Select(Number).ToArray(), SecondHalf = f[0][0] >= 'N',
        }).ToList();
        return (rows.Take(16_000).ToList(), rows.Skip(16_000).ToList());
    }

    public static (List<SatelliteRow> Train, List<SatelliteRow> Test) Satellite()
    {
        var rows = Read("satellite.csv").Select(f => new SatelliteRow { Class = f[^1], Features = f.Take(36).Select(Number).ToArray() }).ToList();
        return (rows.Take(4_435).ToList(), rows.Skip(4_435).ToList());
    }

    public static (List<DiamondRow> Train, List<DiamondRow> Test) Diamonds()
    {
        var rows = Read("diamonds.csv").Select(f => new DiamondRow
        {
            Carat = Number(f[0]), Cut = f[1], Color = f[2], Clarity = f[3], Depth = Number(f[4]), Table = Number(f[5]),
            Price = Number(f[6]), X = Number(f[7]), Y = Number(f[8]), Z = Number(f[9]),
        }).ToList();
        return (rows.Where((_, i) => (i + 1) % 5 != 0).ToList(), rows.Where((_, i) => (i + 1) % 5 == 0).ToList());
    }

    // The files quote text fields and hold no commas inside them.
    private static IEnumerable<string[]> Read(string file) =>
        File.ReadLines(Path.Combine(Folder, file)).Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',').Select(v => v.Trim('"')).ToArray());

    private static float Number(string text) => float.Parse(text, CultureInfo.InvariantCulture);
}

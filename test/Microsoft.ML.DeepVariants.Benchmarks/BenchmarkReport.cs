namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>
/// Markdown reports whose table rows are keyed by their first two cells, so a run of some rows (<c>--only</c>) keeps the
/// others from the report; written to a temporary file, then moved, so a killed run leaves the old report whole.
/// </summary>
internal static class BenchmarkReport
{
    /// <summary>The table rows of an existing report by key (the last of a key wins), without the header row that starts with <paramref name="header"/>.</summary>
    public static Dictionary<string, string> Rows(string reportPath, string header) => File.Exists(reportPath)
        ? File.ReadLines(reportPath).Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith(header, StringComparison.Ordinal))
            .Select(l => (Key: Key(l), Line: l))
            .GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Line)
        : [];

    /// <summary>The list items ("- ...") of an existing report, such as its summaries, in order.</summary>
    public static List<string> Items(string reportPath) => File.Exists(reportPath)
        ? File.ReadLines(reportPath).Where(l => l.StartsWith("- ", StringComparison.Ordinal)).ToList()
        : [];

    /// <summary>The rows of <paramref name="previous"/> that <paramref name="written"/> does not replace.</summary>
    public static IEnumerable<string> Remaining(Dictionary<string, string> previous, List<string> written)
    {
        var keys = written.Select(Key).ToHashSet();
        return previous.Where(p => !keys.Contains(p.Key)).Select(p => p.Value);
    }

    public static void Write(string reportPath, IEnumerable<string> lines)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(reportPath))!);
        File.WriteAllLines(reportPath + ".tmp", lines);
        File.Move(reportPath + ".tmp", reportPath, overwrite: true);
    }

    private static string Key(string line) => string.Join(" | ", line.Split('|').Skip(1).Take(2).Select(c => c.Trim()));
}

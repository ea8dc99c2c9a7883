using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Datasets;

/// <summary>A Cora paper: its id, topic (0 to 6, as text), Planetoid split and binary bag-of-words features.</summary>
public sealed class CoraNode
{
    /// <summary>Paper id, 0 to 2,707.</summary>
    public int NodeId { get; set; }
    /// <summary>Topic, "0" to "6".</summary>
    public string Label { get; set; } = "";
    /// <summary>"train" (140 papers), "val" (500), "test" (1,000) or "none".</summary>
    public string Split { get; set; } = "";
    /// <summary>1 where the word is present, else 0.</summary>
    [VectorType(Cora.WordCount)]
    public float[] Features { get; set; } = [];
}

/// <summary>A citation link between two papers.</summary>
public sealed class CoraEdge
{
    /// <summary>Citing or cited paper.</summary>
    public int Source { get; set; }
    /// <summary>The other paper.</summary>
    public int Target { get; set; }
}

/// <summary>
/// Reads Cora with the Planetoid split (Yang, Cohen and Salakhutdinov 2016; split as in Kipf and Welling 2017)
/// from two TSV files: <c>nodes.tsv</c> (node, label, split, space-separated word indices) and <c>edges.tsv</c>
/// (source, target). The column names match <see cref="Graphs.GcnOptions"/>' defaults.
/// </summary>
/// <example>
/// <code>
/// var (nodes, edges) = Cora.Load(mlContext, "test/Microsoft.ML.DeepVariants.Tests/Data/cora");
/// </code>
/// </example>
public static class Cora
{
    /// <summary>Size of the bag-of-words vocabulary.</summary>
    public const int WordCount = 1433;

    /// <summary>Loads nodes and edges as data views.</summary>
    public static (IDataView Nodes, IDataView Edges) Load(MLContext mlContext, string directory)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var (nodes, edges) = Read(directory);
        return (mlContext.Data.LoadFromEnumerable(nodes), mlContext.Data.LoadFromEnumerable(edges));
    }

    /// <summary>Reads nodes and edges as objects, checking every line.</summary>
    public static (IReadOnlyList<CoraNode> Nodes, IReadOnlyList<CoraEdge> Edges) Read(string directory)
    {
        string nodesPath = Path.Combine(directory, "nodes.tsv"), edgesPath = Path.Combine(directory, "edges.tsv");
        var nodes = Lines(nodesPath, "node\tlabel\tsplit\tfeatures").Select(line =>
        {
            string[] fields = Fields(line, 4, nodesPath);
            var features = new float[WordCount];
            foreach (string word in fields[3].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                int index = Integer(word, line, nodesPath);
                if (index is < 0 or >= WordCount)
                    throw new InvalidDataException($"{nodesPath}:{line.Number}: word index {index} is outside 0..{WordCount - 1}.");
                features[index] = 1;
            }
            return new CoraNode { NodeId = Integer(fields[0], line, nodesPath), Label = fields[1], Split = fields[2], Features = features };
        }).ToList();
        var edges = Lines(edgesPath, "source\ttarget").Select(line =>
        {
            string[] fields = Fields(line, 2, edgesPath);
            return new CoraEdge { Source = Integer(fields[0], line, edgesPath), Target = Integer(fields[1], line, edgesPath) };
        }).ToList();
        return (nodes, edges);
    }

    private static IEnumerable<(int Number, string Text)> Lines(string path, string header)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Cora file '{path}' was not found.", path);
        int number = 0;
        foreach (string text in File.ReadLines(path))
        {
            number++;
            if (number == 1)
            {
                if (text != header)
                    throw new InvalidDataException($"{path}:1: expected the header '{header.Replace("\t", "\\t")}'.");
                continue;
            }
            if (text.Length > 0)
                yield return (number, text);
        }
    }

    private static string[] Fields((int Number, string Text) line, int count, string path)
    {
        string[] fields = line.Text.Split('\t');
        return fields.Length == count ? fields : throw new InvalidDataException($"{path}:{line.Number}: expected {count} tab-separated fields, found {fields.Length}.");
    }

    private static int Integer(string text, (int Number, string Text) line, string path) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new InvalidDataException($"{path}:{line.Number}: '{text}' is not an integer.");
}

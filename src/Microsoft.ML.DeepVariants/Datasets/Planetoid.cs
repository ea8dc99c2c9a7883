using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Datasets;

/// <summary>A node of a Planetoid-style graph: its id, label (text; empty when unlabelled), split and features.</summary>
public sealed class PlanetoidNode
{
    /// <summary>Node id.</summary>
    public int NodeId { get; set; }
    /// <summary>Class, as text; empty when the node has none.</summary>
    public string Label { get; set; } = "";
    /// <summary>"train", "val", "test" or anything else (neither trains nor validates).</summary>
    public string Split { get; set; } = "";
    /// <summary>1 where the word (feature index) is present, else 0; as long as the vocabulary.</summary>
    public float[] Features { get; set; } = [];
}

/// <summary>An edge of a Planetoid-style graph.</summary>
public sealed class PlanetoidEdge
{
    /// <summary>One end.</summary>
    public int Source { get; set; }
    /// <summary>The other end.</summary>
    public int Target { get; set; }
}

/// <summary>
/// Reads any graph in the Planetoid TSV layout (Cora as this repository stores it; CiteSeer, PubMed or your own written the same way):
/// a node file with the tab-separated header <c>node, label, split, features</c> (features as space-separated indices of the
/// words present) and an edge file with the header <c>source, target</c>. The vocabulary size is given, or taken as
/// the largest word index plus one. The columns match <see cref="Graphs.GcnOptions"/>' defaults.
/// </summary>
/// <example>
/// <code>
/// var (nodes, edges) = Planetoid.Load(mlContext, "citeseer/nodes.tsv", "citeseer/edges.tsv");
/// var model = mlContext.Transforms.DeepVariants.GcnNodeClassifier(edges).Fit(nodes);
/// </code>
/// </example>
public static class Planetoid
{
    /// <summary>Loads nodes and edges as data views; the feature column is a vector of <paramref name="vocabularySize"/> (or the largest index plus one) values.</summary>
    public static (IDataView Nodes, IDataView Edges) Load(MLContext mlContext, string nodesPath, string edgesPath, int? vocabularySize = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var (nodes, edges, size) = Read(nodesPath, edgesPath, vocabularySize);
        var schema = SchemaDefinition.Create(typeof(PlanetoidNode));
        schema[nameof(PlanetoidNode.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        return (mlContext.Data.LoadFromEnumerable(nodes, schema), mlContext.Data.LoadFromEnumerable(edges));
    }

    /// <summary>Reads nodes and edges as objects, checking every line; returns the vocabulary size used.</summary>
    public static (IReadOnlyList<PlanetoidNode> Nodes, IReadOnlyList<PlanetoidEdge> Edges, int VocabularySize) Read(string nodesPath, string edgesPath, int? vocabularySize = null)
    {
        if (vocabularySize is <= 0)
            throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "vocabularySize must be null (the largest word index plus one) or positive.");
        var rows = Lines(nodesPath, "node\tlabel\tsplit\tfeatures").Select(line =>
        {
            string[] fields = Fields(line, 4, nodesPath);
            var words = fields[3].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => Integer(w, line, nodesPath)).ToArray();
            foreach (int index in words)
                if (index < 0 || index >= (vocabularySize ?? int.MaxValue))
                    throw new InvalidDataException($"{nodesPath}:{line.Number}: word index {index} is outside 0..{(vocabularySize ?? int.MaxValue) - 1}.");
            return (Id: Integer(fields[0], line, nodesPath), Label: fields[1], Split: fields[2], Words: words);
        }).ToList();
        int size = vocabularySize ?? rows.Select(r => r.Words.DefaultIfEmpty(-1).Max()).DefaultIfEmpty(-1).Max() + 1;
        if (size <= 0)
            throw new InvalidDataException($"{nodesPath}: no node has a feature, so the vocabulary size cannot be found; pass vocabularySize.");
        var nodes = rows.Select(r =>
        {
            var features = new float[size];
            foreach (int index in r.Words)
                features[index] = 1;
            return new PlanetoidNode { NodeId = r.Id, Label = r.Label, Split = r.Split, Features = features };
        }).ToList();
        var edges = Lines(edgesPath, "source\ttarget").Select(line =>
        {
            string[] fields = Fields(line, 2, edgesPath);
            return new PlanetoidEdge { Source = Integer(fields[0], line, edgesPath), Target = Integer(fields[1], line, edgesPath) };
        }).ToList();
        return (nodes, edges, size);
    }

    private static IEnumerable<(int Number, string Text)> Lines(string path, string header)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Graph file '{path}' was not found.", path);
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

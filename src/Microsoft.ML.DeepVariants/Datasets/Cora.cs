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
/// (source, target). The column names match <see cref="Graphs.GcnOptions"/>' defaults. For another graph in the same
/// format (CiteSeer, PubMed, your own), use <see cref="Planetoid"/>.
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
    public static (IDataView Nodes, IDataView Edges) Load(MLContext mlContext, string directory) =>
        Planetoid.Load(mlContext, Path.Combine(directory, "nodes.tsv"), Path.Combine(directory, "edges.tsv"), WordCount);

    /// <summary>Reads nodes and edges as objects, checking every line.</summary>
    public static (IReadOnlyList<CoraNode> Nodes, IReadOnlyList<CoraEdge> Edges) Read(string directory)
    {
        var graph = Planetoid.Read(Path.Combine(directory, "nodes.tsv"), Path.Combine(directory, "edges.tsv"), WordCount);
        return (graph.Nodes.Select(n => new CoraNode { NodeId = n.NodeId, Label = n.Label, Split = n.Split, Features = n.Features }).ToList(),
            graph.Edges.Select(e => new CoraEdge { Source = e.Source, Target = e.Target }).ToList());
    }
}

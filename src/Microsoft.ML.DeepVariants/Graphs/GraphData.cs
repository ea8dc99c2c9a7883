using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Graphs;

/// <summary>
/// The nodes of a graph read from an IDataView: ids (boxed long or string), features, labels (-1 when
/// missing) and the training and validation masks.
/// </summary>
internal sealed class NodeTable
{
    public required object[] Ids { get; init; }
    public required Dictionary<object, int> Index { get; init; }
    public required DataViewType IdType { get; init; }
    public required float[] Features { get; init; }
    public required int FeatureSize { get; init; }
    public long[] Labels { get; init; } = [];
    public bool[] Train { get; init; } = [];
    public bool[] Validation { get; init; } = [];
    public int Count => Ids.Length;
}

/// <summary>
/// Reads graphs from IDataViews and builds the propagation operator of a GCN: the symmetric-normalised
/// adjacency with self-loops, D^-1/2 (A + I) D^-1/2, as a sparse list of (source, target, weight), never as a
/// dense N x N matrix. Edges are undirected: each is used in both directions. Self-loops in the input are
/// dropped (every node gets one self-loop of weight 1), and duplicate edges (in either direction) are merged
/// into one that keeps the largest weight.
/// </summary>
internal static class GraphData
{
    /// <summary>The node columns' checks, on a schema shape or a data view's schema: id, features and the split.</summary>
    public static void CheckNodeColumns(SchemaView schema, GcnOptions o, bool withSplit = true)
    {
        var id = schema.Require(o.NodeIdColumnName);
        if (!id.IsScalar || (id.ItemType is not TextDataViewType && id.ItemType != NumberDataViewType.Int32 && id.ItemType != NumberDataViewType.Int64 && id.ItemType != NumberDataViewType.UInt32))
            throw schema.Mismatch(id, "Int32, Int64, UInt32 or String node ids");
        var features = schema.Require(o.FeatureColumnName);
        if (!features.IsFloatVector)
            throw schema.Mismatch(features, "Vector<Single>");
        if (!withSplit)
            return;
        if (o.TrainColumnName is not null)
        {
            foreach (string? name in new[] { o.TrainColumnName, o.ValidationColumnName })
                if (name is not null && schema.Require(name) is var flag && (!flag.IsScalar || flag.ItemType is not BooleanDataViewType))
                    throw schema.Mismatch(flag, "Boolean");
        }
        else
        {
            var split = schema.Require(o.SplitColumnName!);
            if (!split.IsScalar || split.ItemType is not TextDataViewType)
                throw schema.Mismatch(split, "String (train, val, test)");
        }
    }

    /// <summary>Reads the nodes; with a <paramref name="keyLabelColumn"/>, also their labels and the split.</summary>
    public static NodeTable ReadNodes(IDataView nodes, GcnOptions o, string? keyLabelColumn = null)
    {
        bool withTargets = keyLabelColumn is not null;
        var schema = nodes.Schema;
        CheckNodeColumns(SchemaView.Of(schema), o, withTargets);
        var idColumn = schema[o.NodeIdColumnName];
        var featureColumn = schema[o.FeatureColumnName];
        var columns = new List<DataViewSchema.Column> { idColumn, featureColumn };
        DataViewSchema.Column? label = null, split = null, train = null, validation = null;
        if (withTargets)
        {
            label = schema[keyLabelColumn!];
            columns.Add(label.Value);
            if (o.TrainColumnName is not null)
            {
                train = schema[o.TrainColumnName];
                columns.Add(train.Value);
                if (o.ValidationColumnName is not null)
                {
                    validation = schema[o.ValidationColumnName];
                    columns.Add(validation.Value);
                }
            }
            else
            {
                split = schema[o.SplitColumnName!];
                columns.Add(split.Value);
            }
        }

        var ids = new List<object>();
        var index = new Dictionary<object, int>();
        var features = new List<float>();
        var labels = new List<long>();
        var trainMask = new List<bool>();
        var validationMask = new List<bool>();
        int featureSize = -1;
        using var cursor = nodes.GetRowCursor(columns);
        var getId = IdGetter(cursor, idColumn);
        var getFeatures = cursor.GetGetter<VBuffer<float>>(featureColumn);
        var getLabel = label is null ? null : cursor.GetGetter<uint>(label.Value);
        var getSplit = split is null ? null : cursor.GetGetter<ReadOnlyMemory<char>>(split.Value);
        var getTrain = train is null ? null : cursor.GetGetter<bool>(train.Value);
        var getValidation = validation is null ? null : cursor.GetGetter<bool>(validation.Value);
        VBuffer<float> buffer = default;
        ReadOnlyMemory<char> splitText = default;
        uint key = 0;
        bool flag = false;
        for (int row = 0; cursor.MoveNext(); row++)
        {
            object id = getId();
            if (!index.TryAdd(id, row))
                throw new ArgumentException($"Node id {id} in column '{o.NodeIdColumnName}' appears more than once (rows {index[id]} and {row}); node ids must be unique.", o.NodeIdColumnName);
            ids.Add(id);
            getFeatures(ref buffer);
            if (featureSize < 0)
                featureSize = buffer.Length;
            else if (buffer.Length != featureSize)
                throw new ArgumentException($"Column '{o.FeatureColumnName}' has {buffer.Length} values at row {row} (node {id}) but {featureSize} at row 0; every node needs features of the same length.", o.FeatureColumnName);
            int slot = 0;
            foreach (float value in buffer.DenseValues())
            {
                if (!float.IsFinite(value))
                    throw new ArgumentOutOfRangeException(o.FeatureColumnName,
                        $"Column '{o.FeatureColumnName}' has a {(float.IsNaN(value) ? "NaN" : "infinite")} value at row {row} (node {id}), slot {slot}; expected finite numbers.");
                features.Add(value);
                slot++;
            }
            if (getLabel is not null)
            {
                getLabel(ref key);
                labels.Add(key == 0 ? ClassificationObjective.Unlabelled : key - 1);
            }
            if (getSplit is not null)
            {
                getSplit(ref splitText);
                string s = splitText.ToString().Trim().ToLowerInvariant();
                trainMask.Add(s == "train");
                validationMask.Add(s is "val" or "valid" or "validation");
            }
            if (getTrain is not null)
            {
                getTrain(ref flag);
                trainMask.Add(flag);
                bool isValidation = false;
                if (getValidation is not null)
                    getValidation(ref isValidation);
                validationMask.Add(isValidation);
            }
        }
        if (ids.Count == 0)
            throw new ArgumentException("The node data is empty: a graph needs at least one node.", nameof(nodes));
        return new NodeTable
        {
            Ids = ids.ToArray(), Index = index, IdType = idColumn.Type, Features = features.ToArray(), FeatureSize = featureSize,
            Labels = labels.ToArray(), Train = trainMask.ToArray(), Validation = validationMask.ToArray(),
        };
    }

    /// <summary>Reads the edges and returns the normalised propagation operator, self-loops included.</summary>
    public static GraphTensors ReadEdges(IDataView edges, GcnOptions o, NodeTable nodes)
    {
        var schema = edges.Schema;
        var source = schema.GetColumnOrNull(o.EdgeSourceColumnName) ?? throw SchemaView.MissingColumn(o.EdgeSourceColumnName);
        var target = schema.GetColumnOrNull(o.EdgeTargetColumnName) ?? throw SchemaView.MissingColumn(o.EdgeTargetColumnName);
        foreach (var column in new[] { source, target })
            if (!SameIdKind(column.Type, nodes.IdType))
                throw SchemaView.SchemaMismatch(column.Name, $"{nodes.IdType} (the type of the node ids)", column.Type);
        DataViewSchema.Column? weight = null;
        if (o.EdgeWeightColumnName is not null)
        {
            weight = schema.GetColumnOrNull(o.EdgeWeightColumnName) ?? throw SchemaView.MissingColumn(o.EdgeWeightColumnName);
            if (weight.Value.Type != NumberDataViewType.Single)
                throw SchemaView.SchemaMismatch(o.EdgeWeightColumnName, "Single", weight.Value.Type);
        }

        var merged = new Dictionary<(int, int), float>();
        var columns = weight is null ? new[] { source, target } : new[] { source, target, weight.Value };
        using (var cursor = edges.GetRowCursor(columns))
        {
            var getSource = IdGetter(cursor, source);
            var getTarget = IdGetter(cursor, target);
            var getWeight = weight is null ? null : cursor.GetGetter<float>(weight.Value);
            float w = 1;
            for (int row = 0; cursor.MoveNext(); row++)
            {
                int s = Lookup(nodes, getSource(), o.EdgeSourceColumnName, row);
                int t = Lookup(nodes, getTarget(), o.EdgeTargetColumnName, row);
                getWeight?.Invoke(ref w);
                if (!(w > 0) || float.IsInfinity(w))
                    throw new ArgumentOutOfRangeException(o.EdgeWeightColumnName, $"Edge weight column '{o.EdgeWeightColumnName}' has {w} at row {row}; expected a finite weight greater than zero.");
                if (s == t)
                    continue;
                var edge = s < t ? (s, t) : (t, s);
                merged[edge] = merged.TryGetValue(edge, out float existing) ? Math.Max(existing, w) : w;
            }
        }
        return Normalize(nodes.Count, merged);
    }

    /// <summary>D^-1/2 (A + I) D^-1/2 as (source, target, weight) lists: both directions of each edge, then the self-loops.</summary>
    public static GraphTensors Normalize(int nodeCount, IReadOnlyDictionary<(int, int), float> undirected)
    {
        int count = 2 * undirected.Count + nodeCount;
        var src = new long[count];
        var dst = new long[count];
        var values = new float[count];
        var degree = new double[nodeCount];
        Array.Fill(degree, 1.0);
        int i = 0;
        foreach (var ((a, b), w) in undirected)
        {
            degree[a] += w;
            degree[b] += w;
            (src[i], dst[i], values[i]) = (a, b, w);
            (src[i + 1], dst[i + 1], values[i + 1]) = (b, a, w);
            i += 2;
        }
        for (int n = 0; n < nodeCount; n++, i++)
            (src[i], dst[i], values[i]) = (n, n, 1f);
        for (int e = 0; e < count; e++)
            values[e] = (float)(values[e] / Math.Sqrt(degree[src[e]] * degree[dst[e]]));
        return new GraphTensors(nodeCount, tensor(src), tensor(dst), tensor(values));
    }

    private static int Lookup(NodeTable nodes, object id, string column, int row) =>
        nodes.Index.TryGetValue(id, out int index)
            ? index
            : throw new ArgumentException($"Edge row {row} names node {id} in column '{column}', but no node has that id.", column);

    private static bool SameIdKind(DataViewType a, DataViewType b) => (a is TextDataViewType) == (b is TextDataViewType) && a is not VectorDataViewType
        && (a is TextDataViewType || a == NumberDataViewType.Int32 || a == NumberDataViewType.Int64 || a == NumberDataViewType.UInt32);

    // Ids compare as long (any integer type) or as string, so edges may use another integer width than the nodes.
    private static Func<object> IdGetter(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        if (column.Type is TextDataViewType)
        {
            var get = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> value = default;
            return () => { get(ref value); return value.ToString(); };
        }
        if (column.Type == NumberDataViewType.Int32)
        {
            var get = cursor.GetGetter<int>(column);
            int value = 0;
            return () => { get(ref value); return (long)value; };
        }
        if (column.Type == NumberDataViewType.UInt32)
        {
            var get = cursor.GetGetter<uint>(column);
            uint value = 0;
            return () => { get(ref value); return (long)value; };
        }
        var getLong = cursor.GetGetter<long>(column);
        long longValue = 0;
        return () => { getLong(ref longValue); return longValue; };
    }
}

/// <summary>A graph's propagation operator as tensors: entry e adds Weight[e] x row Source[e] to row Target[e].</summary>
internal sealed record GraphTensors(int NodeCount, Tensor Source, Tensor Target, Tensor Weight) : IDisposable
{
    public void Dispose()
    {
        Source.Dispose();
        Target.Dispose();
        Weight.Dispose();
    }
}

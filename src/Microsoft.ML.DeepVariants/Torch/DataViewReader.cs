using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>A classification label column turned into 0-based class indices.</summary>
/// <param name="ClassCount">The key type's count.</param>
/// <param name="ClassNames">Names of the classes, from the key values when the column has them.</param>
internal sealed record LabelInfo(int ClassCount, string[] ClassNames);

/// <summary>
/// Reads IDataView columns into CPU tensors: fixed-size float vectors (checked for size and for NaN or
/// infinite values, naming the column and row) and key-typed labels.
/// </summary>
internal static class DataViewReader
{
    /// <summary>Checks that <paramref name="column"/> exists and is a float vector of <paramref name="size"/> values.</summary>
    public static DataViewSchema.Column RequireFloatVector(DataViewSchema schema, string column, int size)
    {
        var col = schema.GetColumnOrNull(column) ?? throw MissingColumn(column);
        if (col.Type is not VectorDataViewType vector || vector.ItemType != NumberDataViewType.Single || vector.Size != size)
            throw SchemaMismatch(column, $"Vector<Single, {size}>", col.Type);
        return col;
    }

    /// <summary>Checks that <paramref name="column"/> is a key column and describes its classes.</summary>
    public static LabelInfo RequireKeyLabel(DataViewSchema schema, string column)
    {
        var col = schema.GetColumnOrNull(column) ?? throw MissingColumn(column);
        if (col.Type is not KeyDataViewType key || key.RawType != typeof(uint))
            throw SchemaMismatch(column, "Key<UInt32>", col.Type);
        if (key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException(column, $"Label column '{column}' has {key.Count} classes; at most {int.MaxValue} are supported.");
        int count = (int)key.Count;
        return new LabelInfo(count, KeyNames(col, count));
    }

    /// <summary>Reads a float vector column (and optionally a key label) into tensors [N, size] and [N].</summary>
    public static TensorDataset Read(IDataView data, string featureColumn, int size, string? labelColumn, long[] featureShape)
    {
        var featureCol = RequireFloatVector(data.Schema, featureColumn, size);
        var labelCol = labelColumn is null ? (DataViewSchema.Column?)null : data.Schema[labelColumn];
        var columns = labelCol is null ? new[] { featureCol } : new[] { featureCol, labelCol.Value };

        long? knownRows = data.GetRowCount();
        var features = new List<float>(capacity: (int)Math.Min((knownRows ?? 1024) * size, Array.MaxLength));
        var labels = new List<long>();
        using (var cursor = data.GetRowCursor(columns))
        {
            var getFeatures = cursor.GetGetter<VBuffer<float>>(featureCol);
            var getLabel = labelCol is null ? null : cursor.GetGetter<uint>(labelCol.Value);
            VBuffer<float> buffer = default;
            uint key = 0;
            long row = 0;
            while (cursor.MoveNext())
            {
                getFeatures(ref buffer);
                int start = features.Count;
                foreach (float value in buffer.DenseValues())
                {
                    if (!float.IsFinite(value))
                        throw new ArgumentOutOfRangeException(featureColumn,
                            $"Column '{featureColumn}' has a {(float.IsNaN(value) ? "NaN" : "infinite")} value at row {row}, slot {features.Count - start}; expected finite numbers.");
                    features.Add(value);
                }
                if (getLabel is not null)
                {
                    getLabel(ref key);
                    if (key == 0)
                        throw new ArgumentOutOfRangeException(labelColumn,
                            $"Label column '{labelColumn}' has a missing value at row {row}; every training row needs a label.");
                    labels.Add(key - 1);
                }
                row++;
            }
        }
        long rows = features.Count / size;
        var inputs = tensor(features.ToArray(), [rows, .. featureShape]);
        var targets = labelCol is null ? zeros(rows, dtype: ScalarType.Int64) : tensor(labels.ToArray(), dtype: ScalarType.Int64);
        return new TensorDataset(inputs, targets);
    }

    /// <summary>"Could not find input column 'X'", as ML.NET words it.</summary>
    public static ArgumentOutOfRangeException MissingColumn(string column) =>
        new(column, $"Could not find input column '{column}'.");

    /// <summary>"Schema mismatch for input column 'X': expected E, got A", as ML.NET words it.</summary>
    public static ArgumentOutOfRangeException SchemaMismatch(string column, string expected, DataViewType actual) =>
        new(column, $"Schema mismatch for input column '{column}': expected {expected}, got {actual}.");

    private static string[] KeyNames(DataViewSchema.Column column, int count)
    {
        var names = Enumerable.Range(0, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        if (column.Annotations.Schema.GetColumnOrNull("KeyValues") is not { } values
            || values.Type is not VectorDataViewType { Size: > 0 } vector || vector.Size != count)
            return names;
        var read = typeof(DataViewReader).GetMethod(nameof(ReadKeyValues), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(vector.ItemType.RawType);
        return (string[])read.Invoke(null, [column])!;
    }

    private static string[] ReadKeyValues<T>(DataViewSchema.Column column)
    {
        VBuffer<T> values = default;
        column.GetKeyValues(ref values);
        return values.DenseValues().Select(v => v?.ToString() ?? "").ToArray();
    }
}

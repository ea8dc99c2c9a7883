using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants;

/// <summary>A classification label's classes: their count, their names, and the key column's annotations (its key values).</summary>
internal sealed record LabelInfo(int ClassCount, string[] ClassNames)
{
    /// <summary>The key column's annotations, so predicted labels carry the same key values as the label.</summary>
    public DataViewSchema.Annotations? Annotations { get; init; }
}

/// <summary>The label of a fit: the user's column, the key column training reads, the classes, and the mapping (null for a key label).</summary>
internal sealed record LabelBinding(string UserColumn, string KeyColumn, LabelInfo Info, ITransformer? Mapping)
{
    /// <summary>The data with the key column added (the same data for a key label).</summary>
    public IDataView Apply(IDataView data) => Mapping?.Transform(data) ?? data;
}

/// <summary>
/// Classification labels, checked and keyed in one place for every classifier: a key label is used as it is; any
/// other primitive type is mapped to a key on the training data, so predicted labels carry the original values.
/// Before training, <see cref="Scan"/> reads the label alone (no features are decoded) and refuses missing values,
/// validation classes that training never saw, and a single class, naming the user's column and the row.
/// </summary>
internal static class ClassLabels
{
    private const string KeyColumnPrefix = "DeepVariants.Label.";

    /// <summary>The plan-time check: the label exists and is a key or a primitive value.</summary>
    public static ColumnInfo Check(SchemaView schema, string label, bool textOnly = false)
    {
        var column = schema.Require(label);
        bool keyOk = column.IsKey && column.IsScalar;
        bool valueOk = column.IsScalar && (textOnly ? column.ItemType is TextDataViewType : column.ItemType is PrimitiveDataViewType);
        if (!keyOk && !valueOk)
            throw schema.Mismatch(column, textOnly ? "a key or text label (empty for unlabelled rows)" : "a key, text, number or boolean label");
        return column;
    }

    /// <summary>
    /// Keys the label on the training data (or takes a key label as it is). Text values in <paramref name="unlabelled"/>
    /// become missing (no class), like the empty text.
    /// </summary>
    public static LabelBinding Bind(ModelContext context, string label, IDataView train, IReadOnlyCollection<string>? unlabelled = null)
    {
        var column = train.Schema.GetColumnOrNull(label) ?? throw SchemaView.MissingColumn(label);
        if (column.Type is KeyDataViewType)
            return new LabelBinding(label, label, Info(column), null);
        string keyColumn = KeyColumnPrefix + label;
        IDataView? keys = null;
        if (unlabelled is { Count: > 0 } && column.Type is TextDataViewType)
        {
            // The classes are the training values in order of appearance, without the unlabelled ones; values not among
            // the keys map to the missing key.
            var classes = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            using (var cursor = train.GetRowCursor([column]))
            {
                var get = cursor.GetGetter<ReadOnlyMemory<char>>(column);
                ReadOnlyMemory<char> value = default;
                while (cursor.MoveNext())
                {
                    get(ref value);
                    string text = value.ToString();
                    if (text.Length > 0 && !unlabelled.Contains(text) && seen.Add(text))
                        classes.Add(text);
                }
            }
            keys = new MLContext(seed: 0).Data.LoadFromEnumerable(classes.Select(c => new KeyText { Value = c }));
        }
        var mapping = (keys is null
            ? context.Transforms.Conversion.MapValueToKey(keyColumn, label)
            : context.Transforms.Conversion.MapValueToKey(keyColumn, label, keyData: keys)).Fit(train);
        return new LabelBinding(label, keyColumn, Info(mapping.GetOutputSchema(train.Schema)[keyColumn]), mapping);
    }

    private sealed class KeyText
    {
        public string Value { get; set; } = "";
    }

    /// <summary>A validation set's label must have the training label's type (a key label the same key type).</summary>
    public static void CheckValidation(DataViewSchema validation, LabelBinding binding)
    {
        var column = validation.GetColumnOrNull(binding.UserColumn) ?? throw SchemaView.MissingColumn(binding.UserColumn, "validation");
        if (binding.Mapping is null && (column.Type is not KeyDataViewType key || key.Count != (ulong)binding.Info.ClassCount))
            throw SchemaView.SchemaMismatch(binding.UserColumn, $"Key<UInt32, 0-{binding.Info.ClassCount - 1}> (the training label's type)", column.Type, "validation");
    }

    /// <summary>
    /// Reads the label of every row of <paramref name="keyed"/> (the data after <see cref="LabelBinding.Apply"/>) and returns the
    /// rows per class. Throws, naming the user's column and the row, on a missing label, a class training did not see,
    /// an empty training set or a single training class.
    /// </summary>
    public static long[] Scan(IDataView keyed, LabelBinding binding, string role, bool allowMissing = false)
    {
        var key = keyed.Schema[binding.KeyColumn];
        var user = keyed.Schema[binding.UserColumn];
        var counts = new long[binding.Info.ClassCount];
        var columns = binding.Mapping is null ? new[] { key } : new[] { key, user };
        using (var cursor = keyed.GetRowCursor(columns))
        {
            var getKey = cursor.GetGetter<uint>(key);
            var rawText = binding.Mapping is null ? null : TextGetter(cursor, user);
            uint value = 0;
            for (long row = 0; cursor.MoveNext(); row++)
            {
                getKey(ref value);
                if (value > 0 && value <= counts.Length)
                {
                    counts[value - 1]++;
                    continue;
                }
                if (allowMissing)
                    continue;
                string? raw = rawText?.Invoke();
                if (string.IsNullOrEmpty(raw) || raw == "NaN")
                    throw new ArgumentOutOfRangeException(binding.UserColumn,
                        $"Label column '{binding.UserColumn}' has a missing value at row {row}{SchemaView.In(role)}; every {role} row needs a label.");
                throw new ArgumentOutOfRangeException(binding.UserColumn,
                    $"Label column '{binding.UserColumn}' has the value '{raw}' at row {row}{SchemaView.In(role)}, a class that no training row has; " +
                    $"the training classes are {Names(binding.Info)}.");
            }
        }
        if (role == "training")
        {
            var present = Enumerable.Range(0, counts.Length).Where(k => counts[k] > 0).ToList();
            if (present.Count == 1)
                throw new ArgumentException(
                    $"Label column '{binding.UserColumn}' has a single class ('{binding.Info.ClassNames[present[0]]}') in the training data; a classifier needs at least two.",
                    binding.UserColumn);
        }
        return counts;
    }

    private static string Names(LabelInfo info) =>
        string.Join(", ", info.ClassNames.Take(12).Select(n => $"'{n}'")) + (info.ClassCount > 12 ? $" and {info.ClassCount - 12} more" : "");

    private static LabelInfo Info(DataViewSchema.Column column)
    {
        if (column.Type is not KeyDataViewType key || key.RawType != typeof(uint))
            throw SchemaView.SchemaMismatch(column.Name, "Key<UInt32>", column.Type);
        if (key.Count > 1_000_000)
            throw new ArgumentOutOfRangeException(column.Name, $"Label column '{column.Name}' has {key.Count} classes; at most 1,000,000 are supported.");
        int count = (int)key.Count;
        return new LabelInfo(count, KeyNames(column, count)) { Annotations = column.Annotations };
    }

    private static string[] KeyNames(DataViewSchema.Column column, int count)
    {
        var names = Enumerable.Range(0, count).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        if (column.Annotations.Schema.GetColumnOrNull("KeyValues") is not { } values
            || values.Type is not VectorDataViewType { Size: > 0 } vector || vector.Size != count)
            return names;
        var read = typeof(ClassLabels).GetMethod(nameof(ReadKeyValues), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(vector.ItemType.RawType);
        return (string[])read.Invoke(null, [column])!;
    }

    private static string[] ReadKeyValues<T>(DataViewSchema.Column column)
    {
        VBuffer<T> values = default;
        column.GetKeyValues(ref values);
        return values.DenseValues().Select(v => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "").ToArray();
    }

    // The raw label as text, for messages: any primitive type through its own getter.
    private static Func<string> TextGetter(DataViewRow row, DataViewSchema.Column column)
    {
        var make = typeof(ClassLabels).GetMethod(nameof(TypedTextGetter), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(column.Type.RawType);
        return (Func<string>)make.Invoke(null, [row, column])!;
    }

    private static Func<string> TypedTextGetter<T>(DataViewRow row, DataViewSchema.Column column)
    {
        var get = row.GetGetter<T>(column);
        T value = default!;
        return () =>
        {
            get(ref value);
            return Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
        };
    }
}

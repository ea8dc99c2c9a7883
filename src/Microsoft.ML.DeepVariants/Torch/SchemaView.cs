using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// A column as either kind of schema describes it. A <see cref="SchemaShape"/> (what <c>GetOutputSchema</c> sees)
/// carries no vector sizes, a <see cref="DataViewSchema"/> (what <c>Fit</c> sees) does; <see cref="Size"/> is 0 when
/// unknown, so one check serves both.
/// </summary>
internal readonly record struct ColumnInfo(string Name, SchemaShape.Column.VectorKind Kind, DataViewType ItemType, bool IsKey, int Size,
    DataViewSchema.Column? Column, bool HasKeyValues)
{
    public bool IsScalar => Kind == SchemaShape.Column.VectorKind.Scalar;
    public bool IsVector => Kind != SchemaShape.Column.VectorKind.Scalar;
    public bool IsFloatVector => IsVector && ItemType == NumberDataViewType.Single;

    /// <summary>The type as ML.NET prints it, or as near as a schema shape allows.</summary>
    public string TypeText => Column is { } column ? $"{column.Type}" : Kind switch
    {
        SchemaShape.Column.VectorKind.Scalar => $"{ItemType}",
        SchemaShape.Column.VectorKind.Vector => $"Vector<{ItemType}>",
        _ => $"Vector<{ItemType}> of unknown size",
    };
}

/// <summary>
/// The schema a DeepVariants estimator checks, from <c>Fit</c> or from <c>GetOutputSchema</c>, with ML.NET's message
/// forms ("Could not find input column 'X'", "Schema mismatch for input column 'X': expected E, got A") and, for a
/// validation set, the words "in the validation data".
/// </summary>
internal sealed class SchemaView
{
    private readonly Func<string, ColumnInfo?> _find;

    private SchemaView(Func<string, ColumnInfo?> find, bool hasSizes, string? role)
    {
        _find = find;
        HasSizes = hasSizes;
        Role = role;
    }

    /// <summary>True for a data view's schema (vector sizes known), false for a schema shape.</summary>
    public bool HasSizes { get; }

    /// <summary>"validation" for a validation set's schema, else null.</summary>
    public string? Role { get; }

    public static SchemaView Of(DataViewSchema schema, string? role = null) => new(name =>
    {
        if (schema.GetColumnOrNull(name) is not { } column)
            return null;
        var kind = column.Type is VectorDataViewType vector
            ? vector.IsKnownSize ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector
            : SchemaShape.Column.VectorKind.Scalar;
        var item = column.Type is VectorDataViewType vectorType ? vectorType.ItemType : column.Type;
        return new ColumnInfo(name, kind, item, item is KeyDataViewType, column.Type is VectorDataViewType v ? v.Size : 1, column,
            column.Annotations.Schema.GetColumnOrNull("KeyValues") is not null);
    }, hasSizes: true, role);

    public static SchemaView Of(SchemaShape shape) => new(name =>
    {
        foreach (var column in shape)
            if (column.Name == name)
                return new ColumnInfo(name, column.Kind, column.ItemType, column.IsKey, 0, null,
                    column.Annotations.Any(a => a.Name == "KeyValues"));
        return null;
    }, hasSizes: false, role: null);

    public ColumnInfo? Find(string name) => _find(name);

    /// <summary>The column, or "Could not find input column 'X'".</summary>
    public ColumnInfo Require(string name) => Find(name) ?? throw MissingColumn(name, Role);

    /// <summary>"Schema mismatch for input column 'X': expected E, got A."</summary>
    public ArgumentOutOfRangeException Mismatch(ColumnInfo column, string expected) => SchemaMismatch(column.Name, expected, column.TypeText, Role);

    /// <summary>Checks that <paramref name="column"/> exists and is a float vector of <paramref name="size"/> values.</summary>
    public static DataViewSchema.Column RequireFloatVector(DataViewSchema schema, string column, int size, string? role = null)
    {
        var col = schema.GetColumnOrNull(column) ?? throw MissingColumn(column, role);
        if (col.Type is not VectorDataViewType vector || vector.ItemType != NumberDataViewType.Single || vector.Size != size)
            throw SchemaMismatch(column, $"Vector<Single, {size}>", col.Type, role);
        return col;
    }

    public static ArgumentOutOfRangeException MissingColumn(string column, string? role = null) =>
        new(column, $"Could not find input column '{column}'{In(role)}.");

    public static ArgumentOutOfRangeException SchemaMismatch(string column, string expected, DataViewType actual, string? role = null) =>
        SchemaMismatch(column, expected, $"{actual}", role);

    public static ArgumentOutOfRangeException SchemaMismatch(string column, string expected, string actual, string? role = null) =>
        new(column, $"Schema mismatch for input column '{column}'{In(role)}: expected {expected}, got {actual}.");

    /// <summary>" in the validation data", or nothing for the training data.</summary>
    public static string In(string? role) => role is null or "training" ? "" : $" in the {role} data";
}

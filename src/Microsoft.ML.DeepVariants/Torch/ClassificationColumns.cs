using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants;

/// <summary>The label and output columns every DeepVariants classifier shares.</summary>
internal static class ClassificationColumns
{
    private const string KeyedLabelSuffix = ".Key";

    /// <summary>The temporary column the classifiers' ONNX graphs write their logits to.</summary>
    public const string LogitsColumn = "DeepVariants.Logits";

    /// <summary>
    /// What follows a graph that writes <see cref="LogitsColumn"/>: ML.NET's multiclass head (Score, PredictedLabel) and
    /// a step that drops the logits and the other <paramref name="temporary"/> columns.
    /// </summary>
    public static (ITransformer Head, ITransformer Drop) SoftmaxTail(ModelContext context, IDataView scored, string labelColumn, LabelInfo labels,
        string scoreColumn, string predictedLabelColumn, params string[] temporary)
    {
        var head = MLNetInternals.CreateSoftmaxHead(context.Environment, scored.Schema, LogitsColumn, labelColumn,
            labels.ClassCount, labels.ClassNames, scoreColumn, predictedLabelColumn);
        var drop = context.Transforms.DropColumns([LogitsColumn, .. temporary]).Fit(head.Transform(scored));
        return (head, drop);
    }

    /// <summary>
    /// The label as a key column: a key label is used as it is; any other type that <paramref name="accepts"/> is
    /// mapped to a key on the training data (so predicted labels carry the original values as key values) and the
    /// same mapping is applied to the validation data. The mapping is returned (null for a key label), so a later
    /// fit on the same model (pruning's fine-tuning) can reuse it instead of learning a new class order.
    /// </summary>
    public static (string Column, IDataView Train, IDataView? Validation, ITransformer? Mapping) KeyedLabel(ModelContext context, string label,
        IDataView train, IDataView? validation, Func<DataViewType, bool> accepts, string expected)
    {
        var column = train.Schema.GetColumnOrNull(label) ?? throw DataViewReader.MissingColumn(label);
        if (column.Type is KeyDataViewType)
            return (label, train, validation, null);
        if (!accepts(column.Type))
            throw DataViewReader.SchemaMismatch(label, expected, column.Type);
        string keyed = label + KeyedLabelSuffix;
        var mapping = context.Transforms.Conversion.MapValueToKey(keyed, label).Fit(train);
        return (keyed, mapping.Transform(train), validation is null ? null : mapping.Transform(validation), mapping);
    }

    /// <summary>
    /// Adds what ML.NET's multiclass head outputs to a schema shape: Score (a float vector, slot names when the label
    /// has key values) and PredictedLabel (a key, with key values when the label has them or is converted to a key).
    /// </summary>
    public static void AddMulticlassOutputs(Dictionary<string, SchemaShape.Column> columns, SchemaShape.Column label,
        string scoreColumn, string predictedLabelColumn)
    {
        bool keyValues = !label.IsKey || label.Annotations.Any(a => a.Name == "KeyValues");
        SchemaShape Names(string kind) => new(keyValues
            ? [MLNetInternals.SchemaColumn(kind, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false)]
            : []);
        columns[scoreColumn] = MLNetInternals.SchemaColumn(scoreColumn, SchemaShape.Column.VectorKind.Vector,
            NumberDataViewType.Single, false, Names("SlotNames"));
        columns[predictedLabelColumn] = MLNetInternals.SchemaColumn(predictedLabelColumn, SchemaShape.Column.VectorKind.Scalar,
            NumberDataViewType.UInt32, true, Names("KeyValues"));
    }
}

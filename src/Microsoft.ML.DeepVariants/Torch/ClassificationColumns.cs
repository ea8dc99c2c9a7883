using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants;

/// <summary>The output columns every DeepVariants classifier shares.</summary>
internal static class ClassificationColumns
{
    /// <summary>The temporary column the classifiers' ONNX graphs write their logits to.</summary>
    public const string LogitsColumn = "DeepVariants.Logits";

    /// <summary>
    /// Adds what ML.NET's multiclass head outputs to a schema shape: Score (a float vector, slot names when the label
    /// has key values) and PredictedLabel (a key, with key values when the label has them or is converted to a key).
    /// </summary>
    public static void AddMulticlassOutputs(Dictionary<string, SchemaShape.Column> columns, ColumnInfo label,
        string scoreColumn, string predictedLabelColumn)
    {
        bool keyValues = !label.IsKey || label.HasKeyValues;
        SchemaShape Names(string kind) => new(keyValues
            ? [MLNetInternals.SchemaColumn(kind, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false)]
            : []);
        columns[scoreColumn] = MLNetInternals.SchemaColumn(scoreColumn, SchemaShape.Column.VectorKind.Vector,
            NumberDataViewType.Single, false, Names("SlotNames"));
        columns[predictedLabelColumn] = MLNetInternals.SchemaColumn(predictedLabelColumn, SchemaShape.Column.VectorKind.Scalar,
            NumberDataViewType.UInt32, true, Names("KeyValues"));
    }
}

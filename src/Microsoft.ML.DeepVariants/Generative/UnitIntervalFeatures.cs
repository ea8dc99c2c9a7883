namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// Features that a generative model reads as values in [0, 1] (a Bernoulli likelihood's probabilities, the range a
/// generator writes): a value outside is refused, naming the column, the row and <paramref name="why"/>.
/// </summary>
internal sealed class UnitIntervalFeatures(FeatureReader inner, string column, string why) : FeatureReader
{
    public override long[] Shape => inner.Shape;
    public override IEnumerable<DataViewSchema.Column> Columns => inner.Columns;

    public override RowWriter<float> Bind(DataViewRow row, string role)
    {
        var write = inner.Bind(row, role);
        return (long index, Span<float> destination) =>
        {
            write(index, destination);
            foreach (float value in destination)
                if (value is < 0 or > 1)
                    throw new ArgumentOutOfRangeException(column, $"Column '{column}' has the value {value} at row {index}{SchemaView.In(role)}; {why}.");
        };
    }
}

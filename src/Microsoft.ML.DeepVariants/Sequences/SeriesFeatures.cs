using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Series from a float vector column (step-major: the channels of step 1, then of step 2, ...) as [steps, channels]
/// with NaN after each series' end. A row's series ends at its last step that is not all NaN (trailing all-NaN steps
/// are padding); the values must be whole steps, finite inside the series, and at most <paramref name="maxLength"/> steps.
/// </summary>
internal sealed class SeriesFeatures(DataViewSchema.Column column, int channels, int maxLength) : FeatureReader
{
    public override long[] Shape => [maxLength, channels];
    public override IEnumerable<DataViewSchema.Column> Columns => [column];

    public override RowWriter<float> Bind(DataViewRow row, string role)
    {
        var get = row.GetGetter<VBuffer<float>>(column);
        VBuffer<float> buffer = default;
        float[] scratch = [];
        return (long index, Span<float> destination) =>
        {
            get(ref buffer);
            if (scratch.Length < buffer.Length)
                scratch = new float[buffer.Length];
            var values = scratch.AsSpan(0, buffer.Length);
            buffer.CopyTo(values);
            int length = Length(values, channels, column.Name, index, role);
            if (length > maxLength)
                throw new ArgumentOutOfRangeException(column.Name,
                    $"Column '{column.Name}' has a {role} series of {length} steps, longer than MaxLength ({maxLength}), at row {index}; " +
                    "raise MaxLength or leave it 0 to take the longest training series.");
            var series = values[..(length * channels)];
            for (int i = 0; i < series.Length; i++)
                if (!float.IsFinite(series[i]))
                    throw new ArgumentOutOfRangeException(column.Name,
                        $"Column '{column.Name}' has {(float.IsNaN(series[i]) ? "a NaN" : "an infinite")} value at row {index}{SchemaView.In(role)}, step {i / channels + 1}, " +
                        $"channel {i % channels + 1}, inside the series; only trailing steps whose values are all NaN count as padding.");
            series.CopyTo(destination);
            destination[series.Length..].Fill(float.NaN);
        };
    }

    /// <summary>The longest series of a column, in steps (one pass over that column alone).</summary>
    public static int Longest(IDataView data, string columnName, int channels, string role)
    {
        var column = data.Schema[columnName];
        using var cursor = data.GetRowCursor([column]);
        var get = cursor.GetGetter<VBuffer<float>>(column);
        VBuffer<float> buffer = default;
        float[] scratch = [];
        int longest = 0;
        for (long row = 0; cursor.MoveNext(); row++)
        {
            get(ref buffer);
            if (scratch.Length < buffer.Length)
                scratch = new float[buffer.Length];
            buffer.CopyTo(scratch);
            longest = Math.Max(longest, Length(scratch.AsSpan(0, buffer.Length), channels, columnName, row, role));
        }
        return longest;
    }

    // The steps up to the last one that is not all NaN; refuses values that are not whole steps, and empty series.
    private static int Length(ReadOnlySpan<float> values, int channels, string column, long row, string role)
    {
        if (values.Length % channels != 0)
            throw new ArgumentOutOfRangeException(column,
                $"Column '{column}' has {values.Length} values at row {row}{SchemaView.In(role)}, not a whole number of steps of {channels} channels.");
        int length = values.Length / channels;
        while (length > 0 && AllNaN(values.Slice((length - 1) * channels, channels)))
            length--;
        if (length == 0)
            throw new ArgumentOutOfRangeException(column, $"Column '{column}' has an empty series (no values, or only NaN padding) at row {row}{SchemaView.In(role)}.");
        return length;
    }

    private static bool AllNaN(ReadOnlySpan<float> step)
    {
        foreach (float value in step)
            if (!float.IsNaN(value))
                return false;
        return true;
    }
}

using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Series read from a float vector column: each row's values up to its length (trailing steps that are all NaN
/// are padding and dropped), checked for a whole number of steps and for NaN or infinite values inside the series.
/// </summary>
internal sealed class SeriesReader
{
    private SeriesReader(string column, int channels, List<float[]> series, List<long> labels)
    {
        Column = column;
        Channels = channels;
        Series = series;
        Labels = labels;
    }

    public string Column { get; }
    public int Channels { get; }
    public List<float[]> Series { get; }
    public List<long> Labels { get; }
    public int Longest => Series.Count == 0 ? 0 : Series.Max(s => s.Length) / Channels;

    /// <summary>Checks the column is a float vector whose fixed size (if any) is whole steps; returns that size, or 0 for a variable-length column.</summary>
    public static int RequireSeriesColumn(DataViewSchema schema, string column, int channels)
    {
        var col = schema.GetColumnOrNull(column) ?? throw DataViewReader.MissingColumn(column);
        if (col.Type is not VectorDataViewType vector || vector.ItemType != NumberDataViewType.Single)
            throw DataViewReader.SchemaMismatch(column, $"a Vector<Single> of steps x {channels} values", col.Type);
        if (vector.Size % channels != 0)
            throw DataViewReader.SchemaMismatch(column, $"a Vector<Single> whose size is a multiple of Channels ({channels})", col.Type);
        return vector.Size;
    }

    public static SeriesReader Read(IDataView data, string column, int channels, string labelColumn)
    {
        var featureCol = data.Schema[column];
        var labelCol = data.Schema[labelColumn];
        var series = new List<float[]>();
        var labels = new List<long>();
        using var cursor = data.GetRowCursor([featureCol, labelCol]);
        var getSeries = cursor.GetGetter<VBuffer<float>>(featureCol);
        var getLabel = cursor.GetGetter<uint>(labelCol);
        VBuffer<float> buffer = default;
        uint key = 0;
        long row = 0;
        while (cursor.MoveNext())
        {
            getSeries(ref buffer);
            getLabel(ref key);
            var values = buffer.DenseValues().ToArray();
            if (values.Length % channels != 0)
                throw new ArgumentOutOfRangeException(column,
                    $"Column '{column}' has {values.Length} values at row {row}, not a whole number of steps of {channels} channels.");
            int length = values.Length / channels;
            while (length > 0 && AllNaN(values, length - 1, channels))
                length--;
            if (length == 0)
                throw new ArgumentOutOfRangeException(column, $"Column '{column}' has an empty series (no values, or only NaN padding) at row {row}.");
            for (int i = 0; i < length * channels; i++)
                if (!float.IsFinite(values[i]))
                    throw new ArgumentOutOfRangeException(column,
                        $"Column '{column}' has a {(float.IsNaN(values[i]) ? "NaN" : "infinite")} value at row {row}, step {i / channels + 1}, channel {i % channels + 1}, inside the series; " +
                        "only trailing steps whose values are all NaN count as padding.");
            if (key == 0)
                throw new ArgumentOutOfRangeException(labelColumn, $"Label column '{labelColumn}' has a missing value at row {row}; every training row needs a label.");
            series.Add(values[..(length * channels)]);
            labels.Add(key - 1);
            row++;
        }
        return new SeriesReader(column, channels, series, labels);
    }

    public void CheckLongest(int maxLength, string role)
    {
        int longest = Longest;
        if (longest > maxLength)
            throw new ArgumentOutOfRangeException(Column,
                $"Column '{Column}' has a {role} series of {longest} steps, longer than MaxLength ({maxLength}); raise MaxLength or leave it 0 to take the longest training series.");
    }

    /// <summary>Inputs [N, maxLength, Channels] with NaN after each series' end, and class indices [N].</summary>
    public TensorDataset ToDataset(int maxLength)
    {
        var values = new float[(long)Series.Count * maxLength * Channels];
        Array.Fill(values, float.NaN);
        for (int i = 0; i < Series.Count; i++)
            Series[i].CopyTo(values, (long)i * maxLength * Channels);
        return new TensorDataset(tensor(values, [Series.Count, maxLength, Channels]), tensor(Labels.ToArray(), dtype: ScalarType.Int64));
    }

    private static bool AllNaN(float[] values, int step, int channels)
    {
        for (int c = 0; c < channels; c++)
            if (!float.IsNaN(values[step * channels + c]))
                return false;
        return true;
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Small slices of real Fashion-MNIST, read once for the whole run.</summary>
internal static class TestData
{
    private static readonly Lazy<IReadOnlyList<FashionMnistImage>> TrainRows = new(() => FashionMnist.Read(FashionMnistSplit.Train, maxRows: 5000));
    private static readonly Lazy<IReadOnlyList<FashionMnistImage>> TestRows = new(() => FashionMnist.Read(FashionMnistSplit.Test, maxRows: 1000));

    public static IDataView Train(MLContext ml, int rows = 5000) => ml.Data.LoadFromEnumerable(TrainRows.Value.Take(rows));
    public static IDataView Test(MLContext ml, int rows = 1000) => ml.Data.LoadFromEnumerable(TestRows.Value.Take(rows));

    /// <summary>The standard pipeline head: text label to key.</summary>
    public static IDataView Keyed(MLContext ml, IDataView data) =>
        ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Data.LoadFromEnumerable(FashionMnist.ClassNames.Select(n => new LabelRow { Label = n })))
            .Fit(data).Transform(data);

    public static float[][] Scores(IDataView scored, string column = "Score") => scored.GetColumn<float[]>(column).ToArray();

    public static float MaxAbsDifference(float[][] a, float[][] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.AreEqual(a[i].Length, b[i].Length);
            for (int j = 0; j < a[i].Length; j++)
                max = Math.Max(max, Math.Abs(a[i][j] - b[i][j]));
        }
        return max;
    }

    private sealed class LabelRow
    {
        public string Label { get; set; } = "";
    }
}

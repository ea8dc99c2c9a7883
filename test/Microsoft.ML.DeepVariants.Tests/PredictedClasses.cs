using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>The class names behind a key-typed predicted-label column, and the accuracy of those names against the truth (the tests and the benchmarks share it).</summary>
public static class PredictedClasses
{
    /// <summary>The class names of <paramref name="column"/>'s key values, in key order.</summary>
    public static string[] Names(IDataView scored, string column)
    {
        VBuffer<ReadOnlyMemory<char>> names = default;
        scored.Schema[column].GetKeyValues(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    /// <summary>Each row's predicted class name (null for a missing key).</summary>
    public static string?[] Of(IDataView scored, string column)
    {
        var names = Names(scored, column);
        return scored.GetColumn<uint>(column).Select(key => key == 0 ? null : names[key - 1]).ToArray();
    }

    /// <summary>The share of rows whose predicted class name is <paramref name="truth"/>'s.</summary>
    public static double Accuracy(IDataView scored, string column, IEnumerable<string> truth) =>
        Of(scored, column).Zip(truth, (predicted, actual) => predicted == actual ? 1.0 : 0.0).Average();
}

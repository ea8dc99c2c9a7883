using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// How good generated images are. The classification accuracy score (<see cref="ClassificationAccuracyScore"/>) asks
/// whether a classifier learns the classes from conditional samples alone. The Fréchet distance (the formula of Heusel et al. 2017's FID) between
/// two sets of embeddings, each summarized by its mean μ and covariance Σ:
/// <c>|μ₁ - μ₂|² + Tr(Σ₁ + Σ₂ - 2 (Σ₁^½ Σ₂ Σ₁^½)^½)</c>. The standard FID embeds with Inception-v3, which this package
/// does not carry; the embedding here is any featurizer you pass (docs/generative.md trains a fixed CNN featurizer on
/// Fashion-MNIST for it), so the figure is comparable only with figures from the same featurizer, and is not an FID.
/// </summary>
/// <example>
/// <code>
/// double distance = GenerativeMetrics.FrechetDistance(featurizer, realImages, fit.Generate(mlContext, 1000, seed: 1), "Features", "Generated");
/// </code>
/// </example>
public static class GenerativeMetrics
{
    /// <summary>The Fréchet distance between the embeddings <paramref name="featurizer"/> gives the two sets of images (each column a Vector&lt;Single&gt; the featurizer reads, renamed to its input).</summary>
    public static double FrechetDistance(ITransformer featurizer, IDataView real, IDataView generated, string realColumn, string generatedColumn,
        string featurizerInput = "Features", string embeddingColumn = "Embedding")
    {
        ArgumentNullException.ThrowIfNull(featurizer);
        return FrechetDistance(Embed(featurizer, real, realColumn, featurizerInput, embeddingColumn), Embed(featurizer, generated, generatedColumn, featurizerInput, embeddingColumn));
    }

    /// <summary>The Fréchet distance between two sets of vectors of one size (at least two of each).</summary>
    public static double FrechetDistance(IReadOnlyList<float[]> first, IReadOnlyList<float[]> second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (first.Count < 2 || second.Count < 2)
            throw new ArgumentException($"Each set needs at least two vectors for a covariance; got {first.Count} and {second.Count}.", nameof(first));
        int size = first[0].Length;
        if (size == 0 || first.Concat(second).Any(v => v.Length != size))
            throw new ArgumentException($"Every vector must have the first one's {size} values.", nameof(second));
        // A NaN or infinity (a diverged generator, an empty image) would make the distance NaN without a word.
        RequireFinite(first, "first", nameof(first));
        RequireFinite(second, "second", nameof(second));
        using var scope = NewDisposeScope();
        var (meanA, covarianceA) = Moments(first, size);
        var (meanB, covarianceB) = Moments(second, size);
        var (values, vectors) = linalg.eigh(covarianceA);
        var rootA = vectors.matmul(diag(values.clamp_min(Scalars.Of(0.0)).sqrt())).matmul(vectors.t());
        var middle = rootA.matmul(covarianceB).matmul(rootA);
        double crossTrace = linalg.eigvalsh(middle.Plus(middle.t()).Times(0.5)).clamp_min(Scalars.Of(0.0)).sqrt().sum().item<double>();
        double meanTerm = meanA.sub(meanB).square().sum().item<double>();
        return meanTerm + covarianceA.trace().item<double>() + covarianceB.trace().item<double>() - 2 * crossTrace;
    }

    /// <summary>
    /// The classification accuracy score (Ravuri and Vinyals 2019): <paramref name="classifier"/> is fitted on
    /// conditional samples alone (<paramref name="samples"/>, whose <paramref name="labelColumn"/> holds the class each
    /// was generated for) and scored on real labelled images (<paramref name="realTest"/>). A generator whose samples
    /// cover each class as the data does scores near a classifier trained on real data; a generator that draws
    /// convincing but narrow samples scores lower, which the Fréchet distance can miss. Both label columns must be keys
    /// of the same classes in the same order (key the test set with the transformer that keyed the GAN's training data).
    /// </summary>
    /// <example>
    /// <code>
    /// var samples = gan.Generate(mlContext, count: 60_000, seed: 1);
    /// var asImages = mlContext.Transforms.CopyColumns("Features", "Generated").Fit(samples).Transform(samples);
    /// double cas = GenerativeMetrics.ClassificationAccuracyScore(mlContext.Transforms.DeepVariants.CnnClassifier(28, 28), asImages, keyedTest);
    /// </code>
    /// </example>
    public static double ClassificationAccuracyScore(IEstimator<ITransformer> classifier, IDataView samples, IDataView realTest,
        string labelColumn = "Label", string predictedLabelColumn = "PredictedLabel")
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(realTest);
        ulong classes = KeyCount(samples, labelColumn, nameof(samples));
        ulong testClasses = KeyCount(realTest, labelColumn, nameof(realTest));
        if (classes != testClasses)
            throw new ArgumentException($"The samples' '{labelColumn}' has {classes} classes and the test set's {testClasses}; both must be keys of the same classes.", nameof(realTest));
        var scored = classifier.Fit(samples).Transform(realTest);
        if (scored.Schema.GetColumnOrNull(predictedLabelColumn) is not { Type: KeyDataViewType })
            throw new ArgumentException($"The classifier writes no key column '{predictedLabelColumn}'.", nameof(predictedLabelColumn));
        var truth = scored.GetColumn<uint>(labelColumn).ToArray();
        var predicted = scored.GetColumn<uint>(predictedLabelColumn).ToArray();
        if (truth.Length == 0)
            throw new ArgumentException("The test set has no rows.", nameof(realTest));
        return truth.Zip(predicted).Count(p => p.First == p.Second && p.First != 0) / (double)truth.Length;
    }

    private static ulong KeyCount(IDataView data, string column, string parameter) =>
        data.Schema.GetColumnOrNull(column) is { Type: KeyDataViewType key } ? key.Count
            : throw new ArgumentException($"Column '{column}' of {parameter} must be a key of the classes; it is {(data.Schema.GetColumnOrNull(column)?.Type.ToString() ?? "missing")}.", parameter);

    private static void RequireFinite(IReadOnlyList<float[]> rows, string which, string parameter)
    {
        for (int row = 0; row < rows.Count; row++)
            if (Array.FindIndex(rows[row], v => !float.IsFinite(v)) is var at and >= 0)
                throw new ArgumentException($"Vector {row} of the {which} set has {rows[row][at]} at position {at}; the distance needs finite values.", parameter);
    }

    private static (Tensor Mean, Tensor Covariance) Moments(IReadOnlyList<float[]> rows, int size)
    {
        var x = tensor(rows.SelectMany(r => r).Select(v => (double)v).ToArray(), [rows.Count, size]);
        var mean = x.mean([0]);
        var centered = x.sub(mean);
        return (mean, centered.t().matmul(centered).Times(1.0 / (rows.Count - 1)));
    }

    private static List<float[]> Embed(ITransformer featurizer, IDataView data, string column, string featurizerInput, string embeddingColumn)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Schema.GetColumnOrNull(column) is null)
            throw new ArgumentOutOfRangeException(nameof(column), $"Could not find input column '{column}'.");
        var ml = new MLContext(1);
        IDataView input = column == featurizerInput ? data
            : ml.Transforms.CopyColumns(featurizerInput, column).Fit(data).Transform(data);
        var embedded = featurizer.Transform(input);
        if (embedded.Schema.GetColumnOrNull(embeddingColumn) is not { Type: VectorDataViewType { ItemType: NumberDataViewType } })
            throw new ArgumentException($"The featurizer writes no float vector column '{embeddingColumn}'.", nameof(embeddingColumn));
        return embedded.GetColumn<float[]>(embeddingColumn).ToList();
    }
}

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>The latents every generator's helpers feed it: draws from the prior N(0, I), and evenly spaced points on a line.</summary>
internal static class LatentPoints
{
    /// <summary><paramref name="count"/> latents of <paramref name="size"/> values from N(0, I) (Box-Muller), the same for a seed.</summary>
    public static List<float[]> Prior(int count, int size, int seed)
    {
        var random = new Random(seed);
        float Gaussian() => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, size).Select(_ => Gaussian()).ToArray()).ToList();
    }

    /// <summary><paramref name="steps"/> evenly spaced points from <paramref name="from"/> to <paramref name="to"/>, both included.</summary>
    public static List<float[]> Line(float[] from, float[] to, int steps) => Enumerable.Range(0, steps).Select(k =>
    {
        float t = k / (float)(steps - 1);
        return from.Zip(to, (a, b) => a + t * (b - a)).ToArray();
    }).ToList();
}

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Seeds derived from a seed and a few numbers (an epoch, a trial id) that are the same in every process and on every
/// machine. <see cref="HashCode.Combine{T1, T2}"/> is randomised per process, so it cannot make a run reproducible.
/// The mix is SplitMix64 (Steele, Lea and Flood 2014) applied to each part in turn.
/// </summary>
/// <example>
/// <code>
/// int trialSeed = StableSeed.Mix(sweepSeed, trialId);   // the same in every run
/// </code>
/// </example>
public static class StableSeed
{
    /// <summary>A non-negative 31-bit seed mixed from <paramref name="seed"/> and <paramref name="parts"/>.</summary>
    public static int Mix(long seed, params long[] parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        ulong state = SplitMix((ulong)seed);
        foreach (long part in parts)
            state = SplitMix(state ^ (ulong)part);
        return (int)(state >> 33);
    }

    private static ulong SplitMix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}

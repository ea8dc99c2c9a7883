namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Proposes the configuration of the next trial from what earlier trials scored.</summary>
public interface IProposer
{
    /// <summary>The configuration of trial <paramref name="trialId"/>, given the finished trials (higher metric is better).</summary>
    Configuration Propose(int trialId, IReadOnlyList<TrialRecord> finished);
}

/// <summary>Random search: each trial draws uniformly from the space, from a generator seeded by the sweep seed and the trial id (so a resumed sweep continues the same stream).</summary>
/// <example><code>var proposer = new RandomSearchProposer(space, seed: 1);</code></example>
public sealed class RandomSearchProposer(SearchSpace space, int seed) : IProposer
{
    /// <inheritdoc/>
    public Configuration Propose(int trialId, IReadOnlyList<TrialRecord> finished) => space.Sample(TrialRandom(seed, trialId));

    internal static Random TrialRandom(int seed, int trialId) => new(StableSeed.Mix(seed, trialId, 0x5eed));
}

/// <summary>
/// Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio and Kégl, NeurIPS 2011): after
/// <see cref="StartupTrials"/> random trials, the finished trials are split into the best <see cref="Gamma"/> share
/// and the rest; for each parameter, a Parzen density l(x) of the good values and g(x) of the others (Gaussian
/// kernels in the parameter's own, possibly logarithmic, scale; smoothed counts for choices) is fitted, and of
/// <see cref="Candidates"/> draws from l the one with the largest l(x)/g(x) is taken. Conditional parameters use the
/// trials in which they exist. Seeded by the sweep seed and the trial id.
/// </summary>
/// <example><code>var proposer = new TpeProposer(space, seed: 1) { StartupTrials = 8 };</code></example>
public sealed class TpeProposer(SearchSpace space, int seed) : IProposer
{
    /// <summary>Trials drawn at random before the densities are used. Default 10.</summary>
    public int StartupTrials { get; init; } = 10;

    /// <summary>Share of the finished trials counted as good. Default 0.25.</summary>
    public double Gamma { get; init; } = 0.25;

    /// <summary>Draws from l(x) compared per parameter. Default 24.</summary>
    public int Candidates { get; init; } = 24;

    /// <inheritdoc/>
    public Configuration Propose(int trialId, IReadOnlyList<TrialRecord> finished)
    {
        var random = RandomSearchProposer.TrialRandom(seed, trialId);
        var scored = SweepResult.Ranked(finished).ToList();
        if (scored.Count < StartupTrials)
            return space.Sample(random);
        int goodCount = Math.Max(1, (int)Math.Ceiling(Gamma * scored.Count));
        var good = scored.Take(goodCount).Select(t => t.Configuration).ToList();
        var bad = scored.Skip(goodCount).Select(t => t.Configuration).ToList();

        var configuration = new Configuration();
        foreach (var parameter in space.Parameters)
        {
            if (parameter.Condition is { } condition && !condition(configuration))
                continue;
            var goodValues = good.Where(c => c.Has(parameter.Name)).Select(c => parameter.ToInternal(c[parameter.Name])).ToArray();
            var badValues = bad.Where(c => c.Has(parameter.Name)).Select(c => parameter.ToInternal(c[parameter.Name])).ToArray();
            double x = parameter.IsNumeric
                ? ProposeNumeric(parameter, goodValues, badValues, random)
                : ProposeChoice(parameter, goodValues, badValues, random);
            configuration.Set(parameter.Name, parameter.FromInternal(x));
        }
        return configuration;
    }

    private double ProposeNumeric(SearchParameter parameter, double[] good, double[] bad, Random random)
    {
        double low = parameter.Low, high = parameter.High;
        if (good.Length == 0 || high <= low)
            return low + random.NextDouble() * (high - low);
        var l = new Parzen(good, low, high);
        var g = new Parzen(bad, low, high);
        double best = double.NaN, bestScore = double.NegativeInfinity;
        for (int i = 0; i < Candidates; i++)
        {
            double x = l.Sample(random);
            double score = l.LogDensity(x) - g.LogDensity(x);
            if (score > bestScore)
                (best, bestScore) = (x, score);
        }
        return best;
    }

    private double ProposeChoice(SearchParameter parameter, double[] good, double[] bad, Random random)
    {
        int k = parameter.Choices.Count;
        // Counts plus one per choice: the prior keeps every choice possible.
        double[] Weights(double[] values)
        {
            var w = Enumerable.Repeat(1.0, k).ToArray();
            foreach (double v in values)
                w[(int)v] += 1;
            double sum = w.Sum();
            return w.Select(x => x / sum).ToArray();
        }
        var l = Weights(good);
        var g = Weights(bad);
        int best = 0;
        double bestScore = double.NegativeInfinity;
        for (int i = 0; i < Candidates; i++)
        {
            double u = random.NextDouble(), cumulative = 0;
            int choice = k - 1;
            for (int j = 0; j < k; j++)
                if ((cumulative += l[j]) >= u) { choice = j; break; }
            double score = Math.Log(l[choice]) - Math.Log(g[choice]);
            if (score > bestScore)
                (best, bestScore) = (choice, score);
        }
        return best;
    }

    // A Parzen window density on [low, high]: one Gaussian per observation, with a bandwidth from its neighbours
    // (clipped as in the paper's implementation), plus the uniform prior as one more component.
    private sealed class Parzen
    {
        private readonly double[] _centers;
        private readonly double[] _widths;
        private readonly double _low, _high;

        public Parzen(double[] values, double low, double high)
        {
            _low = low;
            _high = high;
            _centers = values.OrderBy(v => v).ToArray();
            double range = high - low;
            double minWidth = range / Math.Min(100.0, 1 + _centers.Length);
            _widths = new double[_centers.Length];
            for (int i = 0; i < _centers.Length; i++)
            {
                double left = i > 0 ? _centers[i] - _centers[i - 1] : _centers[i] - low;
                double right = i < _centers.Length - 1 ? _centers[i + 1] - _centers[i] : high - _centers[i];
                _widths[i] = Math.Clamp(Math.Max(left, right), minWidth, range);
            }
        }

        public double Sample(Random random)
        {
            int component = random.Next(_centers.Length + 1);
            if (component == _centers.Length)
                return _low + random.NextDouble() * (_high - _low);
            for (int attempt = 0; attempt < 100; attempt++)
            {
                double x = _centers[component] + _widths[component] * Gaussian(random);
                if (x >= _low && x <= _high)
                    return x;
            }
            return Math.Clamp(_centers[component], _low, _high);
        }

        public double LogDensity(double x)
        {
            double prior = 1 / (_high - _low);
            double sum = prior;
            for (int i = 0; i < _centers.Length; i++)
            {
                double z = (x - _centers[i]) / _widths[i];
                sum += Math.Exp(-0.5 * z * z) / (_widths[i] * Math.Sqrt(2 * Math.PI));
            }
            return Math.Log(sum / (_centers.Length + 1));
        }

        private static double Gaussian(Random random)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
    }
}

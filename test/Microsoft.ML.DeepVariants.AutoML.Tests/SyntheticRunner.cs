using Microsoft.ML.DeepVariants.AutoML;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

/// <summary>A trial runner with a closed-form learning curve: fast, deterministic, and able to fail or sleep on demand.</summary>
internal sealed class SyntheticRunner : ITrialRunner
{
    private int _running;

    public int EpochMilliseconds { get; init; }
    public Func<Configuration, bool> Fails { get; init; } = _ => false;
    public int MaxConcurrency { get; private set; }
    public List<int> TrialsRun { get; } = [];

    public static SearchSpace Space()
    {
        var space = new SearchSpace();
        space.Uniform("x", -5, 5);
        space.LogUniform("rate", 1e-3, 1);
        space.Choice("kind", "a", "b", "c");
        space.Integer("depth", 1, 4);
        space.LogInteger("width3", 8, 64).When("depth >= 3", c => c.GetInt("depth") >= 3);
        return space;
    }

    public static double Ceiling(Configuration c) =>
        Math.Exp(-0.1 * Math.Pow(c.GetDouble("x") - 1.5, 2)) * 0.9 + (c.GetString("kind") == "b" ? 0.05 : 0) + (c.Has("width3") ? 0.001 * c.GetInt("width3") : 0);

    public void Run(Configuration configuration, TrialContext context)
    {
        int now = Interlocked.Increment(ref _running);
        lock (TrialsRun)
        {
            MaxConcurrency = Math.Max(MaxConcurrency, now);
            TrialsRun.Add(context.TrialId);
        }
        try
        {
            double ceiling = Ceiling(configuration);
            for (int epoch = 1; epoch <= context.MaxEpochs; epoch++)
            {
                context.CancellationToken.ThrowIfCancellationRequested();
                if (EpochMilliseconds > 0)
                    Thread.Sleep(EpochMilliseconds);
                if (epoch == 2 && Fails(configuration))
                    throw new InvalidOperationException("Training stopped: the loss became NaN at epoch 2, batch 1.");
                if (!context.ReportEpoch(epoch, ceiling * (1 - Math.Exp(-epoch * (0.2 + configuration.GetDouble("rate"))))))
                    return;
            }
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }

    public void Refit(Configuration configuration, int epochs, int seed, string modelPath) =>
        File.WriteAllText(modelPath, $"{configuration} {epochs} {seed}");
}

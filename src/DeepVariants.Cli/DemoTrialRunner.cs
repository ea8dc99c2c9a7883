using Microsoft.ML.DeepVariants.AutoML;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a SearchSpace namespace, which would hide the sweeper's type inside this namespace.
using SearchSpace = Microsoft.ML.DeepVariants.AutoML.SearchSpace;

/// <summary>
/// The demo task: a closed-form objective that needs no data, for trying the sweeper, its journal and its early
/// stopping in seconds. Its metric rises with the epochs towards a ceiling set by the configuration; an epoch
/// takes <c>epochMilliseconds</c>. With <c>failEveryTrial</c>, every trial throws after its first epoch, to show how a
/// sweep whose trials all fail ends.
/// </summary>
public sealed class DemoTrialRunner(int epochMilliseconds, bool failEveryTrial = false) : ITrialRunner
{
    /// <summary>The demo's search space (a conditional parameter included).</summary>
    public static SearchSpace Space()
    {
        var space = new SearchSpace();
        space.Uniform("x", -5, 5);
        space.LogUniform("rate", 1e-3, 1);
        space.Choice("kind", "a", "b", "c");
        space.Integer("depth", 1, 4).When("kind = c", c => c.GetString("kind") == "c");
        return space;
    }

    /// <inheritdoc/>
    public void Run(Configuration configuration, TrialContext context)
    {
        double ceiling = Ceiling(configuration);
        for (int epoch = 1; epoch <= context.MaxEpochs; epoch++)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            Thread.Sleep(epochMilliseconds);
            double rate = configuration.GetDouble("rate");
            if (!context.ReportEpoch(epoch, ceiling * (1 - Math.Exp(-epoch * (0.2 + rate)))))
                return;
            if (failEveryTrial)
                throw new InvalidOperationException("demo: this trial fails, as --demo-fail asked");
        }
    }

    /// <inheritdoc/>
    public void Refit(Configuration configuration, int epochs, int seed, string modelPath)
    {
        string full = Path.GetFullPath(modelPath);
        File.WriteAllText(full + ".tmp", $"demo model: {configuration}, {epochs} epochs, seed {seed}\n");
        File.Move(full + ".tmp", full, overwrite: true);
    }

    private static double Ceiling(Configuration c)
    {
        double x = c.GetDouble("x");
        double bonus = c.GetString("kind") switch { "a" => 0.0, "b" => 0.05, _ => 0.02 * c.GetInt("depth") };
        return Math.Exp(-0.1 * (x - 1.5) * (x - 1.5)) * 0.9 + bonus;
    }
}

using SkiaSharp;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Pictures of a sweep: each trial's best metric and the best so far, trial by trial, as a PNG.</summary>
/// <example><code>SweepPlots.WriteBestSoFar("best-so-far.png", experiment.Run());</code></example>
public static class SweepPlots
{
    /// <summary>
    /// Writes each trial's best validation metric (dots) and the best metric of all trials up to it (a line) against
    /// the trial id; trials without a metric (failed before their first epoch) are left out.
    /// </summary>
    public static void WriteBestSoFar(string path, SweepResult result, int width = 800, int height = 420)
    {
        ArgumentNullException.ThrowIfNull(result);
        var scored = result.Trials.Where(t => t.BestMetric is { } m && double.IsFinite(m)).OrderBy(t => t.Id).ToList();
        var trials = scored.Select(t => ((double)t.Id, t.BestMetric!.Value)).ToList();
        var best = new List<(double, double)>();
        double so = double.NegativeInfinity;
        foreach (var (id, metric) in trials)
            best.Add((id, so = Math.Max(so, metric)));
        TrainingPlots.WriteChart(path, $"Sweep: best validation metric so far ({result.Trials.Count} trials)", "trial", "validation metric",
        [
            new("best so far", new SKColor(214, 39, 40), best),
            new("trial", new SKColor(31, 119, 180), trials, Line: false),
        ], width, height);
    }
}

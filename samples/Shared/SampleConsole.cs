using Microsoft.ML.DeepVariants;
using Spectre.Console;

namespace DeepVariants.Samples;

/// <summary>
/// What the samples share: their output folder, a progress bar per epoch while a model trains (one line per epoch
/// when the output is not a terminal), and a spinner for the shorter phases.
/// </summary>
internal static class SampleConsole
{
    /// <summary>The folder a sample writes into (relative to the working directory), created when missing.</summary>
    public static string OutputFolder(string path)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(full);
        return full;
    }

    /// <summary>Runs <paramref name="fit"/>, which trains with <paramref name="options"/>, showing each epoch's batches and loss.</summary>
    public static T Train<T>(TrainingOptions options, Func<T> fit)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            options.Progress = new Reporter(p =>
            {
                if (p.IsEpochEnd)
                    AnsiConsole.WriteLine($"epoch {p.Epoch}/{p.Epochs}: loss {p.Loss:F4}" + (p.ValidationMetric is { } v ? $", validation {v:F4}" : "") + $", {p.Elapsed.TotalSeconds:F0} s");
            });
            return fit();
        }
        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                // One bar per epoch, added when the epoch starts: a fit may run more epochs than asked (MinimumSteps).
                var bars = new Dictionary<int, ProgressTask>();
                options.Progress = new Reporter(p =>
                {
                    if (!bars.TryGetValue(p.Epoch, out var bar))
                        bars[p.Epoch] = bar = context.AddTask($"Epoch {p.Epoch}/{p.Epochs}");
                    bar.MaxValue = p.Batches;
                    bar.Value = p.Batch;
                    bar.Description = $"Epoch {p.Epoch}/{p.Epochs} loss {p.Loss:F3}" + (p.ValidationMetric is { } v ? $" validation {v:F3}" : "");
                    if (p.IsEpochEnd)
                        bar.StopTask();
                });
                result = fit();
            });
        return result;
    }

    /// <summary>Runs a shorter phase (loading, scoring) under a spinner that names it.</summary>
    public static T Phase<T>(string description, Func<T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            AnsiConsole.WriteLine(description + " ...");
            return work();
        }
        T result = default!;
        AnsiConsole.Status().Start(description, _ => result = work());
        return result;
    }

    // Synchronous, unlike Progress<T>, so that the bars follow the training loop.
    private sealed class Reporter(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

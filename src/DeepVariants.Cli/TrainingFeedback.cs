using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

/// <summary>
/// Shows a fit as it goes: on a terminal, a progress bar over the epoch's batches with the last epoch's figures; when
/// the output is a file or a pipe, one line per epoch (loss, metric, validation, time, ETA).
/// </summary>
internal static class TrainingFeedback
{
    /// <summary>Runs <paramref name="fit"/>, which trains with the progress it is given, showing that progress on <paramref name="console"/>.</summary>
    public static T Run<T>(IAnsiConsole console, string title, Func<IProgress<TrainingProgress>, T> fit)
    {
        if (!console.Profile.Capabilities.Interactive)
            return fit(new Lines(console));
        T result = default!;
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(title), maxValue: 1);
                result = fit(new Bar(task, title));
            });
        return result;
    }

    /// <summary>Runs a phase without epochs (reading and checking data, scoring) under a spinner that names it, on a terminal.</summary>
    public static T Phase<T>(IAnsiConsole console, string description, Func<T> work)
    {
        if (!console.Profile.Capabilities.Interactive)
            return work();
        T result = default!;
        console.Status().Start(Markup.Escape(description + " ..."), _ => result = work());
        return result;
    }

    /// <summary>The rows of <paramref name="data"/>, computed now (every column read once) and kept in memory.</summary>
    public static IDataView Materialize(MLContext mlContext, IDataView data)
    {
        var cached = mlContext.Data.Cache(data);
        using var cursor = cached.GetRowCursor(cached.Schema);
        while (cursor.MoveNext())
        {
        }
        return cached;
    }

    /// <summary>The line an epoch ends with.</summary>
    public static string Describe(TrainingProgress e)
    {
        string line = $"epoch {e.Epoch}/{e.Epochs}: loss {e.Loss:F4}";
        if (e.Metric is { } metric)
            line += $", metric {metric:F4}";
        if (e.ValidationLoss is { } validationLoss)
            line += $", validation loss {validationLoss:F4}";
        if (e.ValidationMetric is { } validationMetric)
            line += $", validation metric {validationMetric:F4}";
        double perEpoch = e.Elapsed.TotalSeconds / e.Epoch;
        return line + $", {e.Elapsed.TotalSeconds:F1} s" + (e.Epoch < e.Epochs ? $", ETA {perEpoch * (e.Epochs - e.Epoch):F0} s" : "");
    }

    private sealed class Lines(IAnsiConsole console) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.IsEpochEnd)
                console.WriteLine(Describe(value));
        }
    }

    private sealed class Bar(ProgressTask task, string title) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            // One bar over all the batches of all the epochs; the description carries the last finished epoch.
            task.MaxValue = Math.Max(1, (double)value.Epochs * value.Batches);
            task.Value = (value.Epoch - 1) * (double)value.Batches + value.Batch;
            if (value.IsEpochEnd)
                task.Description = Markup.Escape($"{title} - {Describe(value)}");
        }
    }
}

/// <summary>Progress that goes wherever <see cref="Target"/> points: the options are set before the display exists.</summary>
internal sealed class ProgressRelay : IProgress<TrainingProgress>
{
    public IProgress<TrainingProgress>? Target { get; set; }

    public void Report(TrainingProgress value) => Target?.Report(value);
}

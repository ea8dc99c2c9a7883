using SkiaSharp;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Draws a series with its attention weights (the <see cref="SequenceClassifierOptions.AttentionColumnName"/> column) as
/// a PNG: the weights as orange bars behind the series, one line per channel. Drawn with SkiaSharp, the graphics library
/// ML.NET's image transforms already load (ScottPlot 5.1 needs SkiaSharp 3, which ML.NET 5's image transforms do not take).
/// </summary>
/// <example>
/// <code>
/// var series = scored.GetColumn&lt;float[]&gt;("Series").First();
/// var weights = scored.GetColumn&lt;float[]&gt;("Attention").First();
/// AttentionPlot.Write("attention.png", series, weights, channels: 1);
/// </code>
/// </example>
public static class AttentionPlot
{
    private static readonly SKColor[] LineColors = [new(31, 119, 180), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189), new(140, 86, 75), new(23, 190, 207)];

    /// <summary>
    /// Writes the plot of <paramref name="series"/> (step-major, <paramref name="channels"/> values per step, trailing
    /// all-NaN steps are padding) and one weight per step to <paramref name="path"/>, through a temporary name.
    /// </summary>
    public static void Write(string path, IReadOnlyList<float> series, IReadOnlyList<float> weights, int channels = 1, int width = 800, int height = 300)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 100);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 50);
        if (series.Count % channels != 0)
            throw new ArgumentException($"The series has {series.Count} values, not whole steps of {channels} channels.", nameof(series));
        int steps = series.Count / channels;
        while (steps > 0 && Enumerable.Range(0, channels).All(c => float.IsNaN(series[(steps - 1) * channels + c])))
            steps--;
        if (steps == 0)
            throw new ArgumentException("The series is empty (no values, or only NaN padding).", nameof(series));
        if (weights.Count < steps)
            throw new ArgumentException($"There are {weights.Count} weights for a series of {steps} steps; expected one per step.", nameof(weights));

        const float margin = 20;
        float plotWidth = width - 2 * margin, plotHeight = height - 2 * margin, stepWidth = plotWidth / steps;
        var values = Enumerable.Range(0, steps * channels).Select(i => series[i]).ToArray();
        float low = values.Min(), high = values.Max(), span = high > low ? high - low : 1;
        float heaviest = Math.Max(Enumerable.Range(0, steps).Max(t => weights[t]), 1e-12f);

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var bar = new SKPaint { Color = new SKColor(255, 127, 14, 160), Style = SKPaintStyle.Fill })
            for (int t = 0; t < steps; t++)
            {
                float h = plotHeight * Math.Clamp(weights[t] / heaviest, 0, 1);
                canvas.DrawRect(margin + t * stepWidth, margin + plotHeight - h, Math.Max(stepWidth, 1), h, bar);
            }
        for (int c = 0; c < channels; c++)
        {
            using var line = new SKPaint { Color = LineColors[c % LineColors.Length], Style = SKPaintStyle.Stroke, StrokeWidth = 2, IsAntialias = true };
            using var trace = new SKPath();
            for (int t = 0; t < steps; t++)
            {
                float x = margin + (t + 0.5f) * stepWidth, y = margin + plotHeight * (1 - (values[t * channels + c] - low) / span);
                if (t == 0)
                    trace.MoveTo(x, y);
                else
                    trace.LineTo(x, y);
            }
            canvas.DrawPath(trace, line);
        }
        using (var frame = new SKPaint { Color = SKColors.Gray, Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
            canvas.DrawRect(margin, margin, plotWidth, plotHeight, frame);

        using var image = surface.Snapshot();
        PngFile.Write(path, image);
    }
}

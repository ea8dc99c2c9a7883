using System.Globalization;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Pictures of a fit: training curves (loss and metric per epoch, training and validation) from the
/// <see cref="TrainingHistory"/> every fit returns, and a confusion-matrix heatmap from ML.NET's evaluation. Drawn with
/// SkiaSharp, the graphics library ML.NET's image transforms already load (ScottPlot 5 needs SkiaSharp 3, which ML.NET
/// 5's image transforms do not take); written through a temporary name.
/// </summary>
/// <example>
/// <code>
/// var fit = mlContext.Transforms.DeepVariants.CnnClassifier(options).Train(train, validation);
/// TrainingPlots.WriteCurves("curves.png", fit.History);
/// var metrics = mlContext.MulticlassClassification.Evaluate(fit.Model.Transform(test));
/// TrainingPlots.WriteConfusionMatrix("confusion.png", metrics.ConfusionMatrix, classNames);
/// </code>
/// </example>
public static class TrainingPlots
{
    private static readonly SKColor Training = new(31, 119, 180), Validation = new(255, 127, 14);

    /// <summary>Two panels side by side: the loss per epoch, and the metric per epoch, each for training and (when there was validation data) validation.</summary>
    public static void WriteCurves(string path, TrainingHistory history, int width = 1100, int height = 420)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (history.Epochs.Count == 0)
            throw new ArgumentException("The history has no epochs to plot.", nameof(history));
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 300);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 200);
        var epochs = history.Epochs;
        static List<(double, double)> Points(IEnumerable<(double X, double? Y)> values) =>
            values.Where(v => v.Y is { } y && double.IsFinite(y)).Select(v => (v.X, v.Y!.Value)).ToList();
        var loss = new List<ChartSeries>
        {
            new("training", Training, Points(epochs.Select(e => ((double)e.Epoch, (double?)e.Loss)))),
            new("validation", Validation, Points(epochs.Select(e => ((double)e.Epoch, e.ValidationLoss)))),
        };
        var metric = new List<ChartSeries>
        {
            new("training", Training, Points(epochs.Select(e => ((double)e.Epoch, e.Metric)))),
            new("validation", Validation, Points(epochs.Select(e => ((double)e.Epoch, e.ValidationMetric)))),
        };
        string kept = $" (kept epoch {history.BestEpoch})";
        Draw(path, width, height, canvas =>
        {
            DrawChart(canvas, new SKRect(0, 0, width / 2f, height), "Loss" + kept, "epoch", "loss", loss, integerX: true, marker: history.BestEpoch);
            DrawChart(canvas, new SKRect(width / 2f, 0, width, height), "Metric" + kept, "epoch", "metric", metric, integerX: true, marker: history.BestEpoch);
        });
    }

    /// <summary>
    /// A heatmap of <paramref name="matrix"/>: one row per true class, one column per predicted class, each cell shaded
    /// by its share of the row (recall on the diagonal) and labelled with its count.
    /// </summary>
    public static void WriteConfusionMatrix(string path, ConfusionMatrix matrix, IReadOnlyList<string> classNames, int cellSize = 0)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(classNames);
        int n = matrix.NumberOfClasses;
        if (classNames.Count != n)
            throw new ArgumentException($"There are {classNames.Count} class names for a confusion matrix of {n} classes.", nameof(classNames));
        cellSize = cellSize > 0 ? cellSize : Math.Clamp(640 / Math.Max(n, 1), 22, 90);
        using var labelFont = Font(Math.Clamp(cellSize * 0.28f, 9, 14));
        float nameWidth = classNames.Max(c => Width(labelFont, c)) + 16;
        float left = nameWidth + 30, top = 50, size = cellSize * n;
        int width = (int)(left + size + 20), height = (int)(top + size + nameWidth + 40);
        Draw(path, width, height, canvas =>
        {
            using var title = Font(15);
            using var black = Paint(SKColors.Black);
            canvas.DrawText("Confusion matrix (rows: true class, columns: predicted; shade: share of the row)", 10, 24, title, black);
            using var countFont = Font(Math.Clamp(cellSize * 0.3f, 8, 14));
            for (int t = 0; t < n; t++)
            {
                double rowTotal = matrix.Counts[t].Sum();
                for (int p = 0; p < n; p++)
                {
                    double count = matrix.Counts[t][p], share = rowTotal > 0 ? count / rowTotal : 0;
                    var cell = SKRect.Create(left + p * cellSize, top + t * cellSize, cellSize, cellSize);
                    using var fill = Paint(Blues(share));
                    canvas.DrawRect(cell, fill);
                    using var text = Paint(share > 0.55 ? SKColors.White : SKColors.Black);
                    string label = count.ToString("0", CultureInfo.InvariantCulture);
                    canvas.DrawText(label, cell.MidX - Width(countFont, label) / 2, cell.MidY + countFont.Size / 3, countFont, text);
                }
                canvas.DrawText(classNames[t], left - 8 - Width(labelFont, classNames[t]), top + (t + 0.5f) * cellSize + labelFont.Size / 3, labelFont, black);
            }
            for (int p = 0; p < n; p++)
            {
                // Predicted class names run down the page below their column.
                canvas.Save();
                canvas.Translate(left + (p + 0.5f) * cellSize + labelFont.Size / 3, top + size + 8);
                canvas.RotateDegrees(90);
                canvas.DrawText(classNames[p], 0, 0, labelFont, black);
                canvas.Restore();
            }
            using var frame = Paint(SKColors.Gray, stroke: 1);
            canvas.DrawRect(left, top, size, size, frame);
        });
    }

    /// <summary>One named line of a chart: its colour and its points.</summary>
    internal sealed record ChartSeries(string Name, SKColor Color, IReadOnlyList<(double X, double Y)> Points, bool Line = true);

    /// <summary>A one-panel chart of <paramref name="series"/> at <paramref name="path"/> (the sweep's best-so-far curve uses it).</summary>
    internal static void WriteChart(string path, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, int width = 800, int height = 420) =>
        Draw(path, width, height, canvas => DrawChart(canvas, new SKRect(0, 0, width, height), title, xLabel, yLabel, series, integerX: true, marker: null));

    private static void Draw(string path, int width, int height, Action<SKCanvas> draw)
    {
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        surface.Canvas.Clear(SKColors.White);
        draw(surface.Canvas);
        using var image = surface.Snapshot();
        PngFile.Write(path, image);
    }

    private static void DrawChart(SKCanvas canvas, SKRect area, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, bool integerX, double? marker)
    {
        var plot = new SKRect(area.Left + 70, area.Top + 40, area.Right - 20, area.Bottom - 50);
        using var font = Font(12);
        using var titleFont = Font(15);
        using var black = Paint(SKColors.Black);
        using var grid = Paint(new SKColor(225, 225, 225), stroke: 1);
        using var axis = Paint(SKColors.Gray, stroke: 1);
        canvas.DrawText(title, plot.Left, area.Top + 24, titleFont, black);
        var shown = series.Where(s => s.Points.Count > 0).ToList();
        if (shown.Count == 0)
        {
            canvas.DrawText("no values recorded", plot.MidX - 50, plot.MidY, font, black);
            canvas.DrawRect(plot, axis);
            return;
        }
        var points = shown.SelectMany(s => s.Points).ToList();
        double x0 = points.Min(p => p.X), x1 = points.Max(p => p.X), y0 = points.Min(p => p.Y), y1 = points.Max(p => p.Y);
        if (x1 <= x0)
            (x0, x1) = (x0 - 1, x1 + 1);
        double pad = y1 > y0 ? (y1 - y0) * 0.08 : Math.Max(Math.Abs(y0) * 0.1, 0.1);
        (y0, y1) = (y0 - pad, y1 + pad);
        float X(double x) => plot.Left + (float)((x - x0) / (x1 - x0)) * plot.Width;
        float Y(double y) => plot.Bottom - (float)((y - y0) / (y1 - y0)) * plot.Height;

        for (int i = 0; i <= 5; i++)
        {
            double y = y0 + (y1 - y0) * i / 5;
            canvas.DrawLine(plot.Left, Y(y), plot.Right, Y(y), grid);
            string label = y.ToString(Math.Abs(y1 - y0) < 0.1 ? "F4" : Math.Abs(y1 - y0) < 10 ? "F3" : "G4", CultureInfo.InvariantCulture);
            canvas.DrawText(label, plot.Left - 6 - Width(font, label), Y(y) + 4, font, black);
        }
        int steps = integerX ? (int)Math.Max(1, Math.Ceiling((x1 - x0) / 10)) : 1;
        for (double x = integerX ? Math.Ceiling(x0) : x0; x <= x1 + 1e-9; x += integerX ? steps : (x1 - x0) / 5)
        {
            canvas.DrawLine(X(x), plot.Top, X(x), plot.Bottom, grid);
            string label = x.ToString(integerX ? "0" : "G3", CultureInfo.InvariantCulture);
            canvas.DrawText(label, X(x) - Width(font, label) / 2, plot.Bottom + 16, font, black);
        }
        if (marker is { } m && m >= x0 && m <= x1)
        {
            using var dashed = Paint(new SKColor(44, 160, 44), stroke: 1.5f);
            dashed.PathEffect = SKPathEffect.CreateDash([6, 4], 0);
            canvas.DrawLine(X(m), plot.Top, X(m), plot.Bottom, dashed);
        }
        canvas.DrawRect(plot, axis);
        canvas.DrawText(xLabel, plot.MidX - Width(font, xLabel) / 2, plot.Bottom + 36, font, black);
        canvas.Save();
        canvas.Translate(area.Left + 14, plot.MidY + Width(font, yLabel) / 2);
        canvas.RotateDegrees(-90);
        canvas.DrawText(yLabel, 0, 0, font, black);
        canvas.Restore();

        foreach (var s in shown)
        {
            using var line = Paint(s.Color, stroke: 2.5f);
            using var dot = Paint(s.Color);
            if (s.Line && s.Points.Count > 1)
            {
                using var path = new SKPath();
                path.MoveTo(X(s.Points[0].X), Y(s.Points[0].Y));
                foreach (var (x, y) in s.Points.Skip(1))
                    path.LineTo(X(x), Y(y));
                canvas.DrawPath(path, line);
            }
            foreach (var (x, y) in s.Points)
                canvas.DrawCircle(X(x), Y(y), s.Line ? 3.5f : 4.5f, dot);
        }
        // The legend last, on a white box, so that no line runs through it.
        float widest = shown.Max(s => Width(font, s.Name)), legendY = plot.Top + 16;
        using (var box = Paint(new SKColor(255, 255, 255, 230)))
            canvas.DrawRect(plot.Right - widest - 50, plot.Top + 4, widest + 44, 18 * shown.Count + 4, box);
        foreach (var s in shown)
        {
            using var line = Paint(s.Color, stroke: 2.5f);
            float legendX = plot.Right - 10 - Width(font, s.Name);
            canvas.DrawText(s.Name, legendX, legendY + 4, font, black);
            if (s.Line)
                canvas.DrawLine(legendX - 30, legendY, legendX - 6, legendY, line);
            else
            {
                using var dot = Paint(s.Color);
                canvas.DrawCircle(legendX - 18, legendY, 4.5f, dot);
            }
            legendY += 18;
        }
    }

    // White to a deep blue, as matplotlib's "Blues".
    private static SKColor Blues(double share)
    {
        share = Math.Clamp(share, 0, 1);
        byte Mix(int from, int to) => (byte)Math.Round(from + (to - from) * share);
        return new SKColor(Mix(247, 8), Mix(251, 48), Mix(255, 107));
    }

    private static SKFont Font(float size) => new(SKTypeface.Default, size);

    private static float Width(SKFont font, string text)
    {
        using var paint = new SKPaint(font);
        return paint.MeasureText(text);
    }

    private static SKPaint Paint(SKColor color, float stroke = 0) => new()
    {
        Color = color, IsAntialias = true, Style = stroke > 0 ? SKPaintStyle.Stroke : SKPaintStyle.Fill, StrokeWidth = stroke,
    };
}

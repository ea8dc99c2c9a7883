using System.Diagnostics;
using Google.Protobuf;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>What serving a model costs and gives, as <see cref="ServingReport.Measure"/> measured it.</summary>
/// <param name="Parameters">Stored weights in the graph: the elements of its float, int8, uint8 and int32 initializers (shapes, int64, not counted).</param>
/// <param name="OnnxBytes">The graph's size in bytes.</param>
/// <param name="RowsPerSecond">Rows per second through the ML.NET model, one row at a time as <c>Transform</c> serves them (the best of three passes, after a warm-up).</param>
/// <param name="BatchedRowsPerSecond">Rows per second through ONNX Runtime alone, in batches of <c>batchSize</c> rows (the best of three passes, after a warm-up).</param>
/// <param name="Accuracy">Micro-accuracy of the ML.NET model on the data, when it has the label column; null otherwise.</param>
public sealed record ServingFigures(long Parameters, long OnnxBytes, double RowsPerSecond, double BatchedRowsPerSecond, double? Accuracy);

/// <summary>
/// One report for any compression method: what a model costs where it is used, measured the same way before and after
/// (parameters, file size, rows per second through ML.NET and through ONNX Runtime in batches, accuracy).
/// </summary>
/// <example>
/// <code>
/// var before = ServingReport.Measure(ml, fitted.Model, fitted.OnnxModel, test);
/// var after = ServingReport.Measure(ml, int8.Model, int8.OnnxModel, test);
/// Console.WriteLine($"{after.OnnxBytes / (double)before.OnnxBytes:P0} of the size, {after.BatchedRowsPerSecond / before.BatchedRowsPerSecond:F2}x the speed");
/// </code>
/// </example>
public static class ServingReport
{
    /// <summary>
    /// Measures <paramref name="model"/> (an ML.NET model that serves <paramref name="onnx"/>) on <paramref name="data"/>.
    /// The batched figure feeds the graph's input column, read from <paramref name="data"/> by the graph input's name, to
    /// a copy of the graph with a free batch dimension. <paramref name="labelColumn"/> names the key-typed label for the
    /// accuracy (null or absent: no accuracy).
    /// </summary>
    public static ServingFigures Measure(MLContext ml, ITransformer model, byte[] onnx, IDataView data, string? labelColumn = "Label", int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(onnx);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var graph = ModelProto.Parser.ParseFrom(onnx).Graph;
        string input = graph.Input.Single(i => graph.Initializer.All(t => t.Name != i.Name)).Name;
        if (data.Schema.GetColumnOrNull(input) is not { Type: VectorDataViewType { ItemType: NumberDataViewType } })
            throw new ArgumentException($"The graph reads column '{input}', a float vector, which the data does not have; pass the data as the graph reads it.", nameof(data));
        float[][] rows = data.GetColumn<float[]>(input).ToArray();
        if (rows.Length == 0)
            throw new ArgumentException("The data has no rows to measure.", nameof(data));

        // One row at a time through ML.NET, as Transform serves: every output is computed by reading the prediction. A
        // first pass over a batch's worth of rows warms the model up (its ONNX session, the JIT), as it is warm when served.
        var scored = model.Transform(data);
        string counted = scored.Schema.GetColumnOrNull("PredictedLabel") is not null ? "PredictedLabel" : scored.Schema[^1].Name;
        Read(batchSize);
        double perRow = Best(() => Read(long.MaxValue), rows.Length);
        double? accuracy = labelColumn is not null && data.Schema.GetColumnOrNull(labelColumn) is { Type: KeyDataViewType } && scored.Schema.GetColumnOrNull("PredictedLabel") is not null
            ? ml.MulticlassClassification.Evaluate(scored, labelColumn).MicroAccuracy
            : null;

        double batched = BatchedRowsPerSecond(Batched(onnx), input, rows, batchSize);
        long parameters = graph.Initializer.Where(t => t.DataType is (int)TensorProto.Types.DataType.Float or (int)TensorProto.Types.DataType.Int8
                or (int)TensorProto.Types.DataType.Uint8 or (int)TensorProto.Types.DataType.Int32)
            .Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
        return new ServingFigures(parameters, onnx.LongLength, perRow, batched, accuracy);

        void Read(long count)
        {
            using var cursor = scored.GetRowCursor([scored.Schema[counted]]);
            for (long i = 0; i < count && cursor.MoveNext(); i++)
            {
            }
        }
    }

    private static double BatchedRowsPerSecond(byte[] graph, string input, float[][] rows, int batchSize)
    {
        using var session = new InferenceSession(graph);
        int width = rows[0].Length;
        var batches = new List<float[]>();
        for (int start = 0; start < rows.Length; start += batchSize)
            batches.Add(rows.Skip(start).Take(batchSize).SelectMany(r => r).ToArray());
        // One warm-up batch, so the figure is not the session's first allocations.
        Run(batches[0]);
        return Best(() => batches.ForEach(Run), rows.Length);

        void Run(float[] batch)
        {
            using var value = OrtValue.CreateTensorValueFromMemory(batch, [batch.Length / width, width]);
            using var outputs = session.Run(new RunOptions(), new Dictionary<string, OrtValue> { [input] = value }, session.OutputNames);
        }
    }

    // Rows per second of the fastest of three passes: the other processes and the GC slow a pass down, never speed it up.
    private static double Best(Action pass, int rows)
    {
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            pass();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return rows / best;
    }

    /// <summary>
    /// The single-row graph a DeepVariants model serves, with a free batch dimension: its input [W] becomes [N, W], and
    /// every output reshaped to one row ([K]) is reshaped to [N, K] instead. The networks' first step already reshapes
    /// the row to [-1, C, H, W], so nothing else changes.
    /// </summary>
    internal static byte[] Batched(byte[] onnx)
    {
        var model = ModelProto.Parser.ParseFrom(onnx);
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        foreach (var value in graph.Input.Where(i => !initializers.ContainsKey(i.Name)).Concat(graph.Output))
        {
            var dims = value.Type.TensorType.Shape.Dim;
            if (dims.Count == 1)
                dims.Insert(0, new TensorShapeProto.Types.Dimension { DimParam = "N" });
        }
        foreach (var output in graph.Output)
        {
            // The reshape that ends the graph, perhaps behind the Identity that names the output.
            var producer = graph.Node.FirstOrDefault(n => n.Output.Contains(output.Name));
            while (producer is { OpType: "Identity" })
            {
                string source = producer.Input[0];
                producer = graph.Node.FirstOrDefault(n => n.Output.Contains(source));
            }
            if (producer is { OpType: "Reshape" } && initializers.TryGetValue(producer.Input[1], out var shape) && OneSize(shape) is { } size)
            {
                // A new shape initializer of its own: another reshape may share the old one.
                var batchedShape = new TensorProto { Name = shape.Name + "_batched", DataType = shape.DataType };
                batchedShape.Dims.Add(2);
                batchedShape.Int64Data.Add(-1);
                batchedShape.Int64Data.Add(size);
                graph.Initializer.Add(batchedShape);
                producer.Input[1] = batchedShape.Name;
                if (graph.Node.All(n => !n.Input.Contains(shape.Name)))
                    graph.Initializer.Remove(shape);
            }
            else
                throw new NotSupportedException($"Output '{output.Name}' is not reshaped to one row at the end of the graph, so no batched copy can be made of it.");
        }
        return model.ToByteArray();
    }

    // The one size of a one-element int64 shape, written as int64_data or as raw bytes.
    private static long? OneSize(TensorProto shape) =>
        shape.DataType != (int)TensorProto.Types.DataType.Int64 ? null
        : shape.Int64Data.Count == 1 ? shape.Int64Data[0]
        : shape.Int64Data.Count == 0 && shape.RawData.Length == sizeof(long) ? BitConverter.ToInt64(shape.RawData.Span)
        : null;
}

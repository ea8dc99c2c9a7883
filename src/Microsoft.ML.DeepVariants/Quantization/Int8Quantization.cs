using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.Transforms.Onnx;
using Onnx;

namespace Microsoft.ML.DeepVariants.Quantization;

/// <summary>Options of post-training int8 quantization.</summary>
/// <example><code>var options = new QuantizationOptions { CalibrationRows = 512 };</code></example>
public sealed class QuantizationOptions
{
    /// <summary>Rows of the calibration data whose activations set each quantized tensor's range (the first ones). Default 256.</summary>
    public int CalibrationRows { get; set; } = 256;

    /// <summary>Fold each convolution's batch normalisation into its weights before quantizing, as inference does. Default true.</summary>
    public bool FoldBatchNorm { get; set; } = true;

    internal void Validate()
    {
        if (CalibrationRows < 1)
            throw new ArgumentOutOfRangeException(nameof(CalibrationRows), CalibrationRows, "CalibrationRows must be 1 or more: the activations' ranges are measured on that many rows.");
    }
}

/// <summary>What int8 quantization did.</summary>
/// <param name="FloatBytes">The float ONNX graph's size in bytes.</param>
/// <param name="QuantizedBytes">The int8 graph's size in bytes.</param>
/// <param name="QuantizedNodes">Convolutions and matrix products quantized.</param>
/// <param name="FoldedBatchNorms">Batch normalisations folded into their convolution.</param>
/// <param name="CalibrationRows">Rows the ranges were measured on.</param>
public sealed record QuantizationReport(long FloatBytes, long QuantizedBytes, int QuantizedNodes, int FoldedBatchNorms, int CalibrationRows)
{
    /// <summary>The int8 graph's size as a share of the float graph's.</summary>
    public double SizeRatio => (double)QuantizedBytes / FloatBytes;
}

/// <summary>An int8 model: the ML.NET model serving the quantized graph, the graph, and the report.</summary>
/// <param name="Model">The quantized model, an ordinary ML.NET model (save it with <c>mlContext.Model.Save</c>).</param>
/// <param name="OnnxModel">The quantized ONNX graph (QDQ form).</param>
/// <param name="Report">Sizes and counts.</param>
public sealed record QuantizationResult(TransformerChain<ITransformer> Model, byte[] OnnxModel, QuantizationReport Report);

/// <summary>
/// Post-training static int8 quantization of a fitted DeepVariants model (the <see cref="FitResult"/> that <c>Train</c>
/// returns): batch normalisations folded, activation ranges calibrated on rows of the data through ONNX Runtime, and the
/// graph rewritten in the QDQ form ONNX Runtime fuses into integer kernels (per-channel int8 weights, per-tensor uint8
/// activations, int32 biases). The result is served by ML.NET's ONNX transformer, with the same columns, like the float model.
/// </summary>
internal static class Int8Quantization
{
    public static QuantizationResult Quantize(ModelContext context, FitResult fitted, IDataView calibration, QuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(fitted);
        ArgumentNullException.ThrowIfNull(calibration);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var trained = fitted.Trained ?? throw new ArgumentException(
            "The model has no trained network with it; quantize the FitResult that a DeepVariants estimator's Train returned in this process.", nameof(fitted));
        var serve = trained.ServeGraph ?? throw new NotSupportedException(
            "This model serves its graph with steps of its own (a graph or table model); int8 quantization serves models whose graph is the whole network, such as the CNN classifier.");
        trained.CheckSchema(calibration.Schema, "calibration");

        var model = ModelProto.Parser.ParseFrom(fitted.OnnxModel);
        var constants = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var inputs = model.Graph.Input.Where(i => !constants.Contains(i.Name)).ToList();
        string[] outputs = [.. model.Graph.Output.Select(o => o.Name)];
        int folded = options.FoldBatchNorm ? OnnxQuantization.FoldBatchNorms(model) : 0;
        var tensors = OnnxQuantization.CalibrationTensors(model);
        if (tensors.Count == 0)
            throw new NotSupportedException("The model's graph has no convolution or matrix product with constant weights to quantize.");

        // The graph's input rows, as the fitted model feeds them: its steps before the ONNX transformer.
        IDataView fed = calibration;
        foreach (var step in fitted.Model)
        {
            if (step is OnnxTransformer)
                break;
            fed = step.Transform(fed);
        }
        var ranges = new Dictionary<string, (float Min, float Max)>();
        using var session = new InferenceSession(OnnxQuantization.WithOutputs(model, tensors));
        var columns = inputs.Select(i => fed.Schema.GetColumnOrNull(i.Name)
            ?? throw new InvalidOperationException($"The graph's input '{i.Name}' is not a column of the model's prepared rows.")).ToList();
        int rows = 0;
        using (var cursor = fed.GetRowCursor(columns))
        {
            var getters = columns.Select(c => cursor.GetGetter<VBuffer<float>>(c)).ToList();
            var buffer = default(VBuffer<float>);
            while (rows < options.CalibrationRows && cursor.MoveNext())
            {
                var feeds = new List<NamedOnnxValue>();
                for (int i = 0; i < inputs.Count; i++)
                {
                    getters[i](ref buffer);
                    float[] values = buffer.DenseValues().ToArray();
                    // One NaN would make every range it reaches NaN, and the quantized graph garbage, without a word.
                    if (Array.FindIndex(values, v => !float.IsFinite(v)) is var at and >= 0)
                        throw new ArgumentException($"Column '{inputs[i].Name}' has {values[at]} at position {at} of row {rows} in the calibration data; " +
                            "the activations' ranges are measured on finite inputs only.", nameof(calibration));
                    int[] dims = [.. inputs[i].Type.TensorType.Shape.Dim.Select(d => d.DimValue > 0 ? (int)d.DimValue : 1)];
                    feeds.Add(NamedOnnxValue.CreateFromTensor(inputs[i].Name, new DenseTensor<float>(values, dims)));
                }
                using var results = session.Run(feeds, tensors);
                foreach (var result in results)
                {
                    var values = result.AsTensor<float>();
                    var (min, max) = ranges.GetValueOrDefault(result.Name, (float.PositiveInfinity, float.NegativeInfinity));
                    foreach (float v in values)
                        (min, max) = (Math.Min(min, v), Math.Max(max, v));
                    ranges[result.Name] = (min, max);
                }
                rows++;
            }
        }
        if (rows == 0)
            throw new ArgumentException("The calibration data has no rows; quantization measures the activations' ranges on them.", nameof(calibration));

        int quantized = OnnxQuantization.Quantize(model, ranges);
        byte[] bytes = Google.Protobuf.MessageExtensions.ToByteArray(model);
        var (served, onnx) = serve(new OnnxExport(bytes, [.. inputs.Select(i => i.Name)], outputs));
        context.Logger("DeepVariants.Quantization")(
            $"int8: {quantized} nodes quantized, {folded} batch normalisations folded, ranges from {rows} rows; {fitted.OnnxModel.Length:N0} -> {onnx.Length:N0} bytes.");
        return new QuantizationResult(served, onnx, new QuantizationReport(fitted.OnnxModel.Length, onnx.Length, quantized, folded, rows));
    }
}

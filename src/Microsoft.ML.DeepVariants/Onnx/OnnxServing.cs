using Microsoft.ML.Data;

namespace Microsoft.ML.DeepVariants.Onnx;

/// <summary>Serves exported graphs inside ML.NET: the ONNX transformer over the graph's bytes, and the chain of fitted parts.</summary>
internal static class OnnxServing
{
    /// <summary>ML.NET's ONNX transformer over <paramref name="onnx"/>, fitted on <paramref name="schemaSource"/>; the graph's input and output names are the column names.</summary>
    public static ITransformer Apply(ModelContext context, byte[] onnx, string[] inputs, string[] outputs, IDataView schemaSource)
    {
        using var stream = new MemoryStream(onnx, writable: false);
        return context.Transforms.ApplyOnnxModel(outputs, inputs, stream, shapeDictionary: null,
            gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100).Fit(schemaSource);
    }

    /// <summary>The chain of fitted parts, without empty entries.</summary>
    public static TransformerChain<ITransformer> Chain(params ITransformer?[] parts) =>
        new(parts.Where(p => p is not null).Cast<ITransformer>().ToArray());
}

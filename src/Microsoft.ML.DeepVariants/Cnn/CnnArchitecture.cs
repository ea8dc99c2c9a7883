namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>The CNN families a <see cref="CnnNetwork"/> can be built as.</summary>
public enum CnnArchitecture
{
    /// <summary>
    /// LeNet-5 style: <see cref="CnnOptions.Depth"/> blocks of 5x5 convolution, batch normalisation, ReLU and 2x2
    /// max pooling, channels doubling from <see cref="CnnOptions.Width"/>, then a hidden fully connected layer.
    /// </summary>
    LeNet,

    /// <summary>
    /// A small ResNet: a 3x3 stem, then <see cref="CnnOptions.Depth"/> residual blocks (two 3x3 convolutions with
    /// batch normalisation and an identity or 1x1 shortcut), halving the resolution and doubling the channels
    /// after the first, then global average pooling.
    /// </summary>
    ResNet,
}

/// <summary>The input and output layout of an exported ONNX graph.</summary>
public enum OnnxLayout
{
    /// <summary>One row per call, no batch dimension: what ML.NET's ONNX transformer feeds.</summary>
    SingleRow,
    /// <summary>A free batch dimension first: for batched inference with ONNX Runtime.</summary>
    Batch,
}

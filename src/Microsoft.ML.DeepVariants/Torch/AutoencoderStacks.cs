using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// The encoder bodies and decoders that autoencoders share (the denoising one puts one code layer on the body, the
/// variational one two, for the mean and the log-variance). Dense: layers of width, width/2, ... (never below the code
/// size) with ReLU, mirrored by the decoder. Convolutional: stride-2 3 x 3 convolutions from width channels, doubling,
/// then flattened; the decoder expands the code, then stride-2 transposed convolutions back to the image.
/// </summary>
internal static class AutoencoderStacks
{
    private static long Layer(long inputs, long outputs) => inputs * outputs + outputs;

    /// <summary>The dense layers' widths, outermost first.</summary>
    public static long[] DenseSizes(int width, int depth, int codeSize) =>
        Enumerable.Range(0, depth).Select(i => (long)Math.Max(codeSize, width >> i)).ToArray();

    /// <summary>Dense layers from the input to the last width, <c>sizes[^1]</c> outputs.</summary>
    public static Sequential DenseBody(long inputSize, long[] sizes)
    {
        var body = Sequential();
        long previous = inputSize;
        for (int i = 0; i < sizes.Length; i++)
        {
            body.append($"fc{i + 1}", Linear(previous, sizes[i]));
            body.append($"relu{i + 1}", ReLU());
            previous = sizes[i];
        }
        return body;
    }

    /// <summary>Dense layers from the code back to the input's size.</summary>
    public static Sequential DenseDecoder(long codeSize, long[] sizes, long outputSize)
    {
        var decoder = Sequential();
        long previous = codeSize;
        for (int i = sizes.Length - 1; i >= 0; i--)
        {
            decoder.append($"fc{sizes.Length - i}", Linear(previous, sizes[i]));
            decoder.append($"relu{sizes.Length - i}", ReLU());
            previous = sizes[i];
        }
        decoder.append("output", Linear(previous, outputSize));
        return decoder;
    }

    /// <summary>Parameters of <see cref="DenseBody"/> and <see cref="DenseDecoder"/> together (not of the code layers between them).</summary>
    public static long DenseParameters(long inputSize, long[] sizes, long codeSize)
    {
        long count = 0, previous = inputSize;
        foreach (long size in sizes)
            (count, previous) = (count + Layer(previous, size), size);
        previous = codeSize;
        foreach (long size in sizes.Reverse())
            (count, previous) = (count + Layer(previous, size), size);
        return count + Layer(previous, inputSize);
    }

    /// <summary>Strided convolutions from the image, flattened: <c>(width &lt;&lt; (depth - 1)) x (height &gt;&gt; depth) x (width &gt;&gt; depth)</c> outputs.</summary>
    public static Sequential ConvolutionalBody(int channels, int imageHeight, int imageWidth, int depth, int width)
    {
        var body = Sequential();
        body.append("image", Unflatten(1, [channels, imageHeight, imageWidth]));
        for (int i = 0; i < depth; i++)
        {
            body.append($"conv{i + 1}", Conv2d(channels, width << i, 3, stride: 2, padding: 1));
            body.append($"relu{i + 1}", ReLU());
            channels = width << i;
        }
        body.append("flatten", Flatten());
        return body;
    }

    /// <summary>Values <see cref="ConvolutionalBody"/> outputs.</summary>
    public static long ConvolutionalBodyOutputs(int imageHeight, int imageWidth, int depth, int width) =>
        (long)(width << (depth - 1)) * (imageHeight >> depth) * (imageWidth >> depth);

    /// <summary>The code expanded to the innermost feature maps, then transposed convolutions back to the image, flattened.</summary>
    public static Sequential ConvolutionalDecoder(int codeSize, int channels, int imageHeight, int imageWidth, int depth, int width)
    {
        int h = imageHeight >> depth, w = imageWidth >> depth, inner = width << (depth - 1);
        var decoder = Sequential();
        decoder.append("expand", Linear(codeSize, (long)inner * h * w));
        decoder.append("expand_relu", ReLU());
        decoder.append("image", Unflatten(1, [inner, h, w]));
        int current = inner;
        for (int i = depth - 1; i >= 0; i--)
        {
            int next = i == 0 ? channels : width << (i - 1);
            decoder.append($"deconv{depth - i}", ConvTranspose2d(current, next, 3, stride: 2, padding: 1, output_padding: 1));
            if (i > 0)
                decoder.append($"relu{depth - i}", ReLU());
            current = next;
        }
        decoder.append("flatten", Flatten());
        return decoder;
    }

    /// <summary>Parameters of <see cref="ConvolutionalBody"/> and <see cref="ConvolutionalDecoder"/> together (not of the code layers).</summary>
    public static long ConvolutionalParameters(int codeSize, int channels, int imageHeight, int imageWidth, int depth, int width)
    {
        long count = 0, current = channels;
        for (int i = 0; i < depth; i++)
            (count, current) = (count + Layer(current * 9, (long)width << i), (long)width << i);
        count += Layer(codeSize, ConvolutionalBodyOutputs(imageHeight, imageWidth, depth, width));
        for (int i = depth - 1; i >= 0; i--)
        {
            long next = i == 0 ? channels : (long)width << (i - 1);
            (count, current) = (count + current * next * 9 + next, next);
        }
        return count;
    }
}

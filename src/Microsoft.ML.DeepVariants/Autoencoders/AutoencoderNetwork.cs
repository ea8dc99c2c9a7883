using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Autoencoders;

/// <summary>
/// An autoencoder over flat vectors [N, D]: <see cref="Encoder"/> maps them to codes [N, code] and
/// <see cref="Decoder"/> back to [N, D]. With a declared input range the output is squashed into it by a scaled
/// sigmoid, so a denoiser cannot produce values the data never has.
/// </summary>
public sealed class AutoencoderNetwork : Module<Tensor, Tensor>
{
    private readonly Sequential encoder;
    private readonly Sequential decoder;

    private AutoencoderNetwork(Sequential encoder, Sequential decoder, int inputSize, int codeSize) : base(nameof(AutoencoderNetwork))
    {
        this.encoder = encoder;
        this.decoder = decoder;
        InputSize = inputSize;
        CodeSize = codeSize;
        RegisterComponents();
    }

    /// <summary>Length of the input and output vectors.</summary>
    public int InputSize { get; }
    /// <summary>Length of the code.</summary>
    public int CodeSize { get; }
    /// <summary>Inputs to codes.</summary>
    public Sequential Encoder => encoder;
    /// <summary>Codes to reconstructions.</summary>
    public Sequential Decoder => decoder;
    /// <summary>Trainable parameters.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Builds the network the options describe, for inputs of <paramref name="inputSize"/> values.</summary>
    public static AutoencoderNetwork Create(DenoisingAutoencoderOptions options, int inputSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (encoder, decoder) = options.Kind == AutoencoderKind.Dense ? Dense(options, inputSize) : Convolutional(options);
        if (options.HasRange)
            decoder.append("range", new RangeSigmoid(options.InputMinimum!.Value, options.InputMaximum!.Value));
        return new AutoencoderNetwork(encoder, decoder, inputSize, options.CodeSize);
    }

    /// <summary>
    /// Trainable parameters of the network <see cref="Create"/> builds, counted from the options without building it:
    /// the dense layers' weights and biases, or the convolutions', the code layers' and the transposed convolutions'.
    /// </summary>
    public static long CountParameters(DenoisingAutoencoderOptions o, int inputSize)
    {
        static long Layer(long inputs, long outputs) => inputs * outputs + outputs;
        long count = 0;
        if (o.Kind == AutoencoderKind.Dense)
        {
            int width = o.Width ?? 256;
            var sizes = Enumerable.Range(0, o.Depth).Select(i => (long)Math.Max(o.CodeSize, width >> i)).ToArray();
            long previous = inputSize;
            foreach (long size in sizes)
                (count, previous) = (count + Layer(previous, size), size);
            count += Layer(previous, o.CodeSize);
            previous = o.CodeSize;
            foreach (long size in sizes.Reverse())
                (count, previous) = (count + Layer(previous, size), size);
            return count + Layer(previous, inputSize);
        }
        long baseWidth = o.Width ?? 32, inner = baseWidth << (o.Depth - 1), cells = (long)(o.ImageHeight >> o.Depth) * (o.ImageWidth >> o.Depth);
        long channels = o.Channels;
        for (int i = 0; i < o.Depth; i++)
            (count, channels) = (count + Layer(channels * 9, baseWidth << i), baseWidth << i);
        count += Layer(inner * cells, o.CodeSize) + Layer(o.CodeSize, inner * cells);
        channels = inner;
        for (int i = o.Depth - 1; i >= 0; i--)
        {
            long next = i == 0 ? o.Channels : baseWidth << (i - 1);
            (count, channels) = (count + channels * next * 9 + next, next);
        }
        return count;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => decoder.call(encoder.call(input));

    /// <summary>The codes of a batch.</summary>
    public Tensor Encode(Tensor input) => encoder.call(input);

    /// <summary>
    /// Exports one row at a time, as ML.NET feeds it: input <paramref name="inputName"/> [D]; outputs the
    /// reconstruction [D], the code [code] and the mean squared reconstruction error [1].
    /// </summary>
    public byte[] ExportOnnx(string inputName, string reconstructionName, string codeName, string errorName)
    {
        eval();
        using var scope = NewDisposeScope();
        var builder = new OnnxGraphBuilder("DeepVariantsAutoencoder");
        string input = builder.AddInput(inputName, batched: false, InputSize);
        string row = builder.AddNode("Reshape", [input, builder.AddInitializer("row_shape", [1L, InputSize])]);
        var example = rand(2, InputSize, device: parameters().First().device);
        string code = OnnxModuleExporter.Export(builder, encoder, row, example, out var codeExample);
        string reconstruction = OnnxModuleExporter.Export(builder, decoder, code, codeExample);
        string difference = builder.AddNode("Sub", [reconstruction, row]);
        string squared = builder.AddNode("Mul", [difference, difference]);
        string error = builder.AddNode("Reshape", [builder.AddNode("ReduceMean", [squared], OnnxGraphBuilder.Int("keepdims", 0)), builder.AddInitializer("one", [1L])]);
        builder.AddOutput(builder.AddNode("Reshape", [reconstruction, builder.AddInitializer("flat", [(long)InputSize])]), reconstructionName, batched: false, InputSize);
        builder.AddOutput(builder.AddNode("Reshape", [code, builder.AddInitializer("code_shape", [(long)CodeSize])]), codeName, batched: false, CodeSize);
        builder.AddOutput(error, errorName, batched: false, 1);
        return builder.ToBytes();
    }

    private static (Sequential, Sequential) Dense(DenoisingAutoencoderOptions o, int inputSize)
    {
        int width = o.Width ?? 256;
        var sizes = Enumerable.Range(0, o.Depth).Select(i => Math.Max(o.CodeSize, width >> i)).ToArray();
        var encoder = Sequential();
        int previous = inputSize;
        for (int i = 0; i < sizes.Length; i++)
        {
            encoder.append($"fc{i + 1}", Linear(previous, sizes[i]));
            encoder.append($"relu{i + 1}", ReLU());
            previous = sizes[i];
        }
        encoder.append("code", Linear(previous, o.CodeSize));
        var decoder = Sequential();
        previous = o.CodeSize;
        for (int i = sizes.Length - 1; i >= 0; i--)
        {
            decoder.append($"fc{sizes.Length - i}", Linear(previous, sizes[i]));
            decoder.append($"relu{sizes.Length - i}", ReLU());
            previous = sizes[i];
        }
        decoder.append("output", Linear(previous, inputSize));
        return (encoder, decoder);
    }

    private static (Sequential, Sequential) Convolutional(DenoisingAutoencoderOptions o)
    {
        int width = o.Width ?? 32;
        int h = o.ImageHeight >> o.Depth, w = o.ImageWidth >> o.Depth;
        int innerChannels = width << (o.Depth - 1);
        var encoder = Sequential();
        encoder.append("image", Unflatten(1, [o.Channels, o.ImageHeight, o.ImageWidth]));
        int channels = o.Channels;
        for (int i = 0; i < o.Depth; i++)
        {
            int next = width << i;
            encoder.append($"conv{i + 1}", Conv2d(channels, next, 3, stride: 2, padding: 1));
            encoder.append($"relu{i + 1}", ReLU());
            channels = next;
        }
        encoder.append("flatten", Flatten());
        encoder.append("code", Linear((long)innerChannels * h * w, o.CodeSize));

        var decoder = Sequential();
        decoder.append("expand", Linear(o.CodeSize, (long)innerChannels * h * w));
        decoder.append("expand_relu", ReLU());
        decoder.append("image", Unflatten(1, [innerChannels, h, w]));
        channels = innerChannels;
        for (int i = o.Depth - 1; i >= 0; i--)
        {
            int next = i == 0 ? o.Channels : width << (i - 1);
            decoder.append($"deconv{o.Depth - i}", ConvTranspose2d(channels, next, 3, stride: 2, padding: 1, output_padding: 1));
            if (i > 0)
                decoder.append($"relu{o.Depth - i}", ReLU());
            channels = next;
        }
        decoder.append("flatten", Flatten());
        return (encoder, decoder);
    }
}

/// <summary>minimum + (maximum - minimum) x sigmoid(x): squashes outputs into the declared input range.</summary>
internal sealed class RangeSigmoid : Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly float _minimum, _scale;

    public RangeSigmoid(float minimum, float maximum) : base(nameof(RangeSigmoid))
    {
        _minimum = minimum;
        _scale = maximum - minimum;
    }

    public override Tensor forward(Tensor input) => input.sigmoid().Times(_scale).Plus(_minimum);

    public string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example)
    {
        using var scale = tensor(new[] { _scale });
        using var minimum = tensor(new[] { _minimum });
        string sigmoid = builder.AddNode("Sigmoid", [input]);
        return builder.AddNode("Add", [builder.AddNode("Mul", [sigmoid, builder.AddInitializer("range_scale", scale)]), builder.AddInitializer("range_min", minimum)]);
    }
}

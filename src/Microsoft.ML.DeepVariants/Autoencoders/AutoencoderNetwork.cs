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
        if (o.Kind == AutoencoderKind.Dense)
        {
            var sizes = AutoencoderStacks.DenseSizes(o.Width ?? 256, o.Depth, o.CodeSize);
            return AutoencoderStacks.DenseParameters(inputSize, sizes, o.CodeSize) + Layer(sizes[^1], o.CodeSize);
        }
        int width = o.Width ?? 32;
        return AutoencoderStacks.ConvolutionalParameters(o.CodeSize, o.Channels, o.ImageHeight, o.ImageWidth, o.Depth, width)
            + Layer(AutoencoderStacks.ConvolutionalBodyOutputs(o.ImageHeight, o.ImageWidth, o.Depth, width), o.CodeSize);
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
        var sizes = AutoencoderStacks.DenseSizes(o.Width ?? 256, o.Depth, o.CodeSize);
        var encoder = AutoencoderStacks.DenseBody(inputSize, sizes);
        encoder.append("code", Linear(sizes[^1], o.CodeSize));
        return (encoder, AutoencoderStacks.DenseDecoder(o.CodeSize, sizes, inputSize));
    }

    private static (Sequential, Sequential) Convolutional(DenoisingAutoencoderOptions o)
    {
        int width = o.Width ?? 32;
        var encoder = AutoencoderStacks.ConvolutionalBody(o.Channels, o.ImageHeight, o.ImageWidth, o.Depth, width);
        encoder.append("code", Linear(AutoencoderStacks.ConvolutionalBodyOutputs(o.ImageHeight, o.ImageWidth, o.Depth, width), o.CodeSize));
        return (encoder, AutoencoderStacks.ConvolutionalDecoder(o.CodeSize, o.Channels, o.ImageHeight, o.ImageWidth, o.Depth, width));
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

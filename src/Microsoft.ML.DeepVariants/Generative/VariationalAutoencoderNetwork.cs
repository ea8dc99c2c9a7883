using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// A variational autoencoder (Kingma and Welling 2014) over flat vectors [N, D]. The encoder gives the mean μ and the
/// log-variance log σ² of a Gaussian posterior q(z | x) over a latent z of <see cref="LatentSize"/> dimensions; in
/// training z = μ + σ ε with ε ~ N(0, I) (the reparameterization trick), in evaluation z = μ; the decoder maps z to the
/// parameters of p(x | z). The loss is the negative evidence lower bound,
/// <c>-ELBO(x) = -log p(x | z) + β KL(q(z | x) || N(0, I))</c>, with <c>KL = -½ Σ (1 + log σ² - μ² - σ²)</c>.
/// The forward pass returns [decoder output | μ | log σ²] side by side, [N, D + 2 L], so one tensor carries what the
/// loss needs.
/// </summary>
internal sealed class VariationalAutoencoderNetwork : Module<Tensor, Tensor>
{
    private static readonly double GaussianConstant = 0.5 * Math.Log(2 * Math.PI);

    private readonly Sequential body;
    private readonly Linear mean;
    private readonly Linear logVariance;
    private readonly Sequential decoder;

    private VariationalAutoencoderNetwork(Sequential body, Linear mean, Linear logVariance, Sequential decoder, int inputSize, VariationalAutoencoderOptions options)
        : base(nameof(VariationalAutoencoderNetwork))
    {
        (this.body, this.mean, this.logVariance, this.decoder) = (body, mean, logVariance, decoder);
        (InputSize, LatentSize, Beta, Likelihood) = (inputSize, options.LatentSize, options.Beta, options.Likelihood);
        RegisterComponents();
    }

    public int InputSize { get; }
    public int LatentSize { get; }
    public float Beta { get; }
    public ReconstructionLikelihood Likelihood { get; }

    public static VariationalAutoencoderNetwork Create(VariationalAutoencoderOptions o, int inputSize)
    {
        Sequential body, decoder;
        long bodyOutputs;
        if (o.Kind == VariationalAutoencoderKind.Dense)
        {
            var sizes = AutoencoderStacks.DenseSizes(o.Width ?? 256, o.Depth, o.LatentSize);
            (body, bodyOutputs, decoder) = (AutoencoderStacks.DenseBody(inputSize, sizes), sizes[^1], AutoencoderStacks.DenseDecoder(o.LatentSize, sizes, inputSize));
        }
        else
        {
            int width = o.Width ?? 32;
            body = AutoencoderStacks.ConvolutionalBody(o.Channels, o.ImageHeight, o.ImageWidth, o.Depth, width);
            bodyOutputs = AutoencoderStacks.ConvolutionalBodyOutputs(o.ImageHeight, o.ImageWidth, o.Depth, width);
            decoder = AutoencoderStacks.ConvolutionalDecoder(o.LatentSize, o.Channels, o.ImageHeight, o.ImageWidth, o.Depth, width);
        }
        return new VariationalAutoencoderNetwork(body, Linear(bodyOutputs, o.LatentSize), Linear(bodyOutputs, o.LatentSize), decoder, inputSize, o);
    }

    /// <summary>Trainable parameters of the network <see cref="Create"/> builds, by arithmetic.</summary>
    public static long CountParameters(VariationalAutoencoderOptions o, int inputSize)
    {
        static long Layer(long inputs, long outputs) => inputs * outputs + outputs;
        if (o.Kind == VariationalAutoencoderKind.Dense)
        {
            var sizes = AutoencoderStacks.DenseSizes(o.Width ?? 256, o.Depth, o.LatentSize);
            return AutoencoderStacks.DenseParameters(inputSize, sizes, o.LatentSize) + 2 * Layer(sizes[^1], o.LatentSize);
        }
        int width = o.Width ?? 32;
        return AutoencoderStacks.ConvolutionalParameters(o.LatentSize, o.Channels, o.ImageHeight, o.ImageWidth, o.Depth, width)
            + 2 * Layer(AutoencoderStacks.ConvolutionalBodyOutputs(o.ImageHeight, o.ImageWidth, o.Depth, width), o.LatentSize);
    }

    public override Tensor forward(Tensor input)
    {
        var h = body.call(input);
        var mu = mean.call(h);
        var logVar = logVariance.call(h);
        var z = training ? mu.Plus(randn_like(mu).mul(logVar.Times(0.5).exp())) : mu;
        return cat([decoder.call(z), mu, logVar], 1);
    }

    /// <summary>The decoder's output for latents [N, L]: probabilities (Bernoulli) or means (Gaussian).</summary>
    public Tensor Decode(Tensor latent)
    {
        var output = decoder.call(latent);
        return Likelihood == ReconstructionLikelihood.Bernoulli ? output.sigmoid() : output;
    }

    /// <summary>The negative ELBO of each row [N] of <paramref name="x"/>, from the forward pass's <paramref name="output"/>.</summary>
    public static Tensor NegativeElbo(Tensor output, Tensor x, int inputSize, int latentSize, float beta, ReconstructionLikelihood likelihood)
    {
        var decoded = output.narrow(1, 0, inputSize);
        var mu = output.narrow(1, inputSize, latentSize);
        var logVar = output.narrow(1, inputSize + latentSize, latentSize);
        var reconstruction = likelihood == ReconstructionLikelihood.Bernoulli
            ? functional.binary_cross_entropy_with_logits(decoded, x, reduction: Reduction.None).sum(1)
            : decoded.sub(x).square().sum(1).Times(0.5).Plus(GaussianConstant * inputSize);
        var kl = logVar.Plus(1.0).sub(mu.square()).sub(logVar.exp()).sum(1).Times(-0.5);
        return reconstruction.Plus(kl.Times(beta));
    }

    /// <summary>
    /// Exports one row at a time, as ML.NET feeds it: input [D]; outputs μ [L], log σ² [L], the reconstruction decoded
    /// from μ [D] and the negative ELBO at z = μ [1].
    /// </summary>
    public byte[] ExportOnnx(string inputName, string meanName, string logVarianceName, string reconstructionName, string scoreName)
    {
        eval();
        using var scope = NewDisposeScope();
        var b = new OnnxGraphBuilder("DeepVariantsVariationalAutoencoder");
        string input = b.AddInput(inputName, batched: false, InputSize);
        string row = b.AddNode("Reshape", [input, b.AddInitializer("row_shape", [1L, InputSize])]);
        var example = rand(2, InputSize, device: parameters().First().device);
        string hidden = OnnxModuleExporter.Export(b, body, row, example, out var hiddenExample);
        string mu = OnnxModuleExporter.Export(b, mean, hidden, hiddenExample, out var latentExample);
        string logVar = OnnxModuleExporter.Export(b, logVariance, hidden, hiddenExample);
        string decoded = OnnxModuleExporter.Export(b, decoder, mu, latentExample);
        string Scalar(string hint, float value) => b.AddInitializer(hint, tensor(new[] { value }));
        string reconstruction, negativeLogLikelihood;
        if (Likelihood == ReconstructionLikelihood.Bernoulli)
        {
            // The binary cross-entropy on logits in its stable form: max(l, 0) - l x + log(1 + exp(-|l|)).
            reconstruction = b.AddNode("Sigmoid", [decoded]);
            string stable = b.AddNode("Add", [b.AddNode("Sub", [b.AddNode("Relu", [decoded]), b.AddNode("Mul", [decoded, row])]),
                b.AddNode("Softplus", [b.AddNode("Neg", [b.AddNode("Abs", [decoded])])])]);
            negativeLogLikelihood = b.AddNode("ReduceSum", [stable], OnnxGraphBuilder.Int("keepdims", 0));
        }
        else
        {
            reconstruction = decoded;
            string difference = b.AddNode("Sub", [decoded, row]);
            string halfSquares = b.AddNode("Mul", [b.AddNode("ReduceSum", [b.AddNode("Mul", [difference, difference])], OnnxGraphBuilder.Int("keepdims", 0)), Scalar("half", 0.5f)]);
            negativeLogLikelihood = b.AddNode("Add", [halfSquares, Scalar("gaussian_constant", (float)(GaussianConstant * InputSize))]);
        }
        string klTerms = b.AddNode("Sub", [b.AddNode("Sub", [b.AddNode("Add", [logVar, Scalar("one", 1f)]), b.AddNode("Mul", [mu, mu])]), b.AddNode("Exp", [logVar])]);
        string kl = b.AddNode("Mul", [b.AddNode("ReduceSum", [klTerms], OnnxGraphBuilder.Int("keepdims", 0)), Scalar("minus_half", -0.5f)]);
        string score = b.AddNode("Add", [negativeLogLikelihood, b.AddNode("Mul", [kl, Scalar("beta", Beta)])]);
        b.AddOutput(b.AddNode("Reshape", [mu, b.AddInitializer("latent_shape", [(long)LatentSize])]), meanName, batched: false, LatentSize);
        b.AddOutput(b.AddNode("Reshape", [logVar, b.AddInitializer("latent_shape2", [(long)LatentSize])]), logVarianceName, batched: false, LatentSize);
        b.AddOutput(b.AddNode("Reshape", [reconstruction, b.AddInitializer("flat", [(long)InputSize])]), reconstructionName, batched: false, InputSize);
        b.AddOutput(b.AddNode("Reshape", [score, b.AddInitializer("one_value", [1L])]), scoreName, batched: false, 1);
        return b.ToBytes();
    }

    /// <summary>Exports the decoder alone, one row at a time: a latent [L] in, the decoded vector [D] out.</summary>
    public byte[] ExportGenerator(string latentName, string outputName)
    {
        eval();
        using var scope = NewDisposeScope();
        var b = new OnnxGraphBuilder("DeepVariantsGenerator");
        string latent = b.AddInput(latentName, batched: false, LatentSize);
        string row = b.AddNode("Reshape", [latent, b.AddInitializer("row_shape", [1L, LatentSize])]);
        string decoded = OnnxModuleExporter.Export(b, decoder, row, randn(2, LatentSize, device: parameters().First().device));
        if (Likelihood == ReconstructionLikelihood.Bernoulli)
            decoded = b.AddNode("Sigmoid", [decoded]);
        b.AddOutput(b.AddNode("Reshape", [decoded, b.AddInitializer("flat", [(long)InputSize])]), outputName, batched: false, InputSize);
        return b.ToBytes();
    }
}

/// <summary>The negative ELBO, averaged over the batch; no metric.</summary>
internal sealed class VariationalAutoencoderObjective(int inputSize, int latentSize, float beta, ReconstructionLikelihood likelihood) : ITrainingObjective
{
    public Tensor Loss(Tensor output, Tensor target) =>
        VariationalAutoencoderNetwork.NegativeElbo(output, target, inputSize, latentSize, beta, likelihood).mean();

    public double? MetricSum(Tensor output, Tensor target) => null;

    public long CountedRows(Tensor target) => target.shape[0];
}

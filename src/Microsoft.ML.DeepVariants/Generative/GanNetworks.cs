using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// The DCGAN generator (Radford et al. 2016): the latent z [N, L] (with a class embedding e(y) [N, L] beside it when
/// conditional) is projected to <c>Width · 2^(Depth-1)</c> feature maps of (H / 2^Depth) x (W / 2^Depth), then doubled
/// <c>Depth</c> times by 4 x 4 stride-2 transposed convolutions with batch normalisation and ReLU, the last one to the
/// image's channels through tanh: <c>G(z, y) ∈ [-1, 1]^(C·H·W)</c>, flattened channel-major. Images in [0, 1] are
/// <c>(G + 1) / 2</c>.
/// </summary>
internal sealed class DcganGenerator : nn.Module<Tensor, Tensor>
{
    private readonly Embedding? classes;
    private readonly Sequential body;

    public DcganGenerator(GanOptions o, int classCount) : base(nameof(DcganGenerator))
    {
        (LatentSize, ClassCount, OutputSize) = (o.LatentSize, classCount, o.Channels * o.ImageHeight * o.ImageWidth);
        int h = o.ImageHeight >> o.Depth, w = o.ImageWidth >> o.Depth;
        int current = o.Width << (o.Depth - 1);
        if (classCount > 0)
            classes = nn.Embedding(classCount, o.LatentSize);
        body = nn.Sequential();
        body.append("project", nn.Linear(classCount > 0 ? 2 * o.LatentSize : o.LatentSize, (long)current * h * w, hasBias: false));
        body.append("maps", nn.Unflatten(1, [current, h, w]));
        body.append("project_norm", nn.BatchNorm2d(current));
        body.append("project_relu", nn.ReLU());
        for (int i = o.Depth - 1; i >= 0; i--)
        {
            bool last = i == 0;
            int next = last ? o.Channels : o.Width << (i - 1);
            body.append($"up{o.Depth - i}", nn.ConvTranspose2d(current, next, 4, stride: 2, padding: 1, bias: last));
            if (!last)
            {
                body.append($"norm{o.Depth - i}", nn.BatchNorm2d(next));
                body.append($"relu{o.Depth - i}", nn.ReLU());
            }
            current = next;
        }
        body.append("tanh", nn.Tanh());
        body.append("flatten", nn.Flatten());
        RegisterComponents();
        GanInitialization.Apply(this);
    }

    public int LatentSize { get; }
    public int ClassCount { get; }
    public int OutputSize { get; }

    /// <summary>An unconditional generator's images in [-1, 1] for latents [N, L].</summary>
    public override Tensor forward(Tensor latent) => ClassCount == 0
        ? body.call(latent)
        : throw new InvalidOperationException("A conditional generator needs the classes: call Generate(latent, classes).");

    /// <summary>Images in [-1, 1] [N, C·H·W] for latents [N, L] and, when conditional, class indices [N] (int64).</summary>
    public Tensor Generate(Tensor latent, Tensor? classIndices) => classes is null
        ? body.call(latent)
        : body.call(cat([latent, classes.call(classIndices ?? throw new ArgumentNullException(nameof(classIndices)))], 1));

    /// <summary>
    /// The generator as ML.NET feeds it, one row at a time: the latent [L] and, when conditional, the class one-hot [K]
    /// (ML.NET's key-to-vector of the class key; a missing key, all zeros, gets no class embedding); out the image
    /// [C·H·W] in [0, 1]. The class embedding is the one-hot row times the embedding table.
    /// </summary>
    public byte[] ExportOnnx(string latentName, string? classOneHotName, string outputName)
    {
        eval();
        using var scope = NewDisposeScope();
        var device = parameters().First().device;
        var b = new OnnxGraphBuilder("DeepVariantsGanGenerator");
        string latent = b.AddInput(latentName, batched: false, LatentSize);
        string row = b.AddNode("Reshape", [latent, b.AddInitializer("row_shape", [1L, LatentSize])]);
        var example = randn(2, LatentSize, device: device);
        if (classes is not null)
        {
            string oneHot = b.AddInput(classOneHotName!, batched: false, ClassCount);
            string oneHotRow = b.AddNode("Reshape", [oneHot, b.AddInitializer("one_hot_shape", [1L, ClassCount])]);
            string embedded = b.AddNode("MatMul", [oneHotRow, b.AddInitializer("class_embedding", classes.weight!.detach().cpu())]);
            row = b.AddNode("Concat", [row, embedded], OnnxGraphBuilder.Int("axis", 1));
            example = cat([example, classes.call(tensor(new long[] { 0, ClassCount - 1 }, device: device))], 1);
        }
        string image = OnnxModuleExporter.Export(b, body, row, example);
        string unit = b.AddNode("Mul", [b.AddNode("Add", [image, b.AddInitializer("one", tensor(new[] { 1f }))]), b.AddInitializer("half", tensor(new[] { 0.5f }))]);
        b.AddOutput(b.AddNode("Reshape", [unit, b.AddInitializer("flat", [(long)OutputSize])]), outputName, batched: false, OutputSize);
        return b.ToBytes();
    }

    /// <summary>
    /// Re-estimates every batch normalisation's running statistics on <paramref name="batches"/> batches of latents
    /// drawn from the prior (and classes drawn uniformly), so that evaluation mode sees the statistics of these weights:
    /// an averaged generator's weights never produced the statistics training accumulated.
    /// </summary>
    public void EstimateNormalizationStatistics(int batches, int batchSize, Device device)
    {
        using var noGrad = no_grad();
        foreach (var norm in modules().OfType<BatchNorm2d>())
        {
            norm.running_mean!.zero_();
            norm.running_var!.fill_(1);
        }
        train();
        for (int i = 0; i < batches; i++)
        {
            using var scope = NewDisposeScope();
            var z = randn(batchSize, LatentSize, device: device);
            Generate(z, ClassCount == 0 ? null : randint(ClassCount, [batchSize], dtype: int64, device: device));
        }
        eval();
    }
}

/// <summary>
/// The DCGAN discriminator: <c>Depth</c> 4 x 4 stride-2 convolutions from <c>Width</c> channels, doubling, with leaky
/// ReLU (slope 0.2) and batch normalisation after all but the first (or spectral normalisation of every weight instead),
/// then one linear score. Conditional: the projection discriminator (Miyato and Koyama 2018),
/// <c>D(x, y) = ψ(φ(x)) + e(y) · φ(x)</c>, with φ the convolutional features and e a class embedding.
/// </summary>
internal sealed class DcganDiscriminator : nn.Module<Tensor, Tensor>
{
    private readonly Sequential features;
    private readonly nn.Module<Tensor, Tensor> score;
    private readonly Embedding? projection;

    public DcganDiscriminator(GanOptions o, int classCount) : base(nameof(DcganDiscriminator))
    {
        features = nn.Sequential();
        features.append("image", nn.Unflatten(1, [o.Channels, o.ImageHeight, o.ImageWidth]));
        long current = o.Channels;
        for (int i = 0; i < o.Depth; i++)
        {
            long next = (long)o.Width << i;
            features.append($"conv{i + 1}", o.SpectralNormalization
                ? SpectralNormalized.Conv2d(current, next, 4, stride: 2, padding: 1)
                : nn.Conv2d(current, next, 4, stride: 2, padding: 1, bias: i == 0));
            if (i > 0 && !o.SpectralNormalization)
                features.append($"norm{i + 1}", nn.BatchNorm2d(next));
            features.append($"lrelu{i + 1}", nn.LeakyReLU(0.2));
            current = next;
        }
        features.append("flatten", nn.Flatten());
        long featureCount = current * (o.ImageHeight >> o.Depth) * (o.ImageWidth >> o.Depth);
        score = o.SpectralNormalization ? SpectralNormalized.Linear(featureCount, 1) : nn.Linear(featureCount, 1);
        if (classCount > 0)
            projection = nn.Embedding(classCount, featureCount);
        RegisterComponents();
        GanInitialization.Apply(this);
        if (projection is not null)
        {
            using var noGrad = no_grad();
            projection.weight!.zero_();  // a conditional start from the unconditional one; the classes pull it apart
        }
    }

    public override Tensor forward(Tensor images) => Score(images, null);

    /// <summary>Real-versus-generated logits [N] for images in [-1, 1] [N, C·H·W] and, when conditional, class indices [N].</summary>
    public Tensor Score(Tensor images, Tensor? classIndices)
    {
        var phi = features.call(images);
        var logits = score.call(phi).squeeze(1);
        return projection is null ? logits : logits.Plus(projection.call(classIndices!).mul(phi).sum(1));
    }
}

/// <summary>
/// A convolution or linear layer whose weight is divided by its largest singular value σ(W) (Miyato et al. 2018),
/// estimated by one step of power iteration per training call on a persistent vector u:
/// <c>v = Wᵀu / |Wᵀu|, u = Wv / |Wv|, σ = uᵀWv</c>. It keeps the discriminator 1-Lipschitz per layer.
/// </summary>
internal sealed class SpectralNormalized : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;
    private readonly Tensor u;
    private readonly long[]? stride;
    private readonly long[]? padding;

    private SpectralNormalized(Tensor initialWeight, Tensor? initialBias, long[]? stride, long[]? padding) : base(nameof(SpectralNormalized))
    {
        weight = new Parameter(initialWeight.detach().clone());
        bias = initialBias is null ? null : new Parameter(initialBias.detach().clone());
        (this.stride, this.padding) = (stride, padding);
        u = nn.functional.normalize(randn(initialWeight.shape[0]), dim: 0);
        RegisterComponents();  // registers u as a buffer: it saves and restores with the weights
    }

    public static SpectralNormalized Conv2d(long inputs, long outputs, long kernel, long stride, long padding)
    {
        using var layer = nn.Conv2d(inputs, outputs, kernel, stride: stride, padding: padding);
        return new SpectralNormalized(layer.weight!, layer.bias, [stride, stride], [padding, padding]);
    }

    public static SpectralNormalized Linear(long inputs, long outputs)
    {
        using var layer = nn.Linear(inputs, outputs);
        return new SpectralNormalized(layer.weight, layer.bias, null, null);
    }

    /// <summary>The weight divided by its estimated largest singular value.</summary>
    public Tensor NormalizedWeight()
    {
        var matrix = weight.view(weight.shape[0], -1);
        Tensor v;
        using (no_grad())
        {
            v = nn.functional.normalize(matrix.t().mv(u), dim: 0);
            if (training)
            {
                u.copy_(nn.functional.normalize(matrix.mv(v), dim: 0));
                v = nn.functional.normalize(matrix.t().mv(u), dim: 0);
            }
        }
        // u changes in place at the next call (the discriminator scores real and generated images in turn), so the
        // graph keeps a copy, as PyTorch's spectral_norm does.
        Tensor uNow;
        using (no_grad())
            uNow = u.clone();
        var sigma = uNow.dot(matrix.mv(v));
        return weight.div(sigma);
    }

    public override Tensor forward(Tensor input) => stride is null
        ? nn.functional.linear(input, NormalizedWeight(), bias)
        : nn.functional.conv2d(input, NormalizedWeight(), bias, stride, padding!);
}

/// <summary>The DCGAN paper's initialization: convolution and linear weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases 0.</summary>
internal static class GanInitialization
{
    public static void Apply(nn.Module network)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in network.named_parameters())
        {
            bool isNorm = name.Contains("norm", StringComparison.Ordinal);
            if (name.EndsWith("bias", StringComparison.Ordinal))
                parameter.zero_();
            else if (isNorm)
                nn.init.normal_(parameter, 1.0, 0.02);
            else if (parameter.dim() > 1)
                nn.init.normal_(parameter, 0.0, 0.02);
        }
    }
}

/// <summary>
/// The two networks of one GAN fit, and the moving average of the generator's weights when asked for: one module, so
/// one fit's weights save and restore together. <see cref="Served"/> is the generator the model serves.
/// </summary>
internal sealed class GanNetworks : nn.Module<Tensor, Tensor>
{
    private readonly DcganGenerator generator;
    private readonly DcganDiscriminator discriminator;
    private readonly DcganGenerator? average;

    public GanNetworks(GanOptions options, int classCount) : base(nameof(GanNetworks))
    {
        generator = new DcganGenerator(options, classCount);
        discriminator = new DcganDiscriminator(options, classCount);
        if (options.GeneratorAverageDecay > 0)
        {
            average = new DcganGenerator(options, classCount);
            using var noGrad = no_grad();
            foreach (var ((_, target), (_, source)) in average.named_parameters().Zip(generator.named_parameters()))
            {
                target.copy_(source);
                target.requires_grad = false;
            }
        }
        RegisterComponents();
    }

    public DcganGenerator Generator => generator;
    public DcganDiscriminator Discriminator => discriminator;

    /// <summary>The generator the model serves: the moving average when there is one.</summary>
    public DcganGenerator Served => average ?? generator;

    /// <summary>Moves the average toward the generator: <c>a ← decay · a + (1 - decay) · g</c>.</summary>
    public void UpdateAverage(double decay)
    {
        if (average is null)
            return;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var ((_, target), (_, source)) in average.named_parameters().Zip(generator.named_parameters()))
            target.mul_(Scalars.Of(decay)).add_(source, Scalars.Of(1 - decay));
    }

    public override Tensor forward(Tensor latent) => Served.call(latent);
}

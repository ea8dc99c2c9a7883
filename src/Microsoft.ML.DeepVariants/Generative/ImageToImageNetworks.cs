using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Generative;

/// <summary>
/// The PatchGAN discriminator of pix2pix (Isola et al. 2017): the source and a target (real or translated), stacked as
/// channels, through <c>depth</c> 4 x 4 stride-2 convolutions (leaky ReLU 0.2, batch normalisation after all but the
/// first) and a 3 x 3 convolution to one logit per patch: it judges local texture, and the L1 loss keeps the layout.
/// </summary>
internal sealed class PatchDiscriminator : nn.Module<Tensor, Tensor>
{
    private readonly Sequential layers;
    private readonly long[] sourceShape;
    private readonly long[] targetShape;

    public PatchDiscriminator(ImageToImageOptions o) : base(nameof(PatchDiscriminator))
    {
        (sourceShape, targetShape) = ([o.SourceChannels, o.ImageHeight, o.ImageWidth], [o.TargetChannels, o.ImageHeight, o.ImageWidth]);
        layers = nn.Sequential();
        long previous = o.SourceChannels + o.TargetChannels;
        for (int i = 0; i < o.DiscriminatorDepth; i++)
        {
            long next = (long)o.Width << Math.Min(i, 3);
            layers.append($"conv{i + 1}", nn.Conv2d(previous, next, 4, stride: 2, padding: 1, bias: i == 0));
            if (i > 0)
                layers.append($"norm{i + 1}", nn.BatchNorm2d(next));
            layers.append($"lrelu{i + 1}", nn.LeakyReLU(0.2));
            previous = next;
        }
        layers.append("patches", nn.Conv2d(previous, 1, 3, padding: 1));
        RegisterComponents();
        GanInitialization.Apply(this);
    }

    public override Tensor forward(Tensor pair) => layers.call(pair);

    /// <summary>Patch logits [N, 1, h, w] for flat sources [N, C_s·H·W] and targets [N, C_t·H·W].</summary>
    public Tensor Score(Tensor source, Tensor target) =>
        layers.call(cat([source.reshape([source.shape[0], .. sourceShape]), target.reshape([target.shape[0], .. targetShape])], 1));
}

/// <summary>The U-Net generator and, unless the L1 loss trains alone, the PatchGAN discriminator of one fit.</summary>
internal sealed class ImageToImageNetworks : nn.Module<Tensor, Tensor>
{
    private readonly UNet generator;
    private readonly PatchDiscriminator? discriminator;

    public ImageToImageNetworks(ImageToImageOptions o) : base(nameof(ImageToImageNetworks))
    {
        generator = new UNet(o.SourceChannels, o.TargetChannels, o.ImageHeight, o.ImageWidth, o.Depth, o.Width);
        GanInitialization.Apply(generator);
        if (o.AdversarialWeight > 0)
            discriminator = new PatchDiscriminator(o);
        RegisterComponents();
    }

    public UNet Generator => generator;
    public PatchDiscriminator? Discriminator => discriminator;

    public override Tensor forward(Tensor source) => generator.call(source);
}

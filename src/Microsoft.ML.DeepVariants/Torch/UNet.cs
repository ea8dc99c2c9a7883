using Microsoft.ML.DeepVariants.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// A U-Net (Ronneberger et al. 2015) as pix2pix uses it (Isola et al. 2017), over flat channel-major images
/// [N, C_in·H·W] → [N, C_out·H·W]. The encoder halves the image <c>depth</c> times with 4 x 4 stride-2 convolutions
/// (leaky ReLU 0.2; batch normalisation after all but the first), from <c>width</c> channels, doubling up to 8 x width;
/// the decoder doubles it back with 4 x 4 stride-2 transposed convolutions (batch normalisation, ReLU), each level's
/// input the previous level's output concatenated with the encoder's map of the same size: the skip connections that
/// carry the input's detail past the bottleneck. The last transposed convolution writes the output channels through a
/// sigmoid, so outputs are in [0, 1].
/// </summary>
internal sealed class UNet : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly ModuleList<Sequential> down;
    private readonly ModuleList<Sequential> up;
    private readonly long[] inputShape;

    public UNet(int inputChannels, int outputChannels, int height, int width, int depth, int channels) : base(nameof(UNet))
    {
        inputShape = [inputChannels, height, width];
        down = new ModuleList<Sequential>();
        up = new ModuleList<Sequential>();
        var sizes = Sizes(depth, channels);
        long previous = inputChannels;
        for (int i = 0; i < depth; i++)
        {
            var block = nn.Sequential(("conv", nn.Conv2d(previous, sizes[i], 4, stride: 2, padding: 1, bias: i == 0)));
            if (i > 0)
                block.append("norm", nn.BatchNorm2d(sizes[i]));
            block.append("lrelu", nn.LeakyReLU(0.2));
            down.append(block);
            previous = sizes[i];
        }
        // Up level j turns the map of down level depth-1-j back to the size of level depth-2-j (the image, for the last).
        for (int j = 0; j < depth; j++)
        {
            int level = depth - 1 - j;
            long inputs = j == 0 ? sizes[level] : 2 * sizes[level];
            bool last = level == 0;
            long outputs = last ? outputChannels : sizes[level - 1];
            var block = nn.Sequential(("deconv", nn.ConvTranspose2d(inputs, outputs, 4, stride: 2, padding: 1, bias: last)));
            if (!last)
            {
                block.append("norm", nn.BatchNorm2d(outputs));
                block.append("relu", nn.ReLU());
            }
            else
                block.append("sigmoid", nn.Sigmoid());
            up.append(block);
        }
        RegisterComponents();
    }

    /// <summary>Channels of each encoder level: width, doubling, at most 8 x width.</summary>
    public static long[] Sizes(int depth, int width) => Enumerable.Range(0, depth).Select(i => (long)width << Math.Min(i, 3)).ToArray();

    public override Tensor forward(Tensor input)
    {
        var x = input.reshape([input.shape[0], .. inputShape]);
        var skips = new List<Tensor>();
        foreach (var block in down)
        {
            x = block.call(x);
            skips.Add(x);
        }
        for (int j = 0; j < up.Count; j++)
        {
            if (j > 0)
                x = cat([x, skips[up.Count - 1 - j]], 1);
            x = up[j].call(x);
        }
        return x.flatten(1);
    }

    public string ExportOnnx(OnnxGraphBuilder builder, string input, Tensor example)
    {
        using var scope = NewDisposeScope();
        string x = builder.AddNode("Reshape", [input, builder.AddInitializer("unet_image", [-1L, .. inputShape])]);
        var value = example.reshape([example.shape[0], .. inputShape]);
        var skips = new List<(string Name, Tensor Value)>();
        foreach (var block in down)
        {
            x = OnnxModuleExporter.Export(builder, block, x, value, out value);
            skips.Add((x, value));
        }
        for (int j = 0; j < up.Count; j++)
        {
            if (j > 0)
            {
                var skip = skips[up.Count - 1 - j];
                x = builder.AddNode("Concat", [x, skip.Name], OnnxGraphBuilder.Int("axis", 1));
                value = cat([value, skip.Value], 1);
            }
            x = OnnxModuleExporter.Export(builder, up[j], x, value, out value);
        }
        return builder.AddNode("Flatten", [x], OnnxGraphBuilder.Int("axis", 1));
    }
}

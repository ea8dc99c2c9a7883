using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// ResNet (He et al. 2016): a 3x3 stem, then <see cref="CnnArchitecture.Depth"/> residual blocks spread over up
/// to three stages; each later stage starts with a stride-2 block that doubles the channels.
/// </summary>
internal static class ResNet
{
    public static CnnParts Build(CnnArchitecture a, int channels, Device? device)
    {
        var convolutions = Sequential(("stem", Blocks.ConvBnRelu(channels, a.Width, 3, device: device)));
        int stages = Math.Min(3, a.Depth), inChannels = a.Width, block = 0;
        for (int stage = 0; stage < stages; stage++)
        {
            // Spread the blocks evenly, the first stages taking the remainder.
            int blocks = a.Depth / stages + (stage < a.Depth % stages ? 1 : 0);
            int outChannels = a.Width << stage;
            for (int i = 0; i < blocks; i++)
            {
                int stride = stage > 0 && i == 0 ? 2 : 1;
                convolutions.append($"block{++block}", new ResidualBlock($"block{block}", inChannels, outChannels, stride, a.Bottleneck, a.EffectiveKernelSize, device));
                inChannels = outChannels;
            }
        }
        return new CnnParts(convolutions, CnnParts.GlobalAveragePooling(), inChannels);
    }
}

using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// DenseNet (Huang et al. 2017): a stem of 2 x growth channels, then <see cref="CnnArchitecture.Depth"/> dense
/// blocks of <see cref="CnnArchitecture.LayersPerBlock"/> layers, each adding <see cref="CnnArchitecture.GrowthRate"/>
/// channels; between blocks a transition (batch norm, ReLU, 1x1 convolution halving the channels, 2x2 average pooling).
/// </summary>
internal static class DenseNet
{
    public static CnnParts Build(CnnArchitecture a, int channels, int height, int width, Device? device)
    {
        int inChannels = 2 * a.GrowthRate, h = height, w = width;
        var convolutions = Sequential(("stem", Blocks.ConvBnRelu(channels, inChannels, 3, device: device)));
        for (int block = 0; block < a.Depth; block++)
        {
            for (int layer = 0; layer < a.LayersPerBlock; layer++)
            {
                convolutions.append($"dense{block + 1}_{layer + 1}", new DenseLayer($"dense{block + 1}_{layer + 1}", inChannels, a.GrowthRate, a.EffectiveKernelSize, device));
                inChannels += a.GrowthRate;
            }
            if (block < a.Depth - 1)
            {
                int outChannels = Math.Max(a.GrowthRate, inChannels / 2);
                var transition = Sequential(("bn", BatchNorm2d(inChannels, device: device)), ("relu", ReLU()), ("conv", Conv2d(inChannels, outChannels, 1, bias: false, device: device)));
                if (h >= 4 && w >= 4)
                {
                    transition.append("pool", AvgPool2d(2));
                    (h, w) = (h / 2, w / 2);
                }
                convolutions.append($"transition{block + 1}", transition);
                inChannels = outChannels;
            }
        }
        convolutions.append("final_bn", BatchNorm2d(inChannels, device: device));
        convolutions.append("final_relu", ReLU());
        return new CnnParts(convolutions, CnnParts.GlobalAveragePooling(), inChannels);
    }
}

using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>VGG style (Simonyan and Zisserman 2015): blocks of small convolutions with batch norm, then 2x2 max pooling; global average pooling at the end.</summary>
internal static class Vgg
{
    public static CnnParts Build(CnnArchitecture a, int channels, int height, int width, Device? device)
    {
        var convolutions = Sequential();
        int inChannels = channels, h = height, w = width;
        for (int block = 0; block < a.Depth; block++)
        {
            int outChannels = a.Width << block;
            for (int layer = 0; layer < a.LayersPerBlock; layer++)
            {
                convolutions.append($"block{block + 1}_conv{layer + 1}", Blocks.ConvBnRelu(inChannels, outChannels, a.EffectiveKernelSize, device: device));
                inChannels = outChannels;
            }
            if (h >= 4 && w >= 4 && block < a.Depth - 1)
            {
                convolutions.append($"pool{block + 1}", MaxPool2d(2));
                (h, w) = (h / 2, w / 2);
            }
        }
        return new CnnParts(convolutions, CnnParts.GlobalAveragePooling(), inChannels);
    }
}

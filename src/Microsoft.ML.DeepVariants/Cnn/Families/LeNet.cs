using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>LeNet-5 style (LeCun et al. 1998): convolution, batch norm, ReLU and 2x2 max pooling per block, channels doubling; then a hidden fully connected layer.</summary>
internal static class LeNet
{
    public static CnnParts Build(CnnArchitecture a, int channels, int height, int width, Device? device)
    {
        var convolutions = Sequential();
        int inChannels = channels, h = height, w = width, k = a.EffectiveKernelSize;
        for (int block = 0; block < a.Depth; block++)
        {
            int outChannels = a.Width << block;
            convolutions.append($"block{block + 1}", Blocks.ConvBnRelu(inChannels, outChannels, k, device: device));
            if (h >= 2 && w >= 2 && block < a.Depth - 1)
            {
                convolutions.append($"pool{block + 1}", MaxPool2d(2));
                (h, w) = (h / 2, w / 2);
            }
            inChannels = outChannels;
        }
        // The last pooling belongs to the head, so that Grad-CAM sees the last convolution at the finest grid.
        var pooling = Sequential();
        if (h >= 2 && w >= 2)
        {
            pooling.append("pool", MaxPool2d(2));
            (h, w) = (h / 2, w / 2);
        }
        pooling.append("flatten", Flatten());
        pooling.append("fc", Linear((long)inChannels * h * w, a.HiddenSize, device: device));
        pooling.append("fc_relu", ReLU());
        return new CnnParts(convolutions, pooling, a.HiddenSize);
    }
}

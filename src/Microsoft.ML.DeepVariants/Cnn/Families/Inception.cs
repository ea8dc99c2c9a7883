using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// GoogLeNet/Inception (Szegedy et al. 2015): a stem convolution, then <see cref="CnnArchitecture.Depth"/> Inception
/// modules; 2x2 max pooling after every second module, and the branch width doubling there.
/// </summary>
internal static class Inception
{
    public static CnnParts Build(CnnArchitecture a, int channels, int height, int width, Device? device)
    {
        var convolutions = Sequential(("stem", Blocks.ConvBnRelu(channels, a.Width, 3, device: device)));
        int inChannels = a.Width, h = height, w = width;
        for (int module = 0; module < a.Depth; module++)
        {
            var inception = new InceptionModule($"inception{module + 1}", inChannels, a.Width << (module / 2), device);
            convolutions.append($"inception{module + 1}", inception);
            inChannels = inception.OutChannels;
            if (module % 2 == 0 && module < a.Depth - 1 && h >= 4 && w >= 4)
            {
                convolutions.append($"pool{module + 1}", MaxPool2d(2));
                (h, w) = (h / 2, w / 2);
            }
        }
        return new CnnParts(convolutions, CnnParts.GlobalAveragePooling(), inChannels);
    }
}

using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Autoencoders;

/// <summary>
/// The corruption models of a denoising autoencoder (Vincent et al. 2008), applied to whole training batches on
/// the device: additive Gaussian noise (clipped to the declared range), salt and pepper, and masking.
/// </summary>
internal static class Corruption
{
    public static bool Any(DenoisingAutoencoderOptions o) =>
        o.NoiseStandardDeviation > 0 || o.SaltAndPepperProbability > 0 || o.MaskingProbability > 0;

    // Every number goes through Scalars (never a temporary Scalar): this runs on every training batch.
    public static Tensor Apply(Tensor x, DenoisingAutoencoderOptions o)
    {
        if (o.NoiseStandardDeviation > 0)
        {
            x = x.Plus(randn_like(x).Times(o.NoiseStandardDeviation));
            if (o.HasRange)
                x = x.clamp(Scalars.Of(o.InputMinimum!.Value), Scalars.Of(o.InputMaximum!.Value));
        }
        if (o.SaltAndPepperProbability > 0)
        {
            var hit = rand_like(x).lt(Scalars.Of(o.SaltAndPepperProbability));
            var salt = where(rand_like(x).lt(Scalars.Of(0.5)), full_like(x, Scalars.Of(o.InputMaximum!.Value)), full_like(x, Scalars.Of(o.InputMinimum!.Value)));
            x = where(hit, salt, x);
        }
        if (o.MaskingProbability > 0)
            x = x * rand_like(x).ge(Scalars.Of(o.MaskingProbability)).to_type(x.dtype);
        return x;
    }
}

using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>
/// Magnitude pruning (Han et al. 2015) of a module's convolution and linear weights: the smallest weights by absolute
/// value are set to zero, exactly the requested count per threshold group, and their masks keep them at zero while
/// the module trains further.
/// </summary>
internal sealed class MagnitudePruning : IDisposable
{
    private readonly List<(string Name, Parameter Weight, Tensor Mask)> _layers;

    private MagnitudePruning(List<(string, Parameter, Tensor)> layers) => _layers = layers;

    /// <summary>Prunes <paramref name="module"/> in place as <paramref name="options"/> say.</summary>
    public static MagnitudePruning Apply(nn.Module module, PruningOptions options)
    {
        var weights = module.named_modules()
            .Where(m => m.module is Conv2d or ConvTranspose2d or Linear)
            .Select(m => (Name: m.name + ".weight", Weight: m.module.named_parameters().First(p => p.name == "weight").parameter))
            .ToList();
        if (weights.Count == 0)
            throw new ArgumentException("The model has no convolution or linear weights to prune.", nameof(module));
        var unknown = options.LayerSparsity.Keys.Except(weights.Select(w => w.Name)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException(
                $"LayerSparsity names {string.Join(", ", unknown.Select(u => $"'{u}'"))}, which the model does not have; its layers are {string.Join(", ", weights.Select(w => w.Name))}.",
                nameof(options));

        var masks = new Tensor[weights.Count];
        if (options.Scope == PruningScope.Global)
        {
            var groupMasks = SmallestMasked(weights.Select(w => w.Weight).ToList(), options.Sparsity);
            groupMasks.CopyTo(masks, 0);
        }
        else
        {
            for (int i = 0; i < weights.Count; i++)
                masks[i] = SmallestMasked([weights[i].Weight], options.LayerSparsity.GetValueOrDefault(weights[i].Name, options.Sparsity))[0];
        }
        var pruning = new MagnitudePruning(weights.Select((w, i) => (w.Name, w.Weight, masks[i])).ToList());
        pruning.Reapply();
        return pruning;
    }

    /// <summary>Sets the pruned weights back to zero (after an optimizer step moved them).</summary>
    public void Reapply()
    {
        using var noGrad = no_grad();
        foreach (var (_, weight, mask) in _layers)
            weight.mul_(mask);
    }

    /// <summary>Zero and total weights per pruned layer, as they are now.</summary>
    public IReadOnlyList<LayerSparsity> Sparsity() =>
        _layers.Select(l => new LayerSparsity(l.Name, l.Weight.numel(), l.Weight.eq(0).sum().item<long>())).ToList();

    public void Dispose()
    {
        foreach (var (_, _, mask) in _layers)
            mask.Dispose();
    }

    // Masks (1 keep, 0 prune) that zero exactly floor(share * total) of the weights with the smallest magnitudes.
    private static Tensor[] SmallestMasked(List<Parameter> weights, double share)
    {
        using var scope = NewDisposeScope();
        var magnitudes = cat(weights.Select(w => w.detach().abs().flatten().cpu()).ToArray());
        long pruned = (long)Math.Floor(share * magnitudes.numel());
        var keep = ones_like(magnitudes);
        if (pruned > 0)
            keep.index_fill_(0, magnitudes.argsort().narrow(0, 0, pruned), 0);
        var masks = new Tensor[weights.Count];
        long offset = 0;
        for (int i = 0; i < weights.Count; i++)
        {
            masks[i] = keep.narrow(0, offset, weights[i].numel()).reshape(weights[i].shape).to(weights[i].device).clone().MoveToOuterDisposeScope();
            offset += weights[i].numel();
        }
        return masks;
    }
}

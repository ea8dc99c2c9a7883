using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// A network made of <see cref="Sequential"/> parts that can be built again with some of its layers replaced (a
/// factorized or a thinner layer). TorchSharp's containers cannot swap a child in place, so the rewrite builds new
/// containers around the same child modules.
/// </summary>
internal interface IRebuildableNetwork
{
    /// <summary>The network's parts in forward order, by the names <c>named_modules()</c> gives them.</summary>
    IReadOnlyList<(string Name, Sequential Part)> Parts { get; }

    /// <summary>The same network with <paramref name="parts"/> (in the order of <see cref="Parts"/>) in place of its own.</summary>
    nn.Module<Tensor, Tensor> WithParts(IReadOnlyList<Sequential> parts);
}

/// <summary>
/// Reading and rewriting the layers of an <see cref="IRebuildableNetwork"/>: its leaves in forward order (through
/// nested containers), and a copy with chosen leaves replaced. Modules that are neither containers nor leaves (a
/// residual block) are kept whole: their inner layers are not reached.
/// </summary>
internal static class ModuleRewrite
{
    /// <summary>A leaf layer or a composite block, its full name, and whether it is a composite block.</summary>
    public readonly record struct Layer(string Name, nn.Module Module, bool IsBlock);

    /// <summary>Every layer outside composite blocks, in forward order; composite blocks appear as one entry.</summary>
    public static List<Layer> Layers(IRebuildableNetwork network)
    {
        var layers = new List<Layer>();
        foreach (var (name, part) in network.Parts)
            Collect(part, name, layers);
        return layers;
    }

    private static void Collect(Sequential sequential, string prefix, List<Layer> layers)
    {
        foreach (var (name, child) in sequential.named_children())
        {
            string full = $"{prefix}.{name}";
            if (child is Sequential inner)
                Collect(inner, full, layers);
            else
                layers.Add(new Layer(full, child, IsBlock: child.children().Any()));
        }
    }

    /// <summary>
    /// A new network in which each layer that <paramref name="replace"/> maps (by full name) is replaced; the other
    /// modules are shared with <paramref name="network"/>, which must not be used or disposed afterwards.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Replace(IRebuildableNetwork network, IReadOnlyDictionary<string, nn.Module> replace) =>
        network.WithParts(network.Parts.Select(p => Rebuild(p.Part, p.Name, replace)).ToList());

    private static Sequential Rebuild(Sequential sequential, string prefix, IReadOnlyDictionary<string, nn.Module> replace)
    {
        var rebuilt = nn.Sequential();
        foreach (var (name, child) in sequential.named_children())
        {
            string full = $"{prefix}.{name}";
            var module = child is Sequential inner ? Rebuild(inner, full, replace) : replace.GetValueOrDefault(full, child);
            rebuilt.append(name, (nn.IModule<Tensor, Tensor>)module);
        }
        return rebuilt;
    }

    /// <summary>A 2-D layer's sizes as the pair TorchSharp's constructors take (its modules keep one value when both axes agree).</summary>
    public static (long, long) Pair(long[] values) => values.Length == 1 ? (values[0], values[0]) : (values[0], values[1]);
}

using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Pruning;

/// <summary>
/// Structured pruning of a chain of convolutions: a convolution keeps its most important filters (by L1 norm or by its
/// batch norm's |γ|), its batch norm keeps the same channels, and the next convolution or dense layer keeps only the
/// inputs that read them (a dense layer after a flatten reads each channel's h·w positions). The layers are built
/// again at their new sizes, so the network, its multiply-adds and its exported graph shrink.
/// </summary>
internal static class ChannelPruning
{
    /// <summary>A prunable convolution: its batch norm (when one follows) and the layer that reads its channels.</summary>
    public sealed record Link(string Name, Conv2d Convolution, (string Name, BatchNorm2d Norm)? Norm, string ConsumerName, nn.Module Consumer);

    // Layers a channel passes through unchanged on its way to the next convolution or dense layer.
    private static bool PassesChannels(nn.Module m) => m is ReLU or Sigmoid or MaxPool2d or AvgPool2d or AdaptiveAvgPool2d or Dropout or Identity or Flatten;

    /// <summary>The network's prunable convolutions, in forward order.</summary>
    public static List<Link> Links(IRebuildableNetwork network)
    {
        var layers = ModuleRewrite.Layers(network);
        if (layers.FirstOrDefault(l => l.IsBlock) is { Module: not null } block)
            throw new NotSupportedException(
                $"Channel pruning works on chains of convolutions (LeNet, VGG); this network has a {block.Module.GetType().Name} at '{block.Name}', " +
                "whose residual addition or concatenation ties channel counts together.");
        var links = new List<Link>();
        for (int i = 0; i < layers.Count; i++)
        {
            if (layers[i].Module is not Conv2d { groups: 1 } conv)
                continue;
            (string, BatchNorm2d)? norm = null;
            for (int j = i + 1; j < layers.Count; j++)
            {
                var next = layers[j].Module;
                if (next is BatchNorm2d bn && norm is null)
                    norm = (layers[j].Name, bn);
                else if (next is Conv2d { groups: 1 } or Linear)
                {
                    links.Add(new Link(layers[i].Name, conv, norm, layers[j].Name, next));
                    break;
                }
                else if (!PassesChannels(next))
                    break;
            }
        }
        return links;
    }

    /// <summary>The filters each convolution keeps (ascending), by the options; checks the layer names first.</summary>
    public static Dictionary<string, long[]> Keep(List<Link> links, ChannelPruningOptions options)
    {
        var names = links.Select(l => l.Name).ToHashSet();
        var unknown = options.LayerRatios.Keys.Where(n => !names.Contains(n)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException(
                $"LayerRatios names {string.Join(", ", unknown.Select(u => $"'{u}'"))}, which the network does not have as a prunable convolution; " +
                $"its prunable convolutions are {string.Join(", ", names)}.", nameof(ChannelPruningOptions.LayerRatios));
        var keep = new Dictionary<string, long[]>();
        foreach (var link in links)
        {
            long filters = link.Convolution.out_channels;
            long removed = (long)Math.Floor(options.LayerRatios.GetValueOrDefault(link.Name, options.Ratio) * filters);
            using var scope = NewDisposeScope();
            Tensor importance = options.Importance switch
            {
                ChannelImportance.BatchNormScale => link.Norm?.Norm.weight?.detach().abs() ?? throw new ArgumentException(
                    $"Importance = BatchNormScale needs a batch norm after each pruned convolution; '{link.Name}' has none. Use L1Norm.", nameof(ChannelPruningOptions.Importance)),
                _ => link.Convolution.weight!.detach().abs().flatten(1).sum(1),
            };
            var kept = importance.cpu().argsort(descending: true).narrow(0, 0, filters - removed).sort().Values;
            keep[link.Name] = kept.data<long>().ToArray();
        }
        return keep;
    }

    /// <summary>The thinner layers: each pruned convolution, its batch norm, and the layer that reads it.</summary>
    public static Dictionary<string, nn.Module> Replacements(List<Link> links, Dictionary<string, long[]> keep)
    {
        using var noGrad = no_grad();
        // What each convolution reads: the filters its producer kept (null when the producer was not pruned).
        var inputs = links.ToDictionary(l => l.ConsumerName, l => keep[l.Name]);
        var replace = new Dictionary<string, nn.Module>();
        foreach (var link in links)
        {
            var conv = link.Convolution;
            replace[link.Name] = Thinner(conv, keep[link.Name], inputs.GetValueOrDefault(link.Name));
            if (link.Norm is { } norm)
                replace[norm.Name] = Thinner(norm.Norm, keep[link.Name]);
            if (link.Consumer is Linear linear)
                replace[link.ConsumerName] = Thinner(linear, keep[link.Name], conv.out_channels);
            else if (!links.Any(l => l.Name == link.ConsumerName))
                replace[link.ConsumerName] = Thinner((Conv2d)link.Consumer, null, keep[link.Name]);
        }
        return replace;
    }

    private static Conv2d Thinner(Conv2d conv, long[]? outputs, long[]? inputs)
    {
        using var scope = NewDisposeScope();
        var weight = conv.weight!.detach();
        if (outputs is not null)
            weight = weight.index_select(0, tensor(outputs, device: weight.device));
        if (inputs is not null)
            weight = weight.index_select(1, tensor(inputs, device: weight.device));
        var thin = nn.Conv2d(weight.shape[1], weight.shape[0], ModuleRewrite.Pair(conv.kernel_size), stride: ModuleRewrite.Pair(conv.stride), padding: ModuleRewrite.Pair(conv.padding ?? [0, 0]), bias: conv.bias is not null, device: weight.device);
        thin.weight!.copy_(weight);
        if (conv.bias is not null)
            thin.bias!.copy_(outputs is null ? conv.bias : conv.bias.index_select(0, tensor(outputs, device: weight.device)));
        return thin;
    }

    private static BatchNorm2d Thinner(BatchNorm2d norm, long[] channels)
    {
        using var scope = NewDisposeScope();
        var device = norm.running_mean!.device;
        var index = tensor(channels, device: device);
        var thin = nn.BatchNorm2d(channels.Length, eps: norm.eps, momentum: norm.momentum ?? 0.1, affine: norm.weight is not null, device: device);
        if (norm.weight is not null)
        {
            thin.weight!.copy_(norm.weight.index_select(0, index));
            thin.bias!.copy_(norm.bias!.index_select(0, index));
        }
        thin.running_mean!.copy_(norm.running_mean.index_select(0, index));
        thin.running_var!.copy_(norm.running_var!.index_select(0, index));
        return thin;
    }

    // A dense layer after a flatten reads each channel's positions as one contiguous run of in_features / channels inputs.
    private static Linear Thinner(Linear linear, long[] channels, long producerChannels)
    {
        using var scope = NewDisposeScope();
        var device = linear.weight.device;
        long positions = linear.in_features / producerChannels;
        var columns = tensor(channels.SelectMany(c => Enumerable.Range(0, (int)positions).Select(p => c * positions + p)).ToArray(), device: device);
        var thin = nn.Linear(columns.shape[0], linear.out_features, hasBias: linear.bias is not null, device: device);
        thin.weight.copy_(linear.weight.detach().index_select(1, columns));
        if (linear.bias is not null)
            thin.bias!.copy_(linear.bias);
        return thin;
    }
}

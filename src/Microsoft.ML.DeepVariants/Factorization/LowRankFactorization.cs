using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Factorization;

/// <summary>
/// Truncated-SVD factorization of dense and convolution layers (Denton et al. 2014; Jaderberg et al. 2014). A layer's
/// weight W, an n x m matrix (a convolution's [C_out, C_in·k·k]), is replaced by its best rank-r approximation
/// W ≈ (U_r √S_r)(√S_r V_rᵀ), written as two thinner layers:
/// <list type="bullet">
/// <item>a <c>Linear(m, n)</c> becomes <c>Linear(m, r)</c> without bias, then <c>Linear(r, n)</c> with the bias;</item>
/// <item>a <c>Conv2d(C_in, C_out, k×k)</c> becomes a <c>Conv2d(C_in, r, k×k)</c> with the same stride and padding, then a
/// 1×1 <c>Conv2d(r, C_out)</c> with the bias: a bottleneck pair.</item>
/// </list>
/// Parameters go from n·m to r·(n + m), so a layer is factorized only where r·(n + m) &lt; n·m. At full rank the pair
/// computes exactly what the layer did.
/// </summary>
internal static class LowRankFactorization
{
    /// <summary>The layers that can be factorized: dense layers and ungrouped, undilated convolutions outside composite blocks.</summary>
    public static List<(string Name, nn.Module Layer, long Rows, long Columns)> Candidates(IRebuildableNetwork network) =>
        ModuleRewrite.Layers(network)
            .Where(l => l.Module is Linear || l.Module is Conv2d { groups: 1 } conv && conv.dilation.All(d => d == 1))
            .Select(l => l.Module switch
            {
                Linear linear => (l.Name, l.Module, linear.out_features, linear.in_features),
                Conv2d conv => (l.Name, l.Module, conv.out_channels, conv.in_channels * conv.kernel_size.Aggregate(1L, (a, b) => a * b)),
                _ => throw new InvalidOperationException(),
            })
            .ToList();

    /// <summary>The singular values of a layer's weight as an n x m matrix, largest first.</summary>
    public static float[] SingularValues(nn.Module layer)
    {
        using var scope = NewDisposeScope();
        return linalg.svdvals(Matrix(layer)).cpu().data<float>().ToArray();
    }

    /// <summary>The smallest rank whose singular values keep <paramref name="fraction"/> of the squared sum (the energy).</summary>
    public static int RankForEnergy(float[] singularValues, double fraction)
    {
        double total = singularValues.Sum(s => (double)s * s), kept = 0;
        for (int r = 0; r < singularValues.Length; r++)
        {
            kept += (double)singularValues[r] * singularValues[r];
            if (kept >= fraction * total - 1e-12 * total)
                return r + 1;
        }
        return singularValues.Length;
    }

    /// <summary>The two-layer replacement of <paramref name="layer"/> at rank <paramref name="rank"/>, on the layer's device.</summary>
    public static Sequential Factorize(nn.Module layer, int rank)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (u, s, vh) = linalg.svd(Matrix(layer), fullMatrices: false);
        var root = s.narrow(0, 0, rank).sqrt();
        var high = u.narrow(1, 0, rank) * root.unsqueeze(0);          // [n, r]
        var low = root.unsqueeze(1) * vh.narrow(0, 0, rank);          // [r, m]
        switch (layer)
        {
            case Linear linear:
            {
                var first = nn.Linear(linear.in_features, rank, hasBias: false, device: linear.weight.device);
                var second = nn.Linear(rank, linear.out_features, hasBias: linear.bias is not null, device: linear.weight.device);
                first.weight!.copy_(low);
                second.weight!.copy_(high);
                if (linear.bias is not null)
                    second.bias!.copy_(linear.bias);
                return nn.Sequential(("low", first), ("high", second));
            }
            case Conv2d conv:
            {
                var device = conv.weight!.device;
                var first = nn.Conv2d(conv.in_channels, rank, ModuleRewrite.Pair(conv.kernel_size), stride: ModuleRewrite.Pair(conv.stride), padding: ModuleRewrite.Pair(conv.padding ?? [0, 0]), bias: false, device: device);
                var second = nn.Conv2d(rank, conv.out_channels, 1, bias: conv.bias is not null, device: device);
                first.weight!.copy_(low.reshape([rank, conv.in_channels, .. conv.kernel_size]));
                second.weight!.copy_(high.reshape(conv.out_channels, rank, 1, 1));
                if (conv.bias is not null)
                    second.bias!.copy_(conv.bias);
                return nn.Sequential(("low", first), ("high", second));
            }
            default:
                throw new ArgumentException($"'{layer.GetName()}' ({layer.GetType().Name}) is neither a Linear nor a Conv2d.", nameof(layer));
        }
    }

    private static Tensor Matrix(nn.Module layer) => layer switch
    {
        Linear linear => linear.weight.detach(),
        Conv2d conv => conv.weight!.detach().flatten(1),
        _ => throw new ArgumentException($"'{layer.GetName()}' ({layer.GetType().Name}) is neither a Linear nor a Conv2d.", nameof(layer)),
    };
}

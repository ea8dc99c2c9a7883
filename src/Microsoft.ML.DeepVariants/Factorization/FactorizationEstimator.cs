using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Factorization;

/// <summary>
/// Low-rank factorization of a fitted DeepVariants CNN classifier: each chosen dense or convolution layer is replaced
/// by two thinner layers from its truncated SVD (see <see cref="LowRankOptions"/>), the network is fine-tuned, and the
/// result is exported and served through ONNX inside ML.NET like the original, with fewer parameters and fewer
/// multiply-adds. The data is read as the fitted model read it.
/// </summary>
/// <example>
/// <code>
/// var fitted = mlContext.Transforms.DeepVariants.CnnClassifier(options).Train(train);
/// var small = mlContext.Transforms.DeepVariants.Factorize(fitted, new LowRankOptions { Rank = 16 }).Train(train, test);
/// mlContext.Model.Save(small.Model, train.Schema, "factorized.zip");
/// </code>
/// </example>
public sealed class FactorizationEstimator : IEstimator<TransformerChain<ITransformer>>
{
    private readonly ModelContext _context;
    private readonly TrainedNetwork _trained;

    internal FactorizationEstimator(ModelContext context, FitResult fitted, LowRankOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _trained = CompressionRun.Trained(fitted, "Factorize");
        Options = options;
    }

    /// <summary>The options this estimator factorizes with.</summary>
    public LowRankOptions Options { get; }

    /// <summary>Factorizes, fine-tunes on <paramref name="input"/> when <see cref="TrainingOptions.Epochs"/> is above 0, and returns the model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Factorizes, fine-tunes on <paramref name="trainData"/> when asked, and reports accuracy on <paramref name="evaluationData"/> when given.</summary>
    public CompressionResult<LowRankReport> Train(IDataView trainData, IDataView? evaluationData = null)
    {
        Options.Validate();
        // The plan (every layer's rank) is made and checked before any row is read.
        List<LowRankLayer> plan;
        long before;
        using (var network = _trained.Restore())
        {
            plan = Plan(Rebuildable(network), Options);
            before = network.parameters().Sum(p => p.numel());
        }
        var (model, onnx, history, accuracy) = CompressionRun.Run(_context, _trained, Options, "DeepVariants.Factorization", trainData, evaluationData,
            network => Apply(Rebuildable(network), plan));
        long after = before - plan.Sum(l => l.ParametersBefore - l.ParametersAfter);
        return new CompressionResult<LowRankReport>(model, new LowRankReport(plan, before, after, accuracy.Before, accuracy.Rewritten, accuracy.After), onnx, history);
    }

    private static IRebuildableNetwork Rebuildable(nn.Module<Tensor, Tensor> network) => network as IRebuildableNetwork
        ?? throw new NotSupportedException($"Factorize works on CNN classifiers; this fit's network is a {network.GetType().Name}.");

    /// <summary>Each candidate layer's rank (or why it is kept), checked against the options.</summary>
    internal static List<LowRankLayer> Plan(IRebuildableNetwork network, LowRankOptions options)
    {
        var candidates = LowRankFactorization.Candidates(network);
        var names = candidates.Select(c => c.Name).ToHashSet();
        var asked = options.LayerRanks.Keys.Concat(options.Layers ?? []).Distinct().Where(n => !names.Contains(n)).ToList();
        if (asked.Count > 0)
        {
            var blocks = ModuleRewrite.Layers(network).Where(l => l.IsBlock).Select(l => l.Name).ToList();
            string option = options.LayerRanks.ContainsKey(asked[0]) ? nameof(LowRankOptions.LayerRanks) : nameof(LowRankOptions.Layers);
            throw new ArgumentException(
                $"{option} names " +
                $"{string.Join(", ", asked.Select(a => $"'{a}'"))}, which the network does not have as a dense or convolution layer; its layers are " +
                $"{string.Join(", ", names)}{(blocks.Count > 0 ? $" (the layers inside {string.Join(", ", blocks)} are not factorized)" : "")}.",
                option);
        }
        var plan = new List<LowRankLayer>();
        foreach (var (name, layer, rows, columns) in candidates)
        {
            long weights = rows * columns;
            int full = (int)Math.Min(rows, columns);
            if (options.Layers is { } only && !only.Contains(name))
            {
                plan.Add(new LowRankLayer(name, rows, columns, null, 1, weights, weights, "not in Layers"));
                continue;
            }
            var singular = LowRankFactorization.SingularValues(layer);
            int rank;
            if (options.LayerRanks.TryGetValue(name, out int chosen))
            {
                if (chosen > full)
                    throw new ArgumentOutOfRangeException($"{nameof(LowRankOptions.LayerRanks)}[{name}]", chosen,
                        $"{nameof(LowRankOptions.LayerRanks)}[{name}] is {chosen}, above the layer's rank of {full} ({rows} x {columns} weights).");
                rank = chosen;
            }
            else
                rank = options.Rank is { } fixedRank ? Math.Min(fixedRank, full) : LowRankFactorization.RankForEnergy(singular, options.EnergyFraction);
            double total = singular.Sum(s => (double)s * s);
            double energy = total == 0 ? 1 : singular.Take(rank).Sum(s => (double)s * s) / total;
            long factorized = rank * (rows + columns);
            plan.Add(factorized < weights
                ? new LowRankLayer(name, rows, columns, rank, energy, weights, factorized, null)
                : new LowRankLayer(name, rows, columns, null, 1, weights, weights,
                    $"rank {rank} of {full} would need {factorized:N0} weights, not fewer than the layer's {weights:N0}"));
        }
        return plan;
    }

    private static nn.Module<Tensor, Tensor> Apply(IRebuildableNetwork network, List<LowRankLayer> plan)
    {
        var layers = ModuleRewrite.Layers(network).ToDictionary(l => l.Name, l => l.Module);
        var replace = plan.Where(l => l.Rank is not null)
            .ToDictionary(l => l.Name, l => (nn.Module)LowRankFactorization.Factorize(layers[l.Name], l.Rank!.Value));
        return ModuleRewrite.Replace(network, replace);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => _trained.OutputSchema(inputSchema);
}

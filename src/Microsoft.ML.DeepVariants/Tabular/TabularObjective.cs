using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tabular;

/// <summary>
/// The loss of a tabular network, summed over its tasks with their weights: cross-entropy for a multiclass task,
/// binary cross-entropy on the logit for a binary one, mean squared error on the standardized value for a
/// regression. Targets are one float per task (a class index, 0 or 1, or the standardized value); NaN is a missing
/// label, left out of that task's loss only. The metric is accuracy when the one task is a classification.
/// </summary>
internal sealed class TabularObjective(IReadOnlyList<TabularHead> heads) : ITrainingObjective
{
    private readonly int[] _offsets = heads.Select((h, i) => heads.Take(i).Sum(x => x.Outputs)).ToArray();

    public Tensor Loss(Tensor output, Tensor target)
    {
        Tensor? total = null;
        for (int t = 0; t < heads.Count; t++)
        {
            var (y, labelled) = Labelled(output, target, t);
            if (y is null)
                continue;
            var loss = TaskLoss(heads[t], y, target.select(1, t).masked_select(labelled)) * heads[t].Task.LossWeight;
            total = total is null ? loss : total + loss;
        }
        // A batch with no label of any task still gives autograd a graph (a zero that depends on the output).
        return total ?? output.sum() * 0;
    }

    private static Tensor TaskLoss(TabularHead head, Tensor y, Tensor target) => head.Task.Kind switch
    {
        TabularTaskKind.Multiclass => nn.functional.cross_entropy(y, target.to_type(ScalarType.Int64)),
        TabularTaskKind.Binary => nn.functional.binary_cross_entropy_with_logits(y.squeeze(1), target),
        _ => nn.functional.mse_loss(y.squeeze(1), target),
    };

    // Task t's outputs on the rows that have its label (null when none has), and the mask of those rows.
    private (Tensor? Output, Tensor Labelled) Labelled(Tensor output, Tensor target, int t)
    {
        var labelled = target.select(1, t).isnan().logical_not();
        if (labelled.sum().item<long>() == 0)
            return (null, labelled);
        var y = output.narrow(1, _offsets[t], heads[t].Outputs);
        return (y.index_select(0, labelled.nonzero().squeeze(1)), labelled);
    }

    public double? MetricSum(Tensor output, Tensor target)
    {
        if (heads.Count != 1)
            return null;
        var (y, labelled) = Labelled(output, target, 0);
        if (y is null)
            return 0;
        var truth = target.select(1, 0).masked_select(labelled);
        if (heads[0].Task.Kind == TabularTaskKind.Regression)
            return -(y.squeeze(1) - truth).square().sum().item<float>();
        var predicted = heads[0].Task.Kind == TabularTaskKind.Binary ? y.squeeze(1).gt(0).to_type(ScalarType.Float32) : y.argmax(1).to_type(ScalarType.Float32);
        return predicted.eq(truth).sum().item<long>();
    }

    public long CountedRows(Tensor target) => heads.Count == 1
        ? target.select(1, 0).isnan().logical_not().sum().item<long>()
        : target.shape[0];

    public bool ClassifiesRows => heads.Count == 1 && heads[0].Task.Kind == TabularTaskKind.Multiclass;

    public void AddClasses(Tensor output, Tensor target, ClassesSeen seen)
    {
        if (!ClassifiesRows || seen.Predicted.Count > 1)
            return;
        using var scope = NewDisposeScope();
        var (y, labelled) = Labelled(output, target, 0);
        if (y is null)
            return;
        seen.Predicted.UnionWith(y.argmax(1).unique().Item1.data<long>().ToArray());
        seen.Actual.UnionWith(target.select(1, 0).masked_select(labelled).to_type(ScalarType.Int64).unique().Item1.data<long>().ToArray());
        seen.Rows += labelled.sum().item<long>();
    }
}

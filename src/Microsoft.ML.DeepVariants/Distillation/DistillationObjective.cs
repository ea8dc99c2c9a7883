using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Distillation;

/// <summary>
/// Knowledge distillation (Hinton, Vinyals and Dean 2015): alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
/// + (1 - alpha) * cross-entropy with the hard labels. Targets are [N, 1 + K]: the class index in column 0 (as a
/// float), then the teacher's K logits. The T^2 factor keeps the soft term's gradients the same size as T changes.
/// The metric is accuracy against the hard labels.
/// </summary>
internal sealed class DistillationObjective : ITrainingObjective
{
    public DistillationObjective(double temperature, double alpha)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "Temperature must be a finite number greater than zero.");
        if (!(alpha >= 0 && alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "Alpha must be in [0, 1].");
        Temperature = temperature;
        Alpha = alpha;
        // Held for the objective's life, so the loss never makes a temporary Scalar (see Scalars).
        _temperature = temperature.ToScalar();
        _softWeight = (alpha * temperature * temperature).ToScalar();
        _hardWeight = (1 - alpha).ToScalar();
    }

    private readonly Scalar _temperature, _softWeight, _hardWeight;

    public double Temperature { get; }
    public double Alpha { get; }

    /// <summary>Targets [N, 1 + K] from class indices [N] and teacher logits [N, K].</summary>
    public static Tensor Targets(Tensor labels, Tensor teacherLogits) =>
        cat([labels.to_type(ScalarType.Float32).unsqueeze(1), teacherLogits.to_type(ScalarType.Float32)], 1);

    public Tensor Loss(Tensor output, Tensor target)
    {
        var (labels, teacher) = Split(target);
        var hard = nn.functional.cross_entropy(output, labels);
        var teacherLog = nn.functional.log_softmax(teacher.div(_temperature), 1);
        var studentLog = nn.functional.log_softmax(output.div(_temperature), 1);
        // KL(p_teacher || p_student), summed over classes and averaged over rows ("batchmean").
        var soft = (teacherLog.exp() * (teacherLog - studentLog)).sum(1).mean();
        return soft.mul(_softWeight).Plus(hard.mul(_hardWeight));
    }

    public double? MetricSum(Tensor output, Tensor target) => output.argmax(1).eq(Split(target).Labels).sum().item<long>();

    public long CountedRows(Tensor target) => target.shape[0];

    public bool ClassifiesRows => true;

    public void AddPredictedClasses(Tensor output, Tensor target, HashSet<long> classes)
    {
        if (classes.Count > 1)
            return;
        using var distinct = output.argmax(1).unique().Item1;
        classes.UnionWith(distinct.data<long>().ToArray());
    }

    private static (Tensor Labels, Tensor Teacher) Split(Tensor target) =>
        (target.select(1, 0).to_type(ScalarType.Int64), target.narrow(1, 1, target.shape[1] - 1));
}

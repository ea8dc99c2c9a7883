using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Adversarial;

/// <summary>A classifier's accuracy on adversarial examples of one budget.</summary>
/// <param name="Epsilon">The L∞ budget: no input value moved by more.</param>
/// <param name="Accuracy">The share of labelled rows still classified right.</param>
public sealed record AdversarialAccuracy(float Epsilon, double Accuracy);

/// <summary>
/// Accuracy under attack: how a fitted DeepVariants image classifier holds up against FGSM (Goodfellow et al. 2015)
/// or PGD (Madry et al. 2018) adversarial examples of each budget ε, made from the network itself (a white-box attack).
/// </summary>
/// <example>
/// <code>
/// var fit = mlContext.Transforms.DeepVariants.CnnClassifier(options).Train(train);
/// foreach (var (epsilon, accuracy) in AdversarialEvaluation.Evaluate(mlContext, fit, test, [0, 0.05f, 0.1f], AdversarialAttack.Pgd))
///     Console.WriteLine($"eps {epsilon}: {accuracy:P2}");
/// </code>
/// </example>
public static class AdversarialEvaluation
{
    /// <summary>
    /// The accuracy on <paramref name="data"/> (labelled, in the columns the classifier was fitted on) after the attack,
    /// for each of <paramref name="epsilons"/>; ε = 0 is the clean accuracy. Inputs stay within
    /// [<paramref name="inputMinimum"/>, <paramref name="inputMaximum"/>], the range of the pixels the network reads.
    /// </summary>
    public static IReadOnlyList<AdversarialAccuracy> Evaluate(MLContext mlContext, FitResult classifier, IDataView data, IReadOnlyList<float> epsilons,
        AdversarialAttack attack = AdversarialAttack.Pgd, int steps = 10, float? stepSize = null, float inputMinimum = 0, float inputMaximum = 1,
        int batchSize = 256, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(epsilons);
        if (epsilons.Count == 0)
            throw new ArgumentException("Give at least one budget epsilon (0 is the clean accuracy).", nameof(epsilons));
        if (!Enum.IsDefined(attack))
            throw new ArgumentOutOfRangeException(nameof(attack), attack, "Unknown adversarial attack.");
        foreach (float epsilon in epsilons)
            AdversarialExamples.CheckBudget(epsilon, steps, stepSize, inputMinimum, inputMaximum);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var trained = classifier.Trained ?? throw new ArgumentException(
            "The attack needs the FitResult that a DeepVariants classifier's Train returned; this one keeps no trained weights.", nameof(classifier));
        if (trained.Objective is not ClassificationObjective || trained.Label is null)
            throw new ArgumentException("Accuracy under attack needs a classifier (CnnClassifier, Distill, PretrainedClassifier); this fit is not one.", nameof(classifier));

        var context = new ModelContext(mlContext.Transforms);
        var log = context.Logger("DeepVariants.Adversarial");
        trained.CheckSchema(data.Schema, "evaluation");
        var prepared = trained.Prepare(data);
        ClassLabels.Scan(prepared, trained.Label, "evaluation");
        using var source = DataLoading.Load(prepared, trained.Reader(prepared, "evaluation"), DataLoading.CountRows(prepared), trained.Options, "evaluation", log);
        var device = TorchDevices.Resolve(trained.Options.Device, context.Environment, log);
        using var network = trained.Restore();
        network.to(device);
        network.eval();
        using var random = new TorchSharp.torch.Generator((ulong)seed, device);

        var results = new List<AdversarialAccuracy>();
        foreach (float epsilon in epsilons)
        {
            long right = 0, labelled = 0;
            foreach (var batch in source.Batches(batchSize, shuffle: false, seed, epoch: 1, CancellationToken.None))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    var x = batch.Inputs.to(device);
                    var y = batch.Targets.to(device);
                    var adversarial = AdversarialExamples.Perturb(network, x, y, attack, epsilon, steps, stepSize, inputMinimum, inputMaximum, random);
                    using var noGrad = no_grad();
                    var predicted = network.call(adversarial).argmax(1);
                    var known = y.ne(Scalars.Of(ClassificationObjective.Unlabelled));
                    right += predicted.eq(y).logical_and(known).sum().item<long>();
                    labelled += known.sum().item<long>();
                }
            }
            double accuracy = labelled == 0 ? double.NaN : right / (double)labelled;
            log($"{attack} with epsilon {epsilon}: accuracy {accuracy:P2} on {labelled:N0} rows.");
            results.Add(new AdversarialAccuracy(epsilon, accuracy));
        }
        return results;
    }
}

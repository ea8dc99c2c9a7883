using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>How adversarial examples are made: L∞-bounded changes of the input that raise the classifier's loss.</summary>
public enum AdversarialAttack
{
    /// <summary>The fast gradient sign method (Goodfellow et al. 2015): one step of ε in the direction of the loss gradient's sign.</summary>
    Fgsm,
    /// <summary>Projected gradient descent (Madry et al. 2018): from a random start within ε, <c>Steps</c> signed steps, each projected back into the ε-ball.</summary>
    Pgd,
}

/// <summary>
/// Adversarial training (Goodfellow et al. 2015; Madry et al. 2018): a share of each training batch is replaced by
/// adversarial examples of the network as it is at that step, so it learns to resist them.
/// </summary>
/// <example><code>options.Adversarial = new AdversarialTraining { Attack = AdversarialAttack.Pgd, Epsilon = 0.1f, Steps = 5 };</code></example>
public sealed class AdversarialTraining
{
    /// <summary>The attack that makes the training examples. Default Pgd.</summary>
    public AdversarialAttack Attack { get; set; } = AdversarialAttack.Pgd;

    /// <summary>The largest change of any input value (the L∞ budget), in the input's units, 0 or more. Default 0.1 (of a [0, 1] pixel).</summary>
    public float Epsilon { get; set; } = 0.1f;

    /// <summary>PGD's steps, 1 to 100. Default 5.</summary>
    public int Steps { get; set; } = 5;

    /// <summary>PGD's step size; 2.5 ε / Steps when null (Madry et al.).</summary>
    public float? StepSize { get; set; }

    /// <summary>Share of each batch's rows replaced by adversarial examples, above 0 and at most 1. Default 0.5 (Goodfellow et al.'s even mix).</summary>
    public float Fraction { get; set; } = 0.5f;

    /// <summary>The smallest value an input may take; adversarial inputs are clipped to it. Default 0.</summary>
    public float InputMinimum { get; set; }

    /// <summary>The largest value an input may take. Default 1.</summary>
    public float InputMaximum { get; set; } = 1f;

    /// <summary>Throws, naming the option, when a setting cannot work.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Attack))
            throw new ArgumentOutOfRangeException(nameof(Attack), Attack, "Unknown adversarial attack.");
        AdversarialExamples.CheckBudget(Epsilon, Steps, StepSize, InputMinimum, InputMaximum);
        if (!(Fraction > 0 && Fraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(Fraction), Fraction, "Fraction must be above 0 and at most 1.");
    }
}

/// <summary>FGSM and PGD on a classifier's network: the maths the adversarial evaluation and adversarial training share.</summary>
internal static class AdversarialExamples
{
    public static void CheckBudget(float epsilon, int steps, float? stepSize, float minimum, float maximum)
    {
        if (!(epsilon >= 0) || float.IsInfinity(epsilon))
            throw new ArgumentOutOfRangeException(nameof(AdversarialTraining.Epsilon), epsilon, "Epsilon must be a finite number, 0 or more.");
        if (steps is < 1 or > 100)
            throw new ArgumentOutOfRangeException(nameof(AdversarialTraining.Steps), steps, "Steps must be from 1 to 100.");
        if (stepSize is { } size && (!(size > 0) || float.IsInfinity(size)))
            throw new ArgumentOutOfRangeException(nameof(AdversarialTraining.StepSize), size, "StepSize must be null or a finite number above 0.");
        if (!(maximum > minimum) || float.IsInfinity(minimum) || float.IsInfinity(maximum))
            throw new ArgumentOutOfRangeException(nameof(AdversarialTraining.InputMaximum), maximum,
                $"InputMaximum ({maximum}) must be a finite number above InputMinimum ({minimum}).");
    }

    /// <summary>
    /// Adversarial versions of the inputs <paramref name="x"/> with classes <paramref name="y"/> (rows of class -1 are
    /// unlabelled and left alone by the loss): within <paramref name="epsilon"/> of <paramref name="x"/> in every value
    /// and within [<paramref name="minimum"/>, <paramref name="maximum"/>]. The network's mode (training or evaluation)
    /// is the caller's; its parameters' gradients are not touched.
    /// </summary>
    public static Tensor Perturb(nn.Module<Tensor, Tensor> network, Tensor x, Tensor y, AdversarialAttack attack, float epsilon, int steps, float? stepSize,
        float minimum, float maximum, Generator? random = null)
    {
        var low = Scalars.Of(minimum);
        var high = Scalars.Of(maximum);
        var original = x.detach();
        if (epsilon == 0)
            return original;
        Tensor SignedGradient(Tensor at)
        {
            using var enable = enable_grad();
            var input = at.detach().requires_grad_(true);
            var loss = nn.functional.cross_entropy(network.call(input), y, ignore_index: ClassificationObjective.Unlabelled);
            return autograd.grad([loss], [input])[0].sign();
        }
        if (attack == AdversarialAttack.Fgsm)
            return original.Plus(SignedGradient(original).Times(epsilon)).clamp(low, high).detach();
        float step = stepSize ?? 2.5f * epsilon / steps;
        var start = rand(original.shape, generator: random, device: original.device).Times(2 * epsilon).Plus(-epsilon);
        var adversarial = original.Plus(start).clamp(low, high);
        var lower = original.Plus(-epsilon);
        var upper = original.Plus(epsilon);
        for (int i = 0; i < steps; i++)
            adversarial = adversarial.Plus(SignedGradient(adversarial).Times(step)).maximum(lower).minimum(upper).clamp(low, high).detach();
        return adversarial;
    }

    /// <summary>The training batch with the first <see cref="AdversarialTraining.Fraction"/> of its (shuffled) rows made adversarial.</summary>
    public static Tensor ForTraining(nn.Module<Tensor, Tensor> network, Tensor x, Tensor y, AdversarialTraining options)
    {
        long rows = x.shape[0], attacked = Math.Max(1, (long)Math.Round(options.Fraction * rows));
        var perturbed = Perturb(network, x.narrow(0, 0, attacked), y.narrow(0, 0, attacked), options.Attack, options.Epsilon, options.Steps,
            options.StepSize, options.InputMinimum, options.InputMaximum);
        return attacked == rows ? perturbed : cat([perturbed, x.narrow(0, attacked, rows - attacked)], 0);
    }
}

using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Distillation;

/// <summary>How to read the teacher's <c>Score</c> column.</summary>
public enum TeacherScoreKind
{
    /// <summary>Probabilities when every row lies in [0, 1] and sums to 1 (within 1e-3), logits otherwise.</summary>
    Auto,
    /// <summary>Unnormalized log-probabilities (logits), used as they are.</summary>
    Logits,
    /// <summary>Class probabilities, turned back into logits with a logarithm.</summary>
    Probabilities,
}

/// <summary>Which intermediate features the student also learns from, besides the teacher's logits.</summary>
public enum FeatureLoss
{
    /// <summary>Logits only.</summary>
    None,
    /// <summary>FitNets hints (Romero et al. 2015): the student's last feature map, through a learned 1x1 adaptor, regressed on the teacher's.</summary>
    Hint,
    /// <summary>Attention transfer (Zagoruyko and Komodakis 2017): the spatial attention maps (channel mean of squares, unit length) matched.</summary>
    Attention,
}

/// <summary>
/// Options of <see cref="DistillationEstimator"/>: the student (an ordinary CNN classifier) and how it learns from
/// the teacher. The loss is <c>Alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - Alpha) * CE(student, label)</c>
/// (Hinton, Vinyals and Dean 2015).
/// </summary>
/// <example>
/// <code>
/// var options = new DistillationOptions
/// {
///     Student = new CnnClassifierOptions { ImageHeight = 28, ImageWidth = 28, Epochs = 5,
///         Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 8, HiddenSize = 32 } },
///     Temperature = 2, Alpha = 0.5,
/// };
/// var student = mlContext.Transforms.DeepVariants.Distill(teacherModel, options).Fit(train);
/// </code>
/// </example>
public sealed class DistillationOptions
{
    /// <summary>The student: its architecture, input, label and training settings. Its seed drives the distilled training as it would plain training.</summary>
    public CnnClassifierOptions Student { get; set; } = new();

    /// <summary>Softmax temperature T for both teacher and student in the soft term; higher spreads the teacher's probability over more classes. Default 2.</summary>
    public double Temperature { get; set; } = 2;

    /// <summary>Weight of the soft (teacher) term, in [0, 1]; 0 is plain training on the labels (plus the feature term, with a <see cref="FeatureLoss"/>). Default 0.5.</summary>
    public double Alpha { get; set; } = 0.5;

    /// <summary>The teacher's output column of class scores, one per student class. Default "Score".</summary>
    public string TeacherScoreColumnName { get; set; } = "Score";

    /// <summary>Whether the teacher's scores are logits or probabilities. Default <see cref="TeacherScoreKind.Auto"/>.</summary>
    public TeacherScoreKind TeacherScores { get; set; } = TeacherScoreKind.Auto;

    /// <summary>
    /// Feature distillation on the last convolutional feature maps, added to the loss above; needs the teacher's network,
    /// so the teacher must be the <see cref="FitResult"/> of a DeepVariants CNN reading the same images. Default none.
    /// The hint adaptor is not kept in training checkpoints: a resumed run starts it afresh.
    /// </summary>
    public FeatureLoss FeatureLoss { get; set; } = FeatureLoss.None;

    /// <summary>
    /// The weight of the feature term; null for the kind's default: 1 for <see cref="FeatureLoss.Hint"/> (a mean squared
    /// error of activations) and 1,000 for <see cref="FeatureLoss.Attention"/> (the β of Zagoruyko and Komodakis).
    /// </summary>
    public double? FeatureWeight { get; set; }

    internal double EffectiveFeatureWeight => FeatureWeight ?? (FeatureLoss == FeatureLoss.Attention ? 1000 : 1);

    /// <summary>Throws, naming the option, when a setting cannot work.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Student, nameof(Student));
        Student.Validate();
        if (!(Temperature > 0) || double.IsInfinity(Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be a finite number greater than zero.");
        if (!(Alpha >= 0 && Alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "Alpha must be in [0, 1].");
        if (!Enum.IsDefined(FeatureLoss))
            throw new ArgumentOutOfRangeException(nameof(FeatureLoss), FeatureLoss, "FeatureLoss must be None, Hint or Attention.");
        if (FeatureWeight is { } weight && !(weight > 0 && !double.IsInfinity(weight)))
            throw new ArgumentOutOfRangeException(nameof(FeatureWeight), weight, "FeatureWeight must be a finite number greater than zero (or null for the default).");
        if (FeatureWeight is not null && FeatureLoss == FeatureLoss.None)
            throw new ArgumentException("FeatureWeight applies only with a FeatureLoss (Hint or Attention).", nameof(FeatureWeight));
        if (string.IsNullOrWhiteSpace(TeacherScoreColumnName))
            throw new ArgumentException("TeacherScoreColumnName must name a column.", nameof(TeacherScoreColumnName));
    }
}

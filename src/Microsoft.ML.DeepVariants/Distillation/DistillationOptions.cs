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

    /// <summary>Weight of the soft (teacher) term, in [0, 1]; 0 is plain training on the labels. Default 0.5.</summary>
    public double Alpha { get; set; } = 0.5;

    /// <summary>The teacher's output column of class scores, one per student class. Default "Score".</summary>
    public string TeacherScoreColumnName { get; set; } = "Score";

    /// <summary>Whether the teacher's scores are logits or probabilities. Default <see cref="TeacherScoreKind.Auto"/>.</summary>
    public TeacherScoreKind TeacherScores { get; set; } = TeacherScoreKind.Auto;

    /// <summary>Throws, naming the option, when a setting cannot work.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Student, nameof(Student));
        Student.Validate();
        if (!(Temperature > 0) || double.IsInfinity(Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be a finite number greater than zero.");
        if (!(Alpha >= 0 && Alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "Alpha must be in [0, 1].");
        if (string.IsNullOrWhiteSpace(TeacherScoreColumnName))
            throw new ArgumentException("TeacherScoreColumnName must name a column.", nameof(TeacherScoreColumnName));
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Distillation;

/// <summary>
/// Knowledge distillation (Hinton, Vinyals and Dean 2015): trains a small CNN student on the softened outputs of a
/// fitted teacher as well as on the labels. The teacher is any ML.NET transformer that adds a class-score column to
/// the same rows: a DeepVariants model, an ONNX model applied with <c>ApplyOnnxModel</c>, or a classic ML.NET multiclass
/// model (probabilities are turned back into logits). The student is an ordinary CNN classifier afterwards: the same
/// <c>Score</c> and <c>PredictedLabel</c> outputs, ONNX export and persistence, with no trace of the teacher.
/// </summary>
/// <example>
/// <code>
/// var teacher = mlContext.Transforms.DeepVariants.CnnClassifier(bigOptions).Fit(train);
/// var student = mlContext.Transforms.DeepVariants.Distill(teacher, new DistillationOptions { Student = smallOptions }).Fit(train);
/// mlContext.Model.Save(student, train.Schema, "student.zip");
/// </code>
/// </example>
public sealed class DistillationEstimator : IDeepVariantsEstimator
{
    private readonly ModelContext _context;
    private readonly ITransformer _teacher;
    private readonly TrainedNetwork? _teacherNetwork;

    internal DistillationEstimator(ModelContext context, ITransformer teacher, DistillationOptions options, FitResult? fittedTeacher = null)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _teacher = teacher;
        _teacherNetwork = fittedTeacher?.Trained;
        Options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public DistillationOptions Options { get; }

    /// <summary>Distills the teacher into the student on <paramref name="input"/> and returns the student.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Distills and returns the student with its training history and ONNX graph; the validation data is scored by the teacher too.</summary>
    public FitResult Train(IDataView trainData, IDataView? validationData = null)
    {
        Options.Validate();
        var student = new CnnClassifierEstimator(_context, Options.Student);
        var targets = new TeacherTargets(_teacher, Options, _context.Logger("DeepVariants.Distillation"));
        var extension = targets.Extension();
        if (Options.FeatureLoss == FeatureLoss.None)
            return student.Train(trainData, validationData, extension);
        var teacherNetwork = _teacherNetwork?.Restore() as CnnNetwork ?? throw new ArgumentException(
            $"FeatureLoss = {Options.FeatureLoss} needs the teacher's network: pass the FitResult of a DeepVariants CNN (CnnClassifier(...).Train) as the teacher.",
            nameof(DistillationOptions.FeatureLoss));
        using var features = new FeatureDistillationObjective(extension.Objective!, teacherNetwork, Options.FeatureLoss, Options.EffectiveFeatureWeight);
        return student.Train(trainData, validationData, new TrainingExtension
        {
            AddColumns = extension.AddColumns, Targets = extension.Targets, BatchTargets = extension.BatchTargets, Objective = features,
        });
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Options.Validate();
        return new CnnClassifierEstimator(_context, Options.Student).GetOutputSchema(inputSchema);
    }
}

using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Distillation;

/// <summary>
/// Distillation targets: the hard label next to the teacher's logits. The teacher is any fitted ML.NET transformer
/// with a class-score column; it scores a whole data set in one pass (once, since its outputs do not change between
/// epochs), or each augmented training batch, which is then wrapped as an IDataView of the feature column.
/// </summary>
internal sealed class TeacherTargets : ICnnTrainingTargets
{
    private readonly ITransformer _teacher;
    private readonly DistillationOptions _options;
    private readonly MLContext _batchContext = new();
    private readonly Action<string> _log;

    public TeacherTargets(ITransformer teacher, DistillationOptions options, Action<string> log)
    {
        _teacher = teacher;
        _options = options;
        _log = log;
        Objective = new DistillationObjective(options.Temperature, options.Alpha);
    }

    public ITrainingObjective Objective { get; }

    public Tensor ForRows(IDataView original, Tensor classIndices, LabelInfo labels, string role)
    {
        var clock = Stopwatch.StartNew();
        var logits = TeacherLogits(_teacher.Transform(original), labels, classIndices.shape[0], role);
        // The teacher's agreement with the labels shows at once whether its classes line up with the student's.
        double agreement = logits.argmax(1).eq(classIndices).to_type(ScalarType.Float64).mean().item<double>();
        _log($"Teacher scored {classIndices.shape[0]:N0} {role} rows in {clock.Elapsed.TotalSeconds:F1} s; it agrees with {agreement:P1} of their labels.");
        using (logits)
            return DistillationObjective.Targets(classIndices, logits);
    }

    public Func<Tensor, Tensor, Tensor>? ForAugmentedBatches(CnnInput input, LabelInfo labels)
    {
        if (input.Preprocessing is not null)
            throw new NotSupportedException(
                $"Distillation with augmentation scores each augmented batch with the teacher, from the float vector column '{input.TensorColumn}'. " +
                "The student reads an image column instead; extract the pixels before both models, or turn augmentation off.");
        var schema = SchemaDefinition.Create(typeof(BatchRow));
        schema[nameof(BatchRow.Features)].ColumnName = input.TensorColumn;
        schema[nameof(BatchRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, input.Size);
        return (images, targets) =>
        {
            float[] flat = images.detach().cpu().reshape(-1).data<float>().ToArray();
            var rows = Enumerable.Range(0, (int)images.shape[0]).Select(i => new BatchRow { Features = flat.AsSpan(i * input.Size, input.Size).ToArray() });
            IDataView scored;
            try
            {
                scored = _teacher.Transform(_batchContext.Data.LoadFromEnumerable(rows, schema));
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new InvalidOperationException(
                    $"The teacher could not score an augmented batch from column '{input.TensorColumn}' alone ({e.Message}). " +
                    "With augmentation the teacher sees only the student's feature column; turn augmentation off to score the original rows.", e);
            }
            using var logits = TeacherLogits(scored, labels, images.shape[0], "augmented");
            return DistillationObjective.Targets(targets.select(1, 0), logits.to(targets.device));
        };
    }

    /// <summary>The teacher's scores as logits [N, K] in the student's class order.</summary>
    private Tensor TeacherLogits(IDataView scored, LabelInfo labels, long expectedRows, string role)
    {
        string column = _options.TeacherScoreColumnName;
        var col = scored.Schema.GetColumnOrNull(column)
            ?? throw new ArgumentOutOfRangeException(column, $"The teacher's output has no column '{column}'; set TeacherScoreColumnName to its class-score column.");
        if (col.Type is not VectorDataViewType { ItemType: NumberDataViewType item, Size: > 0 } vector || item != NumberDataViewType.Single)
            throw DataViewReader.SchemaMismatch(column, "a known-size Vector<Single> of class scores", col.Type);
        int[] slotOfClass = ClassSlots(col, vector.Size, labels);

        var values = new List<float>();
        using (var cursor = scored.GetRowCursor([col]))
        {
            var get = cursor.GetGetter<VBuffer<float>>(col);
            VBuffer<float> buffer = default;
            while (cursor.MoveNext())
            {
                get(ref buffer);
                var dense = buffer.DenseValues().ToArray();
                foreach (int slot in slotOfClass)
                    values.Add(dense[slot]);
            }
        }
        long rows = values.Count / labels.ClassCount;
        if (rows != expectedRows)
            throw new InvalidOperationException($"The teacher returned {rows} rows of '{column}' for {expectedRows} {role} rows; it must score every row once, in order.");
        var scores = tensor(values.ToArray(), [rows, labels.ClassCount]);
        if (!scores.isfinite().all().item<bool>())
            throw new ArgumentOutOfRangeException(column, $"The teacher's '{column}' has NaN or infinite values in the {role} rows.");
        bool probabilities = _options.TeacherScores switch
        {
            TeacherScoreKind.Probabilities => true,
            TeacherScoreKind.Logits => false,
            _ => scores.ge(0).all().item<bool>() && scores.le(1).all().item<bool>()
                 && (scores.sum(1) - 1).abs().max().item<float>() < 1e-3f,
        };
        if (!probabilities)
            return scores;
        // log p is a logit up to a constant per row, which softmax ignores; the floor keeps log 0 finite.
        using (scores)
            return scores.clamp_min(1e-7).log();
    }

    // Aligns the teacher's slots with the student's classes by name when the teacher names its slots; else by position.
    private static int[] ClassSlots(DataViewSchema.Column column, int slots, LabelInfo labels)
    {
        var names = SlotNames(column, slots);
        if (names is not null && names.Distinct().Count() == slots && labels.ClassNames.All(names.Contains))
            return labels.ClassNames.Select(name => Array.IndexOf(names, name)).ToArray();
        if (slots != labels.ClassCount)
            throw new ArgumentOutOfRangeException(column.Name,
                $"The teacher's '{column.Name}' has {slots} class scores but the student's label has {labels.ClassCount} classes" +
                (names is null ? "." : $"; its slots ({string.Join(", ", names.Take(12))}) do not name the classes ({string.Join(", ", labels.ClassNames.Take(12))})."));
        return Enumerable.Range(0, slots).ToArray();
    }

    private static string[]? SlotNames(DataViewSchema.Column column, int slots)
    {
        if (column.Annotations.Schema.GetColumnOrNull("SlotNames") is not { Type: VectorDataViewType { ItemType: TextDataViewType, Size: var size } } || size != slots)
            return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    private sealed class BatchRow
    {
        public float[] Features { get; set; } = [];
    }
}

using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Distillation;

/// <summary>
/// Distillation as an extension of an ordinary classifier fit: the teacher (any fitted ML.NET transformer with a
/// class-score column) scores the raw rows, its scores travel as a column next to the student's input, and each row's
/// target is the hard label followed by the teacher's logits in the student's class order. In memory the teacher scores
/// every row once (its outputs do not change between epochs); streamed, it scores each batch as it is read. With
/// augmentation it scores each augmented batch instead, from the student's feature column.
/// </summary>
internal sealed class TeacherTargets
{
    private const string TeacherColumn = "DeepVariants.TeacherScore";
    private readonly ITransformer _teacher;
    private readonly DistillationOptions _options;
    private readonly MLContext _batchContext = new();
    private readonly Action<string> _log;
    private bool? _probabilities;

    public TeacherTargets(ITransformer teacher, DistillationOptions options, Action<string> log)
    {
        _teacher = teacher;
        _options = options;
        _log = log;
    }

    public TrainingExtension Extension() => new()
    {
        AddColumns = (raw, role) =>
        {
            var scored = _teacher.Transform(raw);
            RequireScoreColumn(scored.Schema, role);
            return _batchContext.Transforms.CopyColumns(TeacherColumn, _options.TeacherScoreColumnName).Fit(scored).Transform(scored);
        },
        Targets = (prepared, role, fit) => Target(prepared, role, fit.Label!),
        Objective = new DistillationObjective(_options.Temperature, _options.Alpha),
        BatchTargets = task => ForAugmentedBatches(task.RawInput, task.Fit.Label!.Info),
    };

    private TargetReader Target(IDataView prepared, string role, LabelBinding label)
    {
        var column = prepared.Schema[TeacherColumn];
        var slots = ClassSlots(column, ((VectorDataViewType)column.Type).Size, label.Info, _options.TeacherScoreColumnName);
        _probabilities ??= _options.TeacherScores switch
        {
            TeacherScoreKind.Probabilities => true,
            TeacherScoreKind.Logits => false,
            _ => LooksLikeProbabilities(prepared, column, prepared.Schema[label.KeyColumn], slots, role),
        };
        return new TeacherTarget(prepared.Schema[label.KeyColumn], column, slots, _probabilities.Value, label.UserColumn, _options.TeacherScoreColumnName);
    }

    // Probabilities (what ML.NET's multiclass heads write) when the first rows' scores are in [0, 1] and sum to 1.
    private bool LooksLikeProbabilities(IDataView prepared, DataViewSchema.Column column, DataViewSchema.Column key, int[] slots, string role)
    {
        using var cursor = prepared.GetRowCursor([column, key]);
        var get = cursor.GetGetter<VBuffer<float>>(column);
        var getKey = cursor.GetGetter<uint>(key);
        VBuffer<float> buffer = default;
        uint label = 0;
        bool probabilities = true;
        int rows = 0, agree = 0;
        while (rows < 1000 && cursor.MoveNext())
        {
            get(ref buffer);
            getKey(ref label);
            var dense = buffer.DenseValues().ToArray();
            var scores = slots.Select(s => dense[s]).ToArray();
            probabilities &= scores.All(v => v >= 0 && v <= 1) && Math.Abs(scores.Sum() - 1) < 1e-3;
            agree += label > 0 && Array.IndexOf(scores, scores.Max()) == label - 1 ? 1 : 0;
            rows++;
        }
        _log($"The teacher's '{_options.TeacherScoreColumnName}' holds {(probabilities ? "probabilities" : "logits")}; it agrees with {(double)agree / Math.Max(1, rows):P1} of the first {rows} {role} labels.");
        return probabilities;
    }

    public Func<Tensor, Tensor, Tensor>? ForAugmentedBatches((string Column, int Size)? rawInput, LabelInfo labels)
    {
        if (rawInput is not { } input)
            throw new NotSupportedException(
                "Distillation with augmentation scores each augmented batch with the teacher, from the student's float vector column. " +
                "The student reads an image column instead; extract the pixels before both models, or turn augmentation off.");
        var schema = SchemaDefinition.Create(typeof(BatchRow));
        schema[nameof(BatchRow.Features)].ColumnName = input.Column;
        schema[nameof(BatchRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, input.Size);
        return (images, targets) =>
        {
            float[] flat = images.detach().cpu().reshape(-1).data<float>().ToArray();
            var rows = Enumerable.Range(0, (int)images.shape[0]).Select(i => new BatchRow { Features = flat.AsSpan(i * input.Size, input.Size).ToArray() });
            IDataView scored;
            try
            {
                scored = _teacher.Transform(_batchContext.Data.LoadFromEnumerable(rows, schema));
                RequireScoreColumn(scored.Schema, "augmented");
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new InvalidOperationException(
                    $"The teacher could not score an augmented batch from column '{input.Column}' alone ({e.Message}). " +
                    "With augmentation the teacher sees only the student's feature column; turn augmentation off to score the original rows.", e);
            }
            var column = scored.Schema[_options.TeacherScoreColumnName];
            var slots = ClassSlots(column, ((VectorDataViewType)column.Type).Size, labels, column.Name);
            bool probabilities = _probabilities ?? _options.TeacherScores != TeacherScoreKind.Logits;
            var logits = new float[images.shape[0] * labels.ClassCount];
            using (var cursor = scored.GetRowCursor([column]))
            {
                var get = cursor.GetGetter<VBuffer<float>>(column);
                VBuffer<float> buffer = default;
                for (int row = 0; cursor.MoveNext(); row++)
                {
                    get(ref buffer);
                    TeacherTarget.Logits(buffer, slots, probabilities, logits.AsSpan(row * labels.ClassCount, labels.ClassCount), column.Name, row, "augmented");
                }
            }
            using var teacher = tensor(logits, [images.shape[0], labels.ClassCount]);
            return DistillationObjective.Targets(targets.select(1, 0), teacher.to(targets.device));
        };
    }

    private void RequireScoreColumn(DataViewSchema schema, string role)
    {
        string column = _options.TeacherScoreColumnName;
        var col = schema.GetColumnOrNull(column)
            ?? throw new ArgumentOutOfRangeException(nameof(DistillationOptions.TeacherScoreColumnName),
                $"The teacher's output for the {role} rows has no column '{column}'; set TeacherScoreColumnName to its class-score column.");
        if (col.Type is not VectorDataViewType { ItemType: NumberDataViewType item, Size: > 0 } || item != NumberDataViewType.Single)
            throw SchemaView.SchemaMismatch(column, "a known-size Vector<Single> of class scores", col.Type, role);
    }

    // Aligns the teacher's slots with the student's classes by name when the teacher names its slots; else by position.
    private static int[] ClassSlots(DataViewSchema.Column column, int slots, LabelInfo labels, string userName)
    {
        var names = SlotNames(column, slots);
        if (names is not null && names.Distinct().Count() == slots && labels.ClassNames.All(names.Contains))
            return labels.ClassNames.Select(name => Array.IndexOf(names, name)).ToArray();
        if (slots != labels.ClassCount)
            throw new ArgumentOutOfRangeException(userName,
                $"The teacher's '{userName}' has {slots} class scores but the student's label has {labels.ClassCount} classes" +
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

    /// <summary>A row's target: the class index (as a float), then the teacher's K logits.</summary>
    private sealed class TeacherTarget(DataViewSchema.Column key, DataViewSchema.Column teacher, int[] slots, bool probabilities, string userLabel, string scoreName)
        : TargetReader
    {
        public override ScalarType Type => ScalarType.Float32;
        public override long[] Shape => [1 + slots.Length];
        public override IEnumerable<DataViewSchema.Column> Columns => [key, teacher];

        public override TargetWriter Bind(DataViewRow row, string role)
        {
            var getKey = row.GetGetter<uint>(key);
            var getScores = row.GetGetter<VBuffer<float>>(teacher);
            VBuffer<float> buffer = default;
            uint label = 0;
            return (long index, ReadOnlySpan<float> _, Span<byte> destination) =>
            {
                var values = MemoryMarshal.Cast<byte, float>(destination);
                getKey(ref label);
                if (label == 0)
                    throw new ArgumentOutOfRangeException(userLabel, $"Label column '{userLabel}' has a missing value at row {index}{SchemaView.In(role)}; every {role} row needs a label.");
                values[0] = label - 1;
                getScores(ref buffer);
                Logits(buffer, slots, probabilities, values[1..], scoreName, index, role);
            };
        }

        // log p is a logit up to a constant per row, which softmax ignores; the floor keeps log 0 finite.
        public static void Logits(in VBuffer<float> scores, int[] slots, bool probabilities, Span<float> destination, string column, long row, string role)
        {
            var values = scores.GetValues();
            bool dense = scores.IsDense;
            for (int k = 0; k < slots.Length; k++)
            {
                float v = dense ? values[slots[k]] : scores.GetItemOrDefault(slots[k]);
                if (!float.IsFinite(v))
                    throw new ArgumentOutOfRangeException(column, $"The teacher's '{column}' has {(float.IsNaN(v) ? "a NaN" : "an infinite")} value at row {row} of the {role} rows.");
                destination[k] = probabilities ? MathF.Log(MathF.Max(v, 1e-7f)) : v;
            }
        }
    }

    private sealed class BatchRow
    {
        public float[] Features { get; set; } = [];
    }
}

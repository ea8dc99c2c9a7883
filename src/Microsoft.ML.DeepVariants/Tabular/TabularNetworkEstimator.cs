using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tabular;

/// <summary>
/// A deep network for ordinary tables (<see cref="TabularNetwork"/>): numeric columns standardized inside the model,
/// categorical columns through learned embeddings, missing numbers imputed with an indicator, an MLP with
/// normalization, dropout and residual blocks, and one head per label: a multiclass, binary or regression task, or
/// several at once (<see cref="TabularNetworkOptions.Labels"/>). Trained with TorchSharp, served as ONNX inside
/// ML.NET, with ML.NET's usual output columns, so <c>Evaluate</c> works unchanged. Also on the multiclass, binary and
/// regression trainer catalogs as <c>TabularNetwork</c>.
/// </summary>
/// <example>
/// <code>
/// var model = mlContext.Transforms.DeepVariants.TabularNetwork(new TabularNetworkOptions
/// {
///     NumericColumnNames = ["carat", "depth", "table", "x", "y", "z"], CategoricalColumnNames = ["cut", "color", "clarity"],
///     LabelColumnName = "price", Task = TabularTaskKind.Regression, Epochs = 20,
/// }).Fit(train);
/// var metrics = mlContext.Regression.Evaluate(model.Transform(test), labelColumnName: "price");
/// </code>
/// </example>
public sealed class TabularNetworkEstimator : DeepVariantsEstimator<TabularNetworkOptions, FitResult>
{
    internal TabularNetworkEstimator(ModelContext context, TabularNetworkOptions options) : base(context, options, "DeepVariants.Tabular") { }

    private protected override FitTask CreateTask(SchemaView schema) => TabularTask.Create(schema, Options);

    /// <summary>The tabular network's part of a fit: the columns gathered into one input vector, the labels read as one target per task, one head each.</summary>
    private sealed class TabularTask : FitTask
    {
        private const string Prefix = "DeepVariants.Tabular.";
        private const string InputsColumn = Prefix + "Inputs";

        private readonly TabularNetworkOptions _options;
        private readonly IReadOnlyList<TabularLabel> _tasks;
        private readonly (string Column, int Slots)[] _numeric;

        /// <summary>The key column of each categorical column, in order: the user's key, or the text's keyed copy.</summary>
        private readonly string[] _keys;
        private TabularPlan? _plan;

        private TabularTask(TabularNetworkOptions options, (string, int)[] numeric, string[] keys)
        {
            _keys = keys;
            _options = options;
            _tasks = options.Tasks;
            _numeric = numeric;
        }

        public static TabularTask Create(SchemaView schema, TabularNetworkOptions o)
        {
            var ml = new MLContext(seed: 0);
            var steps = new List<IEstimator<ITransformer>>();
            var temporary = new List<string> { InputsColumn };
            var inputs = new List<string>();
            var numeric = new List<(string, int)>();
            var keys = new List<string>();
            foreach (string name in o.NumericColumnNames)
            {
                var column = schema.Require(name);
                bool number = column.ItemType is NumberDataViewType || column.ItemType is BooleanDataViewType;
                if (column.IsKey || !number || column.Kind == SchemaShape.Column.VectorKind.VariableVector)
                    throw schema.Mismatch(column, column.ItemType is TextDataViewType || column.IsKey
                        ? "a number, or a vector of numbers of known size (list a text or key column in CategoricalColumnNames)"
                        : "a number, or a vector of numbers of known size");
                numeric.Add((name, column.IsScalar ? 1 : column.Size));
                if (column.ItemType == NumberDataViewType.Single)
                    inputs.Add(name);
                else
                {
                    string converted = Prefix + "Number." + name;
                    steps.Add(ml.Transforms.Conversion.ConvertType(converted, name, DataKind.Single));
                    temporary.Add(converted);
                    inputs.Add(converted);
                }
            }
            foreach (string name in o.CategoricalColumnNames)
            {
                var column = schema.Require(name);
                if (!column.IsScalar || !(column.IsKey || column.ItemType is TextDataViewType))
                    throw schema.Mismatch(column, "a key or text value (one category per row)");
                if (column.IsKey && schema.HasSizes && column.Column?.Type is KeyDataViewType key && (key.Count == 0 || key.Count > (ulong)o.MaxCategories))
                    throw new ArgumentOutOfRangeException(name, key.Count == 0
                        ? $"Categorical column '{name}' is a key of unknown cardinality; an embedding needs a key type with a known count."
                        : $"Categorical column '{name}' has {key.Count:N0} categories, more than MaxCategories ({o.MaxCategories:N0}) allows for its embedding. " +
                          "Raise MaxCategories, or group rare categories first.");
                string keyed = name;
                if (!column.IsKey)
                {
                    // Values first seen in the training data are the categories; others (unseen, empty) read as missing.
                    keyed = Prefix + "Key." + name;
                    steps.Add(ml.Transforms.Conversion.MapValueToKey(keyed, name, addKeyValueAnnotationsAsText: false));
                    temporary.Add(keyed);
                }
                // ML.NET's ONNX transformer feeds a key column to a UInt32 graph input as its raw value (0 missing, k the k-th category).
                keys.Add(keyed);
            }
            if (o.ImageColumnName is { } imageColumn)
            {
                var image = schema.Require(imageColumn);
                int pixels = o.ImageChannels * o.ImageHeight * o.ImageWidth;
                if (!image.IsFloatVector || image.Kind == SchemaShape.Column.VectorKind.VariableVector || schema.HasSizes && image.Size != pixels)
                    throw schema.Mismatch(image, $"a Vector<Single, {pixels}> of {o.ImageChannels} x {o.ImageHeight} x {o.ImageWidth} pixels (CHW; ExtractPixels writes them)");
            }
            if (o.SeriesColumnName is { } seriesColumn)
            {
                var series = schema.Require(seriesColumn);
                int values = o.SeriesChannels * o.SeriesLength;
                if (!series.IsFloatVector || series.Kind == SchemaShape.Column.VectorKind.VariableVector || schema.HasSizes && series.Size != values)
                    throw schema.Mismatch(series, $"a Vector<Single, {values}> of {o.SeriesLength} steps of {o.SeriesChannels} values, step-major " +
                        "(series of other lengths: pad them to one length, or use the sequence classifier)");
            }
            if (inputs.Count > 0)
                steps.Add(ml.Transforms.Concatenate(InputsColumn, [.. inputs]));
            else
                temporary.Remove(InputsColumn);

            var outputs = new List<SchemaShape.Column>();
            foreach (var task in o.Tasks)
            {
                var label = task.Kind == TabularTaskKind.Multiclass ? ClassLabels.Check(schema, task.ColumnName) : schema.Require(task.ColumnName);
                bool real = label.IsScalar && !label.IsKey && (label.ItemType == NumberDataViewType.Single || label.ItemType == NumberDataViewType.Double);
                if (task.Kind == TabularTaskKind.Binary && !(real || label.IsScalar && label.ItemType is BooleanDataViewType))
                    throw schema.Mismatch(label, $"a Boolean label (or a Single or Double of 0 or 1, NaN when missing) for binary task '{task.TaskName}'");
                if (task.Kind == TabularTaskKind.Regression && !real)
                    throw schema.Mismatch(label, $"a Single or Double label (NaN when missing) for regression task '{task.TaskName}'");
                var names = Names(o, task);
                var columns = new Dictionary<string, SchemaShape.Column>();
                if (task.Kind == TabularTaskKind.Multiclass)
                    ClassificationColumns.AddMulticlassOutputs(columns, label, names.Score, names.PredictedLabel);
                else
                    columns[names.Score] = Scalar(names.Score, NumberDataViewType.Single);
                if (task.Kind == TabularTaskKind.Binary)
                {
                    columns[names.Probability] = Scalar(names.Probability, NumberDataViewType.Single);
                    columns[names.PredictedLabel] = Scalar(names.PredictedLabel, BooleanDataViewType.Instance);
                }
                outputs.AddRange(columns.Values);
            }
            return new TabularTask(o, [.. numeric], [.. keys])
            {
                Preprocessing = steps.Aggregate((IEstimator<ITransformer>?)null, (chain, step) => chain is null ? step : chain.Append(step)),
                TemporaryColumns = temporary,
                ExtraOutputs = outputs,
                InputColumn = o.NumericColumnNames.Concat(o.CategoricalColumnNames).FirstOrDefault() ?? o.ImageColumnName ?? o.SeriesColumnName!,
                Description = (o.HasTable, o.ImageColumnName is not null, o.SeriesColumnName is not null) switch
                {
                    (false, true, false) => "a CNN",
                    (false, false, true) => "a temporal CNN",
                    (true, false, false) => "a tabular network",
                    var (table, image, series) => $"a {new[] { table ? "table" : null, image ? "image" : null, series ? "series" : null }.Count(x => x is not null)}-stream network",
                } + (o.IsMultiTask ? $" with {o.Tasks.Count} tasks" : $" ({o.Task.ToString().ToLowerInvariant()})"),
            };
        }

        private static SchemaShape.Column Scalar(string name, DataViewType type) =>
            MLNetInternals.SchemaColumn(name, SchemaShape.Column.VectorKind.Scalar, type, false);

        /// <summary>A task's output columns: the options' names for a single task, <c>Score.&lt;task&gt;</c> and so on for several.</summary>
        private static (string Score, string PredictedLabel, string Probability) Names(TabularNetworkOptions o, TabularLabel task) => o.IsMultiTask
            ? ($"Score.{task.TaskName}", $"PredictedLabel.{task.TaskName}", $"Probability.{task.TaskName}")
            : (o.ScoreColumnName, o.PredictedLabelColumnName, o.ProbabilityColumnName);

        public override void BindLabels(IDataView preprocessed, DataViewSchema? validation)
        {
            foreach (var task in _tasks.Where(t => t.Kind == TabularTaskKind.Multiclass))
            {
                var binding = ClassLabels.Bind(Fit.Context, task.ColumnName, preprocessed);
                if (validation is not null)
                    ClassLabels.CheckValidation(validation, binding);
                Fit.TaskLabels.Add(binding);
            }
        }

        private LabelBinding Binding(TabularLabel task) => Fit.TaskLabels.Single(b => b.UserColumn == task.ColumnName);

        public override void CreateSources()
        {
            _plan = Scan(Fit.TrainingTrain);
            if (Fit.TrainingValidation is not null)
                foreach (var task in _tasks.Where(t => t.Kind == TabularTaskKind.Multiclass))
                    ClassLabels.Scan(Fit.TrainingValidation, Binding(task), "validation", allowMissing: _options.IsMultiTask);
            base.CreateSources();
        }

        // One pass over the training rows before any tensor is made: the numeric slots' means, deviations and missing
        // values, the regression labels' statistics, and the label checks, each naming its column.
        private TabularPlan Scan(IDataView train)
        {
            int slots = _numeric.Sum(n => n.Slots);
            DataViewSchema.Column[] inputs = slots > 0 ? [train.Schema[InputsColumn]] : [];
            var sum = new double[slots];
            var squares = new double[slots];
            var present = new long[slots];
            var readers = _tasks.Where(t => t.Kind != TabularTaskKind.Multiclass).ToDictionary(t => t.TaskName, t => LabelValue(train.Schema[t.ColumnName]));
            var labelStats = _tasks.ToDictionary(t => t.TaskName, _ => (Sum: 0.0, Squares: 0.0, Count: 0L, Ones: 0L));
            long rows = 0;
            using (var cursor = train.GetRowCursor([.. inputs, .. _tasks.Where(t => t.Kind != TabularTaskKind.Multiclass).Select(t => train.Schema[t.ColumnName])]))
            {
                var get = slots > 0 ? cursor.GetGetter<VBuffer<float>>(inputs[0]) : null;
                var labels = readers.ToDictionary(r => r.Key, r => r.Value(cursor));
                VBuffer<float> row = default;
                for (long r = 0; cursor.MoveNext(); r++, rows++)
                {
                    get?.Invoke(ref row);
                    var values = slots > 0 ? row.DenseValues().ToArray() : [];
                    for (int i = 0; i < slots; i++)
                    {
                        float v = values[i];
                        if (float.IsNaN(v))
                        {
                            if (!_options.HandleMissing)
                                throw new ArgumentOutOfRangeException(SlotColumn(i), $"Numeric column '{SlotColumn(i)}' has a missing value (NaN) at row {r}; " +
                                    "set HandleMissing to impute it (with an indicator input), or remove the row.");
                            continue;
                        }
                        if (float.IsInfinity(v))
                            throw new ArgumentOutOfRangeException(SlotColumn(i), $"Numeric column '{SlotColumn(i)}' has an infinite value at row {r}; expected finite numbers or NaN.");
                        sum[i] += v;
                        squares[i] += (double)v * v;
                        present[i]++;
                    }
                    foreach (var task in _tasks.Where(t => t.Kind != TabularTaskKind.Multiclass))
                    {
                        double y = labels[task.TaskName]();
                        if (double.IsNaN(y))
                        {
                            if (!_options.IsMultiTask)
                                throw new ArgumentOutOfRangeException(task.ColumnName, $"Label column '{task.ColumnName}' has a missing value at row {r}; every training row needs a label.");
                            continue;
                        }
                        if (double.IsInfinity(y) || task.Kind == TabularTaskKind.Binary && y is not (0 or 1))
                            throw new ArgumentOutOfRangeException(task.ColumnName, $"Label column '{task.ColumnName}' has the value {y} at row {r}; " +
                                (task.Kind == TabularTaskKind.Binary ? "a binary label is 0 or 1 (NaN when missing)." : "expected a finite number (NaN when missing)."));
                        var s = labelStats[task.TaskName];
                        labelStats[task.TaskName] = (s.Sum + y, s.Squares + y * y, s.Count + 1, s.Ones + (y == 1 ? 1 : 0));
                    }
                }
            }
            var mean = new float[slots];
            var scale = new float[slots];
            for (int i = 0; i < slots; i++)
            {
                double m = present[i] > 0 ? sum[i] / present[i] : 0;
                double variance = present[i] > 0 ? squares[i] / present[i] - m * m : 0;
                mean[i] = (float)m;
                // A constant slot keeps scale 1, so it reads as 0 rather than dividing by zero.
                scale[i] = variance > 1e-12 ? (float)Math.Sqrt(variance) : 1f;
            }
            // An indicator for each slot with a missing value in training (as scikit-learn's add_indicator does).
            long[] indicators = [.. Enumerable.Range(0, slots).Where(i => present[i] < rows).Select(i => (long)i)];
            var heads = new List<TabularHead>();
            foreach (var task in _tasks)
            {
                var s = labelStats[task.TaskName];
                switch (task.Kind)
                {
                    case TabularTaskKind.Multiclass:
                        var binding = Binding(task);
                        var counts = ClassLabels.Scan(train, binding, "training", allowMissing: _options.IsMultiTask);
                        if (counts.Sum() == 0)
                            throw NoLabels(task);
                        heads.Add(new TabularHead(task, binding.Info.ClassCount));
                        break;
                    case TabularTaskKind.Binary:
                        if (s.Count == 0)
                            throw NoLabels(task);
                        if (s.Ones == 0 || s.Ones == s.Count)
                            throw new ArgumentException($"Label column '{task.ColumnName}' has a single class ({(s.Ones == 0 ? "false" : "true")}) in the training data; " +
                                "a binary task needs both.", task.ColumnName);
                        heads.Add(new TabularHead(task, 1));
                        break;
                    default:
                        if (s.Count == 0)
                            throw NoLabels(task);
                        double m = s.Sum / s.Count, sd = Math.Sqrt(Math.Max(0, s.Squares / s.Count - m * m));
                        heads.Add(new TabularHead(task, 1, m, sd > 1e-12 ? sd : 1));
                        break;
                }
            }
            int[] categories = _options.CategoricalColumnNames.Select((name, c) => CategoryCount(train.Schema[_keys[c]], name)).ToArray();
            return new TabularPlan(mean, scale, indicators, categories, [.. categories.Select(_options.EmbeddingFor)], heads)
            {
                Image = _options.ImageColumnName is null ? null : [_options.ImageChannels, _options.ImageHeight, _options.ImageWidth],
                Series = _options.SeriesColumnName is null ? null : [_options.SeriesChannels, _options.SeriesLength],
            };
        }

        private static ArgumentException NoLabels(TabularLabel task) =>
            new($"Label column '{task.ColumnName}' has no value in the training data; task '{task.TaskName}' has nothing to learn from.", task.ColumnName);

        private int CategoryCount(DataViewSchema.Column keyed, string name)
        {
            ulong count = ((KeyDataViewType)keyed.Type).Count;
            if (count > (ulong)_options.MaxCategories)
                throw new ArgumentOutOfRangeException(name, $"Categorical column '{name}' has {count:N0} categories in the training data, more than MaxCategories " +
                    $"({_options.MaxCategories:N0}) allows for its embedding. Raise MaxCategories, or group rare categories first.");
            return (int)count;
        }

        private string SlotColumn(int slot)
        {
            foreach (var (column, slots) in _numeric)
            {
                if (slot < slots)
                    return column;
                slot -= slots;
            }
            return InputsColumn;
        }

        // A binary or regression label as a double (NaN when missing), from its own type.
        private static Func<DataViewRow, Func<double>> LabelValue(DataViewSchema.Column column) => column.Type switch
        {
            BooleanDataViewType => row =>
            {
                var get = row.GetGetter<bool>(column);
                bool v = false;
                return () => { get(ref v); return v ? 1 : 0; };
            },
            NumberDataViewType when column.Type == NumberDataViewType.Double => row =>
            {
                var get = row.GetGetter<double>(column);
                double v = 0;
                return () => { get(ref v); return v; };
            },
            _ => row =>
            {
                var get = row.GetGetter<float>(column);
                float v = 0;
                return () => { get(ref v); return v; };
            },
        };

        public override RowReader Reader(IDataView prepared, string role)
        {
            var plan = _plan ?? throw new InvalidOperationException("The tabular plan is made from the training data before rows are read.");
            var targets = plan.Heads.Select(h => h.Task.Kind == TabularTaskKind.Multiclass
                ? (Column: prepared.Schema[Binding(h.Task).KeyColumn], Head: h)
                : (Column: prepared.Schema[h.Task.ColumnName], Head: h)).ToArray();
            return new RowReader(new TabularFeatures(plan.NumericSlots > 0 ? prepared.Schema[InputsColumn] : null, plan.NumericSlots,
                    [.. _keys.Select(k => prepared.Schema[k])],
                    [.. new[] { (_options.ImageColumnName, plan.ImageSize), (_options.SeriesColumnName, plan.SeriesSize) }
                        .Where(v => v.Item1 is not null).Select(v => (prepared.Schema[v.Item1!], v.Item2))],
                    SlotColumn, _options.HandleMissing),
                new TabularTargets(targets, LabelValue, _options.IsMultiTask));
        }

        public override nn.Module<Tensor, Tensor> CreateNetwork() => new TabularNetwork(_plan!, _options);

        public override long? CountParameters() => _plan?.CountParameters(_options);

        public override string ShrinkHint => "a smaller Width or Depth, a smaller EmbeddingSize, or fewer categories";

        public override ITrainingObjective Objective => new TabularObjective(_plan!.Heads);

        public override OnnxExport Export(nn.Module<Tensor, Tensor> network)
        {
            var tabular = (TabularNetwork)network;
            string? numbers = _plan!.NumericSlots > 0 ? InputsColumn : null;
            string? image = _options.ImageColumnName, series = _options.SeriesColumnName;
            byte[] onnx = tabular.ExportOnnx(numbers, _keys, image, series, OutputColumn);
            return new OnnxExport(onnx, [.. new[] { numbers }.OfType<string>(), .. _keys, .. new[] { image, series }.OfType<string>()], [.. _plan.Heads.Select(OutputColumn)]);
        }

        private static string OutputColumn(TabularHead head) => Prefix + "Output." + head.Task.TaskName;

        public override bool ServesItsExport => false;

        public override (TransformerChain<ITransformer> Model, byte[] Onnx) Serve(nn.Module<Tensor, Tensor> network)
        {
            var fit = Fit;
            var env = fit.Context.Environment;
            var export = Export(network);
            var onnx = Onnx.OnnxServing.Apply(fit.Context, export.Bytes, export.Inputs, export.Outputs, fit.PreparedTrain);
            var parts = new List<ITransformer?> { fit.Preprocessing, onnx };
            var scored = onnx.Transform(fit.PreparedTrain);
            foreach (var head in _plan!.Heads)
            {
                var names = Names(_options, head.Task);
                string output = OutputColumn(head);
                // ML.NET's tails write Score (and Probability, PredictedLabel) under those names; they are renamed to the task's names.
                var tail = head.Task.Kind switch
                {
                    TabularTaskKind.Multiclass => MLNetInternals.CreateSoftmaxHead(env, output, Binding(head.Task).Info, head.Task.ColumnName),
                    TabularTaskKind.Binary => MLNetInternals.CreateBinaryLogitHead(env, scored.Schema, output),
                    _ => MLNetInternals.CreateScalarScoreHead(env, scored.Schema, output),
                };
                parts.Add(tail);
                scored = tail.Transform(scored);
                var defaults = head.Task.Kind switch
                {
                    TabularTaskKind.Multiclass => new[] { ("Score", names.Score), ("PredictedLabel", names.PredictedLabel) },
                    TabularTaskKind.Binary => [("Score", names.Score), ("Probability", names.Probability), ("PredictedLabel", names.PredictedLabel)],
                    _ => [("Score", names.Score)],
                };
                var renames = defaults.Where(d => d.Item1 != d.Item2).ToArray();
                if (renames.Length == 0)
                    continue;
                foreach (var (from, to) in renames)
                {
                    var copy = fit.Context.Transforms.CopyColumns(to, from).Fit(scored);
                    scored = copy.Transform(scored);
                    parts.Add(copy);
                }
                var dropDefaults = fit.Context.Transforms.DropColumns([.. renames.Select(r => r.Item1)]).Fit(scored);
                scored = dropDefaults.Transform(scored);
                parts.Add(dropDefaults);
            }
            var drop = fit.Context.Transforms.DropColumns([.. export.Outputs, .. TemporaryColumns]).Fit(scored);
            parts.Add(drop);
            return (Onnx.OnnxServing.Chain([.. parts]), export.Bytes);
        }
    }
}

/// <summary>
/// The tabular input of a row: the numeric slots (NaN allowed when missing values are handled), each categorical
/// column's raw key (0 missing, k the k-th category) as a float, then the image's pixels and the series' values (finite values only).
/// </summary>
internal sealed class TabularFeatures(DataViewSchema.Column? numbers, int slots, DataViewSchema.Column[] keys, (DataViewSchema.Column Column, int Size)[] vectors,
    Func<int, string> slotColumn, bool allowMissing) : FeatureReader
{
    public override long[] Shape => [slots + keys.Length + vectors.Sum(v => v.Size)];
    public override IEnumerable<DataViewSchema.Column> Columns =>
        [.. numbers is { } n ? [n] : Array.Empty<DataViewSchema.Column>(), .. keys, .. vectors.Select(v => v.Column)];

    public override RowWriter<float> Bind(DataViewRow row, string role)
    {
        var get = numbers is { } column ? row.GetGetter<VBuffer<float>>(column) : null;
        var getKeys = keys.Select(k => row.GetGetter<uint>(k)).ToArray();
        var streams = vectors.Select(v => (Write: new VectorFeatures(v.Column, [v.Size]).Bind(row, role), v.Size)).ToArray();
        VBuffer<float> buffer = default;
        uint key = 0;
        return (long index, Span<float> destination) =>
        {
            if (get is not null)
            {
                get(ref buffer);
                buffer.CopyTo(destination[..slots]);
            }
            for (int i = 0; i < slots; i++)
            {
                float v = destination[i];
                if (float.IsInfinity(v) || float.IsNaN(v) && !allowMissing)
                    throw new ArgumentOutOfRangeException(slotColumn(i), $"Numeric column '{slotColumn(i)}' has {(float.IsNaN(v) ? "a missing value (NaN)" : "an infinite value")} " +
                        $"at row {index}{SchemaView.In(role)}; expected finite numbers{(allowMissing ? " or NaN" : " (set HandleMissing to accept NaN)")}.");
            }
            for (int c = 0; c < getKeys.Length; c++)
            {
                getKeys[c](ref key);
                destination[slots + c] = key;
            }
            int offset = slots + keys.Length;
            foreach (var (write, size) in streams)
            {
                write(index, destination.Slice(offset, size));
                offset += size;
            }
        };
    }
}

/// <summary>One float per task: a class index (from the keyed label), 0 or 1, or a regression value standardized by the training statistics; NaN when missing.</summary>
internal sealed class TabularTargets((DataViewSchema.Column Column, TabularHead Head)[] tasks,
    Func<DataViewSchema.Column, Func<DataViewRow, Func<double>>> labelValue, bool allowMissing) : TargetReader
{
    public override ScalarType Type => ScalarType.Float32;
    public override long[] Shape => [tasks.Length];
    public override IEnumerable<DataViewSchema.Column> Columns => tasks.Select(t => t.Column);

    public override TargetWriter Bind(DataViewRow row, string role)
    {
        var readers = tasks.Select(t => t.Head.Task.Kind == TabularTaskKind.Multiclass ? KeyValue(row, t.Column) : labelValue(t.Column)(row)).ToArray();
        return (long index, ReadOnlySpan<float> _, Span<byte> destination) =>
        {
            var values = MemoryMarshal.Cast<byte, float>(destination);
            for (int t = 0; t < tasks.Length; t++)
            {
                var (column, head) = tasks[t];
                double y = readers[t]();
                if (double.IsNaN(y) && !allowMissing)
                    throw new ArgumentOutOfRangeException(head.Task.ColumnName,
                        $"Label column '{head.Task.ColumnName}' has a missing value at row {index}{SchemaView.In(role)}; every {role} row needs a label.");
                if (double.IsInfinity(y) || head.Task.Kind == TabularTaskKind.Binary && !double.IsNaN(y) && y is not (0 or 1))
                    throw new ArgumentOutOfRangeException(head.Task.ColumnName, $"Label column '{head.Task.ColumnName}' has the value {y} at row {index}{SchemaView.In(role)}; " +
                        (head.Task.Kind == TabularTaskKind.Binary ? "a binary label is 0 or 1 (NaN when missing)." : "expected a finite number (NaN when missing)."));
                values[t] = head.Task.Kind == TabularTaskKind.Regression ? (float)((y - head.LabelMean) / head.LabelScale) : (float)y;
            }
        };
    }

    private static Func<double> KeyValue(DataViewRow row, DataViewSchema.Column column)
    {
        var get = row.GetGetter<uint>(column);
        uint key = 0;
        return () =>
        {
            get(ref key);
            return key == 0 ? double.NaN : key - 1;
        };
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>What fitting any DeepVariants estimator produced.</summary>
/// <param name="Model">The fitted model: ML.NET and ONNX transformers only, so it saves with <c>mlContext.Model.Save</c> and predicts without TorchSharp.</param>
/// <param name="History">Loss and metrics per epoch, the epoch kept and the device used.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through.</param>
/// <param name="ParameterCount">Trainable parameters of the network.</param>
public record FitResult(TransformerChain<ITransformer> Model, TrainingHistory History, byte[] OnnxModel, long ParameterCount)
{
    /// <summary>The trained network and how it reads data, so it can be trained further (pruning fine-tunes it).</summary>
    internal TrainedNetwork? Trained { get; init; }
}

/// <summary>Any DeepVariants estimator: an ML.NET estimator whose <see cref="Train"/> also returns the history and the ONNX graph.</summary>
/// <example>
/// <code>
/// IDeepVariantsEstimator estimator = mlContext.Transforms.DeepVariants.CnnClassifier(28, 28);
/// FitResult result = estimator.Train(train, validation);
/// Console.WriteLine(result.History.Epochs[^1].ValidationMetric);
/// </code>
/// </example>
public interface IDeepVariantsEstimator : IEstimator<TransformerChain<ITransformer>>
{
    /// <summary>Trains on <paramref name="trainData"/>, validating on <paramref name="validationData"/> when given.</summary>
    FitResult Train(IDataView trainData, IDataView? validationData = null);
}

/// <summary>What a fitted model ends with after its ONNX graph.</summary>
internal abstract record ServingTail
{
    /// <summary>ML.NET's multiclass head over the graph's logits column: Score and a key-typed PredictedLabel.</summary>
    public sealed record Multiclass(string ScoreColumn, string PredictedLabelColumn) : ServingTail;

    /// <summary>ML.NET's regression tail over a one-value graph output: a scalar column named Score (an anomaly score).</summary>
    public sealed record ScalarScore(string InputColumn) : ServingTail
    {
        public string ScoreColumn => "Score";
    }

    /// <summary>Nothing: the graph's outputs are the columns (an embedding).</summary>
    public sealed record None : ServingTail;
}

/// <summary>The ONNX graph a fitted model serves through, with the columns it reads and writes.</summary>
internal sealed record OnnxExport(byte[] Bytes, string[] Inputs, string[] Outputs);

/// <summary>
/// One capability's part of one fit. Made from the schema by the estimator (the same checks for <c>Fit</c> and
/// <c>GetOutputSchema</c>), it declares what the fit needs (preprocessing, the label, the serving tail) and supplies
/// the few things that are the capability's own: how rows become tensors, the network, and its ONNX export. Everything
/// else, the skeleton in <see cref="DeepVariantsEstimator{TOptions, TResult}"/> does.
/// </summary>
internal abstract class FitTask
{
    /// <summary>ML.NET steps in front of the network (an image column's pixel extraction), fitted on the training data and kept in the model.</summary>
    public IEstimator<ITransformer>? Preprocessing { get; init; }

    /// <summary>Columns that preprocessing adds for the network only; the model drops them.</summary>
    public IReadOnlyList<string> TemporaryColumns { get; init; } = [];

    /// <summary>The classification label as the schema describes it (<see cref="ClassLabels.Check"/>), keyed and checked by the skeleton; null when there is none.</summary>
    public ColumnInfo? Label { get; init; }

    /// <summary>The classification label's column, or null.</summary>
    public string? ClassLabel => Label?.Name;

    /// <summary>Whether rows without a label may train (a graph sees every node, learns from the labelled ones).</summary>
    public bool AllowUnlabelledRows { get; init; }

    /// <summary>Text label values that mean "no label" (with <see cref="AllowUnlabelledRows"/>).</summary>
    public IReadOnlyCollection<string> UnlabelledValues { get; init; } = [];

    /// <summary>What the model ends with after its graph.</summary>
    public ServingTail Tail { get; init; } = new ServingTail.None();

    /// <summary>Columns the model adds besides the tail's (an embedding, a heatmap), for the output schema.</summary>
    public IReadOnlyList<SchemaShape.Column> ExtraOutputs { get; init; } = [];

    /// <summary>The column the network reads, for messages.</summary>
    public string InputColumn { get; init; } = "";

    /// <summary>Says what trains, for the log ("a LeNet CNN").</summary>
    public string Description { get; init; } = "a network";

    /// <summary>The column whose values are the network input as they are (no preprocessing), with its size; null otherwise.</summary>
    public (string Column, int Size)? RawInput { get; init; }

    /// <summary>The fit this task belongs to (set by the skeleton before any fit-time hook runs).</summary>
    public FitState Fit { get; internal set; } = null!;

    /// <summary>How rows of <paramref name="prepared"/> (preprocessed, label keyed) become inputs and targets.</summary>
    public abstract RowReader Reader(IDataView prepared, string role);

    /// <summary>A new network of this fit's architecture, with weights drawn from TorchSharp's current generator.</summary>
    public abstract nn.Module<Tensor, Tensor> CreateNetwork();

    /// <summary>
    /// The trainable parameters <see cref="CreateNetwork"/> would make, counted without allocating them, so that an
    /// architecture over <see cref="TrainingOptions.MaxParameters"/> is refused first; null when only building tells.
    /// </summary>
    public virtual long? CountParameters() => null;

    /// <summary>What to change to make the network smaller, for the <see cref="TrainingOptions.MaxParameters"/> message.</summary>
    public virtual string ShrinkHint => "a smaller architecture";

    /// <summary>The network's ONNX graph, reading the prepared columns and writing the tail's input (the logits column, say).</summary>
    public abstract OnnxExport Export(nn.Module<Tensor, Tensor> network);

    /// <summary>What the fit returns: the common result, or a capability's record with more in it.</summary>
    public virtual FitResult Result(FitResult result, nn.Module<Tensor, Tensor> network) => result;

    /// <summary>What the loss is (cross-entropy for classifiers).</summary>
    public virtual ITrainingObjective Objective => ClassLabel is not null
        ? new ClassificationObjective()
        : throw new InvalidOperationException("This task must say what its objective is.");

    /// <summary>Applied to training batches only (augmentation, noise).</summary>
    public virtual Func<Tensor, Tensor>? Corrupt => null;

    /// <summary>Adversarial training of the network, or null.</summary>
    public virtual AdversarialTraining? Adversarial => null;

    /// <summary>Whether each epoch draws the rows in a new order (a graph trains on all its nodes at once, in order).</summary>
    public virtual bool Shuffle => true;

    /// <summary>Trains the network: the shared loop, unless the capability trains otherwise (a GAN alternates two networks).</summary>
    public virtual TrainingHistory Train(TrainingRun run) => TorchTrainer.Train(run);

    /// <summary>The options the loop trains with (a graph trains in one batch of all its nodes).</summary>
    public virtual TrainingOptions TrainingOptions(TrainingOptions options) => options;

    /// <summary>
    /// Keys a task's own labels (several, for multi-task learning) on the preprocessed training data, adding each binding
    /// to <see cref="FitState.TaskLabels"/> so that every prepared view carries their key columns. Runs before any data is prepared.
    /// </summary>
    public virtual void BindLabels(IDataView preprocessed, DataViewSchema? validation) { }

    /// <summary>Data-dependent setup of a new network before training (channel statistics, say); the sources are ready.</summary>
    public virtual void Initialize(nn.Module<Tensor, Tensor> network) { }

    /// <summary>Builds <see cref="FitState.TrainSource"/> and <see cref="FitState.ValidationSource"/>; by default rows through <see cref="Reader"/>, in memory or streamed.</summary>
    public virtual void CreateSources()
    {
        var fit = Fit;
        fit.TrainSource = Load(fit.TrainingTrain, "training");
        if (fit.TrainingValidation is not null)
            fit.ValidationSource = Load(fit.TrainingValidation, "validation");
    }

    private IBatchSource Load(IDataView data, string role)
    {
        var reader = Reader(data, role);
        if (Fit.Extension?.Targets is { } targets)
            reader = reader.WithTargets(targets(data, role, Fit));
        long rows = Fit.Label is not null && role == "training" && Fit.ClassCounts is { } counts && !AllowUnlabelledRows
            ? counts.Sum()
            : DataLoading.CountRows(data);
        return DataLoading.Load(data, reader, rows, Fit.Options, role, Fit.Log);
    }

    /// <summary>The fitted ML.NET model around a trained network, and its ONNX graph: export, ML.NET's ONNX transformer, the tail.</summary>
    public virtual (TransformerChain<ITransformer> Model, byte[] Onnx) Serve(nn.Module<Tensor, Tensor> network) => ServeGraph(Export(network));

    /// <summary>Whether <see cref="Serve"/> is <see cref="ServeGraph"/> of the export, so a rewritten graph (int8) serves the same way.</summary>
    public virtual bool ServesItsExport => true;

    /// <summary>The fitted ML.NET model around an ONNX graph with the export's inputs and outputs: ML.NET's ONNX transformer, the tail.</summary>
    public (TransformerChain<ITransformer> Model, byte[] Onnx) ServeGraph(OnnxExport export)
    {
        var fit = Fit;
        var onnx = OnnxServing.Apply(fit.Context, export.Bytes, export.Inputs, export.Outputs, fit.PreparedTrain);
        var scored = onnx.Transform(fit.PreparedTrain);
        var (head, tailInput) = Tail switch
        {
            ServingTail.Multiclass multiclass => (MLNetInternals.CreateSoftmaxHead(fit.Context.Environment, ClassificationColumns.LogitsColumn,
                fit.Label!.Info, fit.Label.UserColumn, multiclass.ScoreColumn, multiclass.PredictedLabelColumn), ClassificationColumns.LogitsColumn),
            ServingTail.ScalarScore scalar => (MLNetInternals.CreateScalarScoreHead(fit.Context.Environment, scored.Schema, scalar.InputColumn),
                scalar.InputColumn),
            _ => ((ITransformer?)null, (string?)null),
        };
        var headed = head?.Transform(scored) ?? scored;
        string[] dropped = [.. tailInput is null ? [] : new[] { tailInput }, .. TemporaryColumns];
        var drop = dropped.Length == 0 ? null : fit.Context.Transforms.DropColumns(dropped).Fit(headed);
        return (OnnxServing.Chain(fit.Preprocessing, onnx, head, drop), export.Bytes);
    }

    /// <summary>Adds this task's outputs to an output schema.</summary>
    public void AddOutputs(Dictionary<string, SchemaShape.Column> columns)
    {
        if (Tail is ServingTail.Multiclass multiclass)
            ClassificationColumns.AddMulticlassOutputs(columns, Label!.Value, multiclass.ScoreColumn, multiclass.PredictedLabelColumn);
        if (Tail is ServingTail.ScalarScore scalar)
            columns[scalar.ScoreColumn] = MLNetInternals.SchemaColumn(scalar.ScoreColumn, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false);
        foreach (var column in ExtraOutputs)
            columns[column.Name] = column;
    }
}

/// <summary>What one fit knows as it goes: the context, the data at each stage, the label, the sources.</summary>
internal sealed class FitState : IDisposable
{
    public required ModelContext Context { get; init; }
    public required TrainingOptions Options { get; init; }
    public required Action<string> Log { get; init; }

    /// <summary>Writes a warning to MLContext.Log (what looks wrong but does not stop the fit).</summary>
    public required Action<string> Warn { get; init; }
    public required int Seed { get; init; }
    public required Device Device { get; init; }
    public TrainingExtension? Extension { get; init; }

    /// <summary>The fitted preprocessing, or null.</summary>
    public ITransformer? Preprocessing { get; set; }

    /// <summary>The label, keyed, or null.</summary>
    public LabelBinding? Label { get; set; }

    /// <summary>A task's own keyed labels besides <see cref="Label"/> (<see cref="FitTask.BindLabels"/>), applied by <see cref="Prepare"/>.</summary>
    public List<LabelBinding> TaskLabels { get; } = [];

    /// <summary>Training rows per class (labelled rows only).</summary>
    public long[]? ClassCounts { get; set; }

    /// <summary>The training data preprocessed and label keyed: what the serving chain is fitted on.</summary>
    public IDataView PreparedTrain { get; set; } = null!;

    /// <summary>What training reads: <see cref="PreparedTrain"/>, with an extension's columns (a teacher's scores) when there is one.</summary>
    public IDataView TrainingTrain { get; set; } = null!;
    public IDataView? TrainingValidation { get; set; }

    public IBatchSource TrainSource { get; set; } = null!;
    public IBatchSource? ValidationSource { get; set; }

    private readonly List<IDisposable> _owned = [];

    /// <summary>Disposes <paramref name="value"/> with the fit (tensors a task made for it).</summary>
    public T Own<T>(T value) where T : IDisposable
    {
        _owned.Add(value);
        return value;
    }

    /// <summary>Raw rows (as the user gives them) to what the network reads: preprocessing, then the label key.</summary>
    public IDataView Prepare(IDataView raw)
    {
        var prepared = Preprocessing?.Transform(raw) ?? raw;
        prepared = TaskLabels.Aggregate(prepared, (data, label) => label.Apply(data));
        return Label?.Apply(prepared) ?? prepared;
    }

    public void Dispose()
    {
        TrainSource?.Dispose();
        ValidationSource?.Dispose();
        foreach (var value in _owned)
            value.Dispose();
    }
}

/// <summary>
/// What changes a plain fit into another kind of training without a new estimator: knowledge distillation adds a
/// teacher's scores to the rows, reads them as targets, and trains on another loss.
/// </summary>
internal sealed class TrainingExtension
{
    /// <summary>Adds columns to the raw rows before preprocessing (a teacher's scores).</summary>
    public Func<IDataView, string, IDataView>? AddColumns { get; init; }

    /// <summary>The targets training reads instead of the task's, for prepared data of a role.</summary>
    public Func<IDataView, string, FitState, TargetReader>? Targets { get; init; }

    /// <summary>The loss instead of the task's.</summary>
    public ITrainingObjective? Objective { get; init; }

    /// <summary>Recomputes an augmented batch's targets from its inputs; null when the row targets stand.</summary>
    public Func<FitTask, Func<Tensor, Tensor, Tensor>?>? BatchTargets { get; init; }
}

/// <summary>
/// A trained network as a fit leaves it, with what training it further needs: a fresh copy with the trained weights,
/// the data preparation and row reading it was trained with, its objective, and how to serve a changed copy. Pruning
/// works through this alone, so it prunes any DeepVariants network, not only CNNs.
/// </summary>
internal sealed class TrainedNetwork
{
    public required Func<nn.Module<Tensor, Tensor>> Restore { get; init; }
    public required Func<IDataView, IDataView> Prepare { get; init; }
    public required Func<IDataView, string, RowReader> Reader { get; init; }
    public required Func<nn.Module<Tensor, Tensor>, (TransformerChain<ITransformer> Model, byte[] Onnx)> Serve { get; init; }

    /// <summary>Serves another ONNX graph with the export's inputs and outputs (an int8 rewrite); null where the task serves otherwise.</summary>
    public Func<OnnxExport, (TransformerChain<ITransformer> Model, byte[] Onnx)>? ServeGraph { get; init; }

    /// <summary>The float export of a network: its graph and the names of its inputs and outputs.</summary>
    public required Func<nn.Module<Tensor, Tensor>, OnnxExport> Export { get; init; }
    public required ITrainingObjective Objective { get; init; }
    public required TrainingOptions Options { get; init; }
    public required Func<SchemaShape, SchemaShape> OutputSchema { get; init; }

    /// <summary>The fit's schema check on other data (its role, such as "evaluation", in the message).</summary>
    public required Action<DataViewSchema, string> CheckSchema { get; init; }
    public LabelBinding? Label { get; init; }
}

/// <summary>
/// The fit skeleton every DeepVariants estimator shares: options validation, the one schema check (for <c>Fit</c> and
/// <c>GetOutputSchema</c>, and the validation set's), preprocessing, label keying with the missing-label, unseen-class and
/// single-class checks, seed and device, reading the data (in memory or streamed), the training loop with callbacks and
/// checkpoints, ONNX export, the ML.NET serving chain and one <see cref="FitResult"/>. A capability supplies a
/// <see cref="FitTask"/>: its rows-to-tensors reader, its network, its export and its tail.
/// </summary>
/// <typeparam name="TOptions">The capability's options.</typeparam>
/// <typeparam name="TResult">What <see cref="Train(IDataView, IDataView?)"/> returns.</typeparam>
public abstract class DeepVariantsEstimator<TOptions, TResult> : IDeepVariantsEstimator
    where TOptions : TrainingOptions where TResult : FitResult
{
    private readonly string _component;

    private protected DeepVariantsEstimator(ModelContext context, TOptions options, string component)
    {
        ArgumentNullException.ThrowIfNull(options);
        Context = context;
        Options = options;
        _component = component;
    }

    /// <summary>The options this estimator trains with.</summary>
    public TOptions Options { get; }

    private protected ModelContext Context { get; }

    /// <summary>Trains on <paramref name="input"/> and returns the ML.NET model.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input) => Train(input).Model;

    /// <summary>Trains on <paramref name="trainData"/>, validating (and early stopping, when enabled) on <paramref name="validationData"/>.</summary>
    public TransformerChain<ITransformer> Fit(IDataView trainData, IDataView? validationData) => Train(trainData, validationData).Model;

    /// <summary>Trains and returns the model with its training history and ONNX graph.</summary>
    public TResult Train(IDataView trainData, IDataView? validationData = null) => Run(trainData, validationData, null);

    FitResult IDeepVariantsEstimator.Train(IDataView trainData, IDataView? validationData) => Train(trainData, validationData);

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        var task = CreateTask(SchemaView.Of(inputSchema));
        var columns = inputSchema.ToDictionary(c => c.Name);
        task.AddOutputs(columns);
        return new SchemaShape(columns.Values);
    }

    /// <summary>The capability's task for a schema, after checking it (the same checks for both schema kinds).</summary>
    private protected abstract FitTask CreateTask(SchemaView schema);

    private protected TResult Run(IDataView trainData, IDataView? validationData, TrainingExtension? extension)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        Options.Validate();
        var task = CreateTask(SchemaView.Of(trainData.Schema));
        if (validationData is not null)
            CreateTask(SchemaView.Of(validationData.Schema, "validation"));

        var log = Context.Logger(_component);
        // Warnings before training (the data, the graph) go to the log at once and into the history with the trainer's.
        var logWarning = Context.Logger(_component, warning: true);
        var warnings = new List<string>();
        using var fit = new FitState
        {
            Context = Context, Options = Options, Log = log, Warn = message => { warnings.Add(message); logWarning(message); }, Extension = extension,
            Seed = Context.ResolveSeed(Options.Seed),
            Device = TorchDevices.Resolve(Options.Device, Context.Environment, log),
        };
        task.Fit = fit;

        fit.Preprocessing = task.Preprocessing?.Fit(trainData);
        var preprocessed = fit.Preprocessing?.Transform(trainData) ?? trainData;
        if (task.ClassLabel is { } label)
        {
            fit.Label = ClassLabels.Bind(Context, label, preprocessed, task.UnlabelledValues);
            if (validationData is not null)
                ClassLabels.CheckValidation(validationData.Schema, fit.Label);
        }
        task.BindLabels(preprocessed, validationData?.Schema);
        fit.PreparedTrain = fit.Prepare(trainData);
        fit.TrainingTrain = extension?.AddColumns is { } add ? fit.Prepare(add(trainData, "training")) : fit.PreparedTrain;
        if (validationData is not null)
            fit.TrainingValidation = extension?.AddColumns is { } addValidation ? fit.Prepare(addValidation(validationData, "validation")) : fit.Prepare(validationData);
        if (fit.Label is not null)
        {
            fit.ClassCounts = ClassLabels.Scan(fit.TrainingTrain, fit.Label, "training", task.AllowUnlabelledRows);
            if (!task.AllowUnlabelledRows && fit.ClassCounts.Sum() == 0)
                throw EmptyTrainingData(task);
            if (fit.TrainingValidation is not null)
                ClassLabels.Scan(fit.TrainingValidation, fit.Label, "validation", task.AllowUnlabelledRows);
        }

        if (task.CountParameters() is long planned)
            CheckParameterCount(task, planned);
        task.CreateSources();
        if (fit.TrainSource.Rows == 0)
            throw EmptyTrainingData(task);
        var trainingOptions = task.TrainingOptions(Options);
        // With MinimumSteps the run takes enough steps anyway; without it, one batch an epoch is worth a word.
        if (trainingOptions.BatchSize > fit.TrainSource.Rows && fit.TrainSource.Rows > 1 && trainingOptions.MinimumSteps == 0)
            fit.Warn($"BatchSize {trainingOptions.BatchSize} is larger than the {fit.TrainSource.Rows:N0} training rows, so every epoch is one batch of all of them " +
                "(one optimizer step an epoch); a smaller BatchSize, or MinimumSteps, usually trains better.");
        random.manual_seed(fit.Seed);
        using var network = task.CreateNetwork();
        task.Initialize(network);
        long parameters = network.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        CheckParameterCount(task, parameters);
        log($"Training {task.Description} ({parameters:N0} parameters) on {fit.TrainSource.Rows:N0} rows" +
            (fit.Label is null ? "" : $", {fit.Label.Info.ClassCount} classes") + $", device {fit.Device}, seed {fit.Seed}.");
        var objective = extension?.Objective ?? task.Objective;
        var history = task.Train(new TrainingRun
        {
            Model = network, Train = fit.TrainSource, Validation = fit.ValidationSource, Objective = objective,
            Options = trainingOptions, Device = fit.Device, Seed = fit.Seed, Log = log, Warn = logWarning, Corrupt = task.Corrupt, Shuffle = task.Shuffle,
            BatchTargets = task.Corrupt is null ? null : extension?.BatchTargets?.Invoke(task),
            Perturb = task.Adversarial is { } adversarial ? (network, x, y) => AdversarialExamples.ForTraining(network, x, y, adversarial) : null,
            Fingerprint = Fingerprint(fit, network),
        });
        if (warnings.Count > 0)
            history = history with { Warnings = [.. warnings, .. history.Warnings] };

        var (model, onnx) = task.Serve(network);
        var weights = Weights(network);
        var trained = new TrainedNetwork
        {
            Restore = () =>
            {
                var copy = task.CreateNetwork();
                using var reader = new BinaryReader(new MemoryStream(weights, writable: false));
                copy.load(reader);
                copy.eval();
                return copy;
            },
            Prepare = fit.Prepare,
            Reader = task.Reader,
            Serve = task.Serve,
            ServeGraph = task.ServesItsExport ? task.ServeGraph : null,
            Export = task.Export,
            Objective = task.Objective,
            Options = Options,
            OutputSchema = GetOutputSchema,
            CheckSchema = (schema, role) => CreateTask(SchemaView.Of(schema, role)),
            Label = fit.Label,
        };
        return (TResult)task.Result(new FitResult(model, history, onnx, parameters) { Trained = trained }, network);
    }

    // Found from the labels when there are some (before the class count can mislead), else from the sources.
    private static ArgumentException EmptyTrainingData(FitTask task) =>
        new($"The training data is empty: column '{task.InputColumn}' has no rows.", "trainData");

    private void CheckParameterCount(FitTask task, long count)
    {
        if (count > Options.MaxParameters)
            throw new ArgumentOutOfRangeException(nameof(TrainingOptions.MaxParameters), count,
                $"{char.ToUpperInvariant(task.Description[0])}{task.Description[1..]} for this data has {count:N0} trainable parameters, more than MaxParameters " +
                $"({Options.MaxParameters:N0}). Choose {task.ShrinkHint}, or raise MaxParameters if this machine has the memory " +
                $"(about {count * 16.0 / (1L << 30):F1} GB for weights, gradients and Adam's state).");
    }

    private static byte[] Weights(nn.Module network)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            network.save(writer);
        return stream.ToArray();
    }

    private static readonly JsonSerializerOptions FingerprintJson = new()
    {
        IgnoreReadOnlyProperties = true,
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    // A run is the same run when its options, seed, network shape and data sizes are.
    private string Fingerprint(FitState fit, nn.Module network)
    {
        string options;
        try
        {
            options = JsonSerializer.Serialize(Options, Options.GetType(), FingerprintJson);
        }
        catch (Exception e) when (e is NotSupportedException or JsonException or InvalidOperationException)
        {
            options = Options.GetType().FullName!;
        }
        var shapes = network.state_dict().Select(p => $"{p.Key}:{string.Join("x", p.Value.shape)}");
        return string.Join("|", options, fit.Seed, string.Join(",", shapes), fit.TrainSource.Rows, fit.ValidationSource?.Rows ?? -1);
    }
}

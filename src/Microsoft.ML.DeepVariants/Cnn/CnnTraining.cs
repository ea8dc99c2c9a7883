using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>A trained CNN before it is wrapped for ML.NET: the network, its input, its labels and what training did.</summary>
internal sealed record TrainedCnn(CnnNetwork Network, CnnInput Input, ITransformer? Preprocessing, LabelInfo Labels,
    string LabelColumn, ITransformer? LabelMapping, IDataView PreparedTrain, TrainingHistory History);

/// <summary>
/// Replaces the plain classifier's targets and loss; knowledge distillation adds the teacher's logits this way.
/// </summary>
internal interface ICnnTrainingTargets
{
    /// <summary>The loss the targets go with.</summary>
    ITrainingObjective Objective { get; }

    /// <summary>Targets for the rows of <paramref name="original"/> (the caller's data, before any preprocessing), given their class indices [N].</summary>
    Tensor ForRows(IDataView original, Tensor classIndices, LabelInfo labels, string role);

    /// <summary>Recomputes a training batch's targets from its augmented inputs [B, C, H, W]; null when the row targets stand.</summary>
    Func<Tensor, Tensor, Tensor>? ForAugmentedBatches(CnnInput input, LabelInfo labels);
}

/// <summary>What a fitted CNN keeps so that it can be trained further (pruning fine-tunes it): its weights and how it reads data.</summary>
/// <param name="Architecture">The network.</param>
/// <param name="Input">How the input column becomes a tensor.</param>
/// <param name="Preprocessing">The fitted pixel extraction for an image column, or null.</param>
/// <param name="Labels">The classes.</param>
/// <param name="LabelColumnName">The caller's label column.</param>
/// <param name="LabelMapping">The fitted value-to-key mapping of the label, or null when it was a key already.</param>
/// <param name="KeyedLabelColumn">The label's key column after the mapping.</param>
/// <param name="Options">The classifier's options (output column names among them).</param>
/// <param name="Weights">The network's state dictionary as TorchSharp writes it.</param>
internal sealed record CnnTrainedState(CnnArchitecture Architecture, CnnInput Input, ITransformer? Preprocessing, LabelInfo Labels,
    string LabelColumnName, ITransformer? LabelMapping, string KeyedLabelColumn, CnnClassifierOptions Options, byte[] Weights)
{
    public static CnnTrainedState Capture(CnnClassifierOptions options, TrainedCnn trained)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            trained.Network.save(writer);
        return new CnnTrainedState(options.Architecture, trained.Input, trained.Preprocessing, trained.Labels, options.LabelColumnName,
            trained.LabelMapping, trained.LabelColumn, options, stream.ToArray());
    }

    /// <summary>A new network with the captured weights.</summary>
    public CnnNetwork Restore()
    {
        var network = CnnNetwork.Create(Architecture, Input.Channels, Input.Height, Input.Width, Labels.ClassCount);
        using var reader = new BinaryReader(new MemoryStream(Weights, writable: false));
        network.load(reader);
        network.eval();
        return network;
    }

    /// <summary>The caller's data prepared as at training: pixels extracted and the label mapped to the same keys.</summary>
    public IDataView Prepare(IDataView data)
    {
        var prepared = Preprocessing?.Transform(data) ?? data;
        return LabelMapping?.Transform(prepared) ?? prepared;
    }
}

/// <summary>The fitting steps the CNN classifier and featurizer share.</summary>
internal static class CnnTraining
{
    public static TrainedCnn Train(ModelContext context, CnnOptions options, IDataView trainData, IDataView? validationData,
        ICnnTrainingTargets? targets = null)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        options.Validate();
        var log = context.Logger("DeepVariants.Cnn");

        var input = CnnInput.Resolve(context, trainData.Schema, options);
        ITransformer? preprocessing = input.Preprocessing?.Fit(trainData);
        IDataView train = preprocessing?.Transform(trainData) ?? trainData;
        IDataView? validation = validationData is null ? null : preprocessing?.Transform(validationData) ?? validationData;

        (string labelColumn, train, validation, var labelMapping) = ClassificationColumns.KeyedLabel(context, options.LabelColumnName, train, validation,
            type => type is PrimitiveDataViewType, "a key, text, number or boolean label");
        var labels = DataViewReader.RequireKeyLabel(train.Schema, labelColumn);
        if (validation is not null)
            DataViewReader.RequireFloatVector(validation.Schema, input.TensorColumn, input.Size);

        long[] shape = [input.Channels, input.Height, input.Width];
        using var trainSet = ReadWithTargets(train, trainData, input, labelColumn, options.LabelColumnName, shape, labels, targets, "training");
        if (trainSet.Count == 0)
            throw new ArgumentException($"The training data is empty: column '{options.FeatureColumnName}' has no rows.", nameof(trainData));
        using var validationSet = validation is null ? null : ReadWithTargets(validation, validationData!, input, labelColumn, options.LabelColumnName, shape, labels, targets, "validation");

        int seed = context.ResolveSeed(options.Seed);
        var device = TorchDevices.Resolve(options.Device, context.Environment, log);
        random.manual_seed(seed);
        var network = CnnNetwork.Create(options.Architecture, input.Channels, input.Height, input.Width, labels.ClassCount);
        try
        {
            log($"Training a {options.Architecture.Family} CNN ({network.ParameterCount:N0} parameters) on {trainSet.Count:N0} rows, {labels.ClassCount} classes, device {device}, seed {seed}.");
            var augment = options.Augmentation is { } augmentation ? augmentation.Apply : (Func<Tensor, Tensor>?)null;
            var history = TorchTrainer.Train(network, trainSet, validationSet, targets?.Objective ?? new ClassificationObjective(), options,
                device, seed, log, corrupt: augment, batchTargets: augment is null ? null : targets?.ForAugmentedBatches(input, labels));
            return new TrainedCnn(network, input, preprocessing, labels, labelColumn, labelMapping, train, history);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    private static TensorDataset ReadWithTargets(IDataView prepared, IDataView original, CnnInput input, string labelColumn, string labelName,
        long[] shape, LabelInfo labels, ICnnTrainingTargets? targets, string role)
    {
        var set = DataViewReader.Read(prepared, input.TensorColumn, input.Size, labelColumn, shape);
        if (role == "training" && set.Count > 0)
        {
            using var distinct = set.Targets.unique().Item1;
            if (distinct.shape[0] < 2)
            {
                string only = labels.ClassNames[set.Targets[0].item<long>()];
                set.Dispose();
                throw new ArgumentException(
                    $"Label column '{labelName}' has a single class ('{only}') in the training data; a classifier needs at least two.", nameof(prepared));
            }
        }
        if (targets is null)
            return set;
        try
        {
            var withTargets = new TensorDataset(set.Inputs, targets.ForRows(original, set.Targets, labels, role));
            set.Targets.Dispose();
            return withTargets;
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }
}

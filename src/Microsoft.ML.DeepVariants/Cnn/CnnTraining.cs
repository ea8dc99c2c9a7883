using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>A trained CNN before it is wrapped for ML.NET: the network, its input, its labels and what training did.</summary>
internal sealed record TrainedCnn(CnnNetwork Network, CnnInput Input, ITransformer? Preprocessing, LabelInfo Labels,
    string LabelColumn, IDataView PreparedTrain, TrainingHistory History);

/// <summary>The fitting steps the CNN classifier and featurizer share.</summary>
internal static class CnnTraining
{
    public static TrainedCnn Train(ModelContext context, CnnOptions options, IDataView trainData, IDataView? validationData)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        options.Validate();
        var log = context.Logger("DeepVariants.Cnn");

        var input = CnnInput.Resolve(context, trainData.Schema, options);
        ITransformer? preprocessing = input.Preprocessing?.Fit(trainData);
        IDataView train = preprocessing?.Transform(trainData) ?? trainData;
        IDataView? validation = validationData is null ? null : preprocessing?.Transform(validationData) ?? validationData;

        (string labelColumn, train, validation) = ClassificationColumns.KeyedLabel(context, options.LabelColumnName, train, validation,
            type => type is PrimitiveDataViewType, "a key, text, number or boolean label");
        var labels = DataViewReader.RequireKeyLabel(train.Schema, labelColumn);
        if (validation is not null)
            DataViewReader.RequireFloatVector(validation.Schema, input.TensorColumn, input.Size);

        long[] shape = [input.Channels, input.Height, input.Width];
        using var trainSet = DataViewReader.Read(train, input.TensorColumn, input.Size, labelColumn, shape);
        if (trainSet.Count == 0)
            throw new ArgumentException($"The training data is empty: column '{options.FeatureColumnName}' has no rows.", nameof(trainData));
        using (var distinct = trainSet.Targets.unique().Item1)
        {
            if (distinct.shape[0] < 2)
                throw new ArgumentException(
                    $"Label column '{options.LabelColumnName}' has a single class ('{labels.ClassNames[trainSet.Targets[0].item<long>()]}') in the training data; a classifier needs at least two.",
                    nameof(trainData));
        }
        using var validationSet = validation is null ? null : DataViewReader.Read(validation, input.TensorColumn, input.Size, labelColumn, shape);

        int seed = context.ResolveSeed(options.Seed);
        var device = TorchDevices.Resolve(options.Device, context.Environment, log);
        random.manual_seed(seed);
        var network = CnnNetwork.Create(options.Architecture, input.Channels, input.Height, input.Width, labels.ClassCount);
        try
        {
            log($"Training a {options.Architecture.Family} CNN ({network.ParameterCount:N0} parameters) on {trainSet.Count:N0} rows, {labels.ClassCount} classes, device {device}, seed {seed}.");
            var history = TorchTrainer.Train(network, trainSet, validationSet, new ClassificationObjective(), options, device, seed, log,
                corrupt: options.Augmentation is { } augmentation ? augmentation.Apply : null);
            return new TrainedCnn(network, input, preprocessing, labels, labelColumn, train, history);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}

using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>What a structural compression produced: the served model, its report, its ONNX graph and the fine-tuning epochs.</summary>
/// <param name="Model">The compressed model, an ordinary ML.NET model of the same columns as the fitted one (saves with <c>mlContext.Model.Save</c>).</param>
/// <param name="Report">What changed, layer by layer, and accuracy before and after.</param>
/// <param name="OnnxModel">The ONNX graph the model serves through.</param>
/// <param name="History">The fine-tuning epochs, or null when there were none.</param>
public sealed record CompressionResult<TReport>(TransformerChain<ITransformer> Model, TReport Report, byte[] OnnxModel, TrainingHistory? History);

/// <summary>
/// The steps every compression of a fitted network shares: read the data as the fitted model read it, restore its
/// network, measure accuracy, rewrite the network, measure again, fine-tune, measure, and serve the result the way the
/// fitted model is served.
/// </summary>
internal static class CompressionRun
{
    /// <summary>The accuracies of one run: as fitted, right after the rewrite, after fine-tuning (null without evaluation data).</summary>
    public sealed record Accuracies(double? Before, double? Rewritten, double? After);

    /// <summary>The fitted model's trained network, or a clear error naming the argument when the fit kept none.</summary>
    public static TrainedNetwork Trained(FitResult fitted, string what)
    {
        ArgumentNullException.ThrowIfNull(fitted);
        return fitted.Trained ?? throw new ArgumentException(
            $"{what} needs the FitResult that a DeepVariants estimator's Train returned (CnnClassifier(...).Train, Distill(...).Train); this one keeps no trained weights.", nameof(fitted));
    }

    /// <summary>
    /// Runs the steps: <paramref name="rewrite"/> gets the restored network (on the device) and returns the network to
    /// fine-tune and serve; <paramref name="afterStep"/> runs after each fine-tuning step (pruning's masks), and
    /// <paramref name="finished"/> reads the final network before it is disposed.
    /// </summary>
    public static (TransformerChain<ITransformer> Model, byte[] Onnx, TrainingHistory? History, Accuracies Accuracy) Run(
        ModelContext context, TrainedNetwork trained, TrainingOptions options, string component, IDataView trainData, IDataView? evaluationData,
        Func<nn.Module<Tensor, Tensor>, nn.Module<Tensor, Tensor>> rewrite, Action? afterStep = null, Action<nn.Module<Tensor, Tensor>>? finished = null)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        var log = context.Logger(component);
        using var trainSet = Read(trained, options, trainData, "training", log);
        using var evaluationSet = evaluationData is null ? null : Read(trained, options, evaluationData, "evaluation", log);
        var device = TorchDevices.Resolve(options.Device, context.Environment, log);
        double? Accuracy(nn.Module<Tensor, Tensor> network) => evaluationSet is null ? null
            : TorchTrainer.Evaluate(network, evaluationSet, trained.Objective, options.BatchSize, device).Metric;

        var restored = trained.Restore();
        restored.to(device);
        double? before = Accuracy(restored);
        // A rewritten network shares its unchanged layers with the restored one, so only the result is disposed.
        using var network = rewrite(restored);
        double? rewritten = Accuracy(network);

        TrainingHistory? history = null;
        if (options.Epochs > 0)
        {
            int seed = context.ResolveSeed(options.Seed);
            random.manual_seed(seed);
            history = TorchTrainer.Train(new TrainingRun
            {
                Model = network, Train = trainSet, Validation = evaluationSet, Objective = trained.Objective, Options = options,
                Device = device, Seed = seed, Log = log, AfterStep = afterStep,
            });
            // Early stopping may restore an earlier epoch's weights.
            afterStep?.Invoke();
        }
        double? after = options.Epochs > 0 ? Accuracy(network) : rewritten;
        log($"Evaluation accuracy {before:P2} as fitted, {rewritten:P2} after the rewrite, {after:P2} after {options.Epochs} fine-tuning epoch(s).");
        finished?.Invoke(network);
        var (model, onnx) = trained.Serve(network);
        return (model, onnx, history, new Accuracies(before, rewritten, after));
    }

    // The data as the fitted model read it: same preprocessing, same class order, same row reader.
    private static IBatchSource Read(TrainedNetwork trained, TrainingOptions options, IDataView data, string role, Action<string> log)
    {
        // The fitted model's own schema check first, so a column of another shape is named before any row is read.
        trained.CheckSchema(data.Schema, role);
        var prepared = trained.Prepare(data);
        if (trained.Label is { } label)
            ClassLabels.Scan(prepared, label, role);
        var reader = trained.Reader(prepared, role);
        return DataLoading.Load(prepared, reader, DataLoading.CountRows(prepared), options, role, log);
    }
}

using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>The CNN's part of a fit: images (or CHW vectors) in, a CnnNetwork, its export with logits, an embedding or a heatmap.</summary>
internal sealed class CnnTask : FitTask
{
    private CnnTask(CnnOptions options, CnnInput input)
    {
        Options = options;
        Input = input;
    }

    public CnnOptions Options { get; }
    public CnnInput Input { get; }

    /// <summary>The task of a classifier (<paramref name="embeddingColumn"/> null) or of a featurizer, after checking the schema.</summary>
    public static CnnTask Create(ModelContext context, SchemaView schema, CnnOptions options, string? embeddingColumn)
    {
        var input = CnnInput.Resolve(context, schema, options);
        int kernel = options.Architecture.EffectiveKernelSize, side = Math.Min(input.Height, input.Width);
        if (kernel > side)
            throw new ArgumentOutOfRangeException(nameof(CnnArchitecture.KernelSize), kernel,
                $"The {options.Architecture.Family} kernel of {kernel}x{kernel} is larger than the {input.Height}x{input.Width} images in column " +
                $"'{options.FeatureColumnName}'; set Architecture.KernelSize to an odd number up to {(side % 2 == 1 ? side : side - 1)}, or use larger images.");
        var label = ClassLabels.Check(schema, options.LabelColumnName);
        var classifier = options as CnnClassifierOptions;
        var extra = new List<SchemaShape.Column>();
        if (embeddingColumn is not null)
            extra.Add(MLNetInternals.SchemaColumn(embeddingColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false));
        if (classifier?.GradCamColumnName is { } camColumn)
            extra.Add(MLNetInternals.SchemaColumn(camColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false));
        return new CnnTask(options, input)
        {
            Preprocessing = input.Preprocessing,
            TemporaryColumns = input.TemporaryColumns,
            Label = label,
            Tail = classifier is null ? new ServingTail.None() : new ServingTail.Multiclass(classifier.ScoreColumnName, classifier.PredictedLabelColumnName),
            ExtraOutputs = extra,
            Description = $"a {options.Architecture.Family} CNN",
            InputColumn = options.FeatureColumnName,
            RawInput = input.Preprocessing is null ? (input.TensorColumn, input.Size) : null,
            EmbeddingColumn = embeddingColumn,
        };
    }

    public string? EmbeddingColumn { get; private init; }

    public override RowReader Reader(IDataView prepared, string role) => new(
        new VectorFeatures(prepared.Schema[Input.TensorColumn], [Input.Channels, Input.Height, Input.Width]),
        new ClassTarget(prepared.Schema[Fit.Label!.KeyColumn], Fit.Label.UserColumn));

    public override nn.Module<Tensor, Tensor> CreateNetwork() =>
        CnnNetwork.Create(Options.Architecture, Input.Channels, Input.Height, Input.Width, Classes());

    // Called before any row is read, so a GradCamClass the labels do not have is refused before training.
    public override long? CountParameters() => Options.Architecture.ParameterCount(Input.Channels, Input.Height, Input.Width, Classes());

    public override string ShrinkHint => "a smaller Depth, Width or HiddenSize in Architecture";

    private int Classes()
    {
        int classes = Fit.Label!.Info.ClassCount;
        if (Options is CnnClassifierOptions { GradCamClass: { } explained } && (explained < 0 || explained >= classes))
            throw new ArgumentOutOfRangeException(nameof(CnnClassifierOptions.GradCamClass), explained,
                $"GradCamClass must be a class index from 0 to {classes - 1}: label column '{Options.LabelColumnName}' has {classes} classes.");
        return classes;
    }

    public override Func<Tensor, Tensor>? Corrupt => Options.Augmentation is { } augmentation ? augmentation.Apply : null;

    public override AdversarialTraining? Adversarial => (Options as CnnClassifierOptions)?.Adversarial;

    public override OnnxExport Export(nn.Module<Tensor, Tensor> module)
    {
        var network = (CnnNetwork)module;
        if (EmbeddingColumn is not null)
            return new OnnxExport(network.ExportOnnx(Input.TensorColumn, embeddingOutput: EmbeddingColumn, logitsOutput: null), [Input.TensorColumn], [EmbeddingColumn]);
        var options = (CnnClassifierOptions)Options;
        var gradCam = options.GradCamColumnName is { } camColumn ? (camColumn, (long?)options.GradCamClass) : ((string, long?)?)null;
        string logits = ClassificationColumns.LogitsColumn;
        byte[] onnx = network.ExportOnnx(Input.TensorColumn, embeddingOutput: null, logitsOutput: logits, gradCam);
        return new OnnxExport(onnx, [Input.TensorColumn], gradCam is null ? [logits] : [logits, gradCam.Value.Item1]);
    }
}

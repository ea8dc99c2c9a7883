using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Tabular;

/// <summary>One head of a tabular network: its task, its outputs (classes, or 1), and for a regression the label's training mean and standard deviation.</summary>
internal sealed record TabularHead(TabularLabel Task, int Outputs, double LabelMean = 0, double LabelScale = 1);

/// <summary>
/// What a tabular network is built from, found on the training data: the numeric slots with their means and
/// standard deviations, the slots that get a missing-value indicator, the categories of each categorical column,
/// and one head per task.
/// </summary>
internal sealed record TabularPlan(float[] NumericMean, float[] NumericScale, long[] IndicatorSlots, int[] Categories, int[] EmbeddingSizes,
    IReadOnlyList<TabularHead> Heads)
{
    /// <summary>The image stream's [channels, height, width], or null when there is none.</summary>
    public int[]? Image { get; init; }

    /// <summary>The series stream's [channels, steps], or null when there is none.</summary>
    public int[]? Series { get; init; }

    public int SeriesSize => Series is { } s ? s[0] * s[1] : 0;

    /// <summary>The streams the network joins: the table, the image, the series, those present.</summary>
    public int Streams => (HasTable ? 1 : 0) + (Image is null ? 0 : 1) + (Series is null ? 0 : 1);

    public int NumericSlots => NumericMean.Length;

    public int ImageSize => Image is { } i ? i[0] * i[1] * i[2] : 0;

    /// <summary>True when the network reads numbers or categories.</summary>
    public bool HasTable => NumericSlots + Categories.Length > 0;

    /// <summary>The values of one input row: the numeric slots, one category code per categorical column (0 missing, k the k-th category), the image's pixels, the series' values.</summary>
    public int InputSize => NumericSlots + Categories.Length + ImageSize + SeriesSize;

    /// <summary>What the first layer reads: standardized numbers, indicators, embeddings.</summary>
    public int FeatureSize => NumericSlots + IndicatorSlots.Length + EmbeddingSizes.Sum();

    public int OutputSize => Heads.Sum(h => h.Outputs);

    /// <summary>Trainable parameters of the network this plan and <paramref name="o"/> describe, counted without building it.</summary>
    public long CountParameters(TabularNetworkOptions o)
    {
        long w = o.Width, count = Categories.Zip(EmbeddingSizes, (k, e) => (k + 1L) * e).Sum();
        long norm = o.Normalization == TabularNormalization.None ? 0 : 2 * w;
        if (HasTable)
            count += FeatureSize * w + w;                                               // stem
        if (Image is { } image)
        {
            count += image[0] * 32L * 9 + 32 + 2 * 32 + 32L * 64 * 9 + 64 + 2 * 64;       // two convolution stages with batch norm
            count += 64L * (image[1] / 4) * (image[2] / 4) * w + w;                      // to the shared width
        }
        if (Series is { } series)
            count += series[0] * 64L * 7 + 64 + 2 * 64 + 64L * 128 * 5 + 128 + 2 * 128 + 128L * 64 * 3 + 64 + 2 * 64 + 64 * w + w;
        if (Streams > 1)
        {
            long joined = Streams * w, output = o.Fusion == StreamFusion.Concatenate ? w : joined;
            count += joined * output + output;                                          // fusion
        }
        count += o.Residual ? o.Depth * (norm + 2 * (w * w + w)) : (o.Depth - 1) * (w * w + w) + o.Depth * norm;
        count += (o.Residual ? norm : 0) + Heads.Sum(h => w * h.Outputs + h.Outputs);
        return count;
    }
}

/// <summary>
/// A deep network for a table (an MLP in the sense of Gorishniy et al. 2021, "Revisiting deep learning models for
/// tabular data"). Each row is its numeric slots and one code per categorical column. A missing number (NaN) reads as
/// its training mean, with an indicator input where training saw missing values; the numbers are standardized; each
/// category code picks a row of its column's embedding table (row 0 for a missing or unseen value); a linear stem
/// takes them to the shared width. An image stream (two convolution stages, then a linear layer to the same width) and a
/// series stream (three temporal convolutions, global average pooling, a linear layer) join it by concatenation and a
/// linear layer, or by a gated sum Σ g_i s_i with per-unit gates g = softmax over the streams of W [s_1; s_2; ...]. Then
/// <list type="bullet">
/// <item>residual (default): h = h + Dropout(Linear(Dropout(ReLU(Linear(Norm(h)))))) per block; ReLU(Norm(h)) to the heads;</item>
/// <item>plain: h = Dropout(ReLU(Norm(h))) after the stem, and after each further Linear, to the heads;</item>
/// </list>
/// and one linear head per task, whose outputs are concatenated: a multiclass task's logits, a binary task's logit, a
/// regression's standardized value (the export scales it back).
/// </summary>
internal sealed class TabularNetwork : Module<Tensor, Tensor>
{
    private readonly TabularPlan _plan;
    private readonly TabularNetworkOptions _options;
    private readonly Tensor numeric_mean;
    private readonly Tensor numeric_scale;
    private readonly Tensor indicator_slots;
    private readonly ModuleList<Embedding> embeddings;
    private readonly Linear? stem;
    private readonly Sequential? image_trunk;
    private readonly Sequential? series_trunk;
    private readonly Linear? fusion;
    private readonly ModuleList<Module<Tensor, Tensor>> norms;
    private readonly ModuleList<Linear> first;
    private readonly ModuleList<Linear> second;
    private readonly Module<Tensor, Tensor>? final_norm;
    private readonly Dropout dropout;
    private readonly ModuleList<Linear> heads;

    public TabularNetwork(TabularPlan plan, TabularNetworkOptions options) : base(nameof(TabularNetwork))
    {
        _plan = plan;
        _options = options;
        int w = options.Width;
        numeric_mean = tensor(plan.NumericMean);
        numeric_scale = tensor(plan.NumericScale);
        indicator_slots = tensor(plan.IndicatorSlots);
        embeddings = new ModuleList<Embedding>(plan.Categories.Zip(plan.EmbeddingSizes, (k, e) => Embedding(k + 1, e)).ToArray());
        stem = plan.HasTable ? Linear(plan.FeatureSize, w) : null;
        if (plan.Image is [int c, int height, int width])
        {
            image_trunk = Sequential(
                ("conv1", Conv2d(c, 32, 3, padding: 1)), ("bn1", BatchNorm2d(32)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
                ("conv2", Conv2d(32, 64, 3, padding: 1)), ("bn2", BatchNorm2d(64)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
                ("flatten", Flatten()), ("to_width", Linear(64L * (height / 4) * (width / 4), w)));
        }
        if (plan.Series is [int seriesChannels, _])
        {
            // A series is a one-row image [C, 1, T]: 1 x k convolutions are temporal ones, with ONNX's own Conv.
            series_trunk = Sequential(
                ("conv1", Conv2d(seriesChannels, 64, (1, 7), padding: (0, 3))), ("bn1", BatchNorm2d(64)), ("relu1", ReLU()),
                ("conv2", Conv2d(64, 128, (1, 5), padding: (0, 2))), ("bn2", BatchNorm2d(128)), ("relu2", ReLU()),
                ("conv3", Conv2d(128, 64, (1, 3), padding: (0, 1))), ("bn3", BatchNorm2d(64)), ("relu3", ReLU()),
                ("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("to_width", Linear(64, w)));
        }
        if (plan.Streams > 1)
            fusion = Linear(plan.Streams * w, options.Fusion == StreamFusion.Concatenate ? w : plan.Streams * w);
        int blocks = options.Depth;
        norms = new ModuleList<Module<Tensor, Tensor>>(options.Normalization == TabularNormalization.None ? [] : Enumerable.Range(0, blocks).Select(_ => Norm(w)).ToArray());
        // A plain stack's first layer is the stem; each further layer is a Linear of its own.
        first = new ModuleList<Linear>(Enumerable.Range(0, options.Residual ? blocks : blocks - 1).Select(_ => Linear(w, w)).ToArray());
        second = new ModuleList<Linear>(options.Residual ? Enumerable.Range(0, blocks).Select(_ => Linear(w, w)).ToArray() : []);
        final_norm = options.Residual && options.Normalization != TabularNormalization.None ? Norm(w) : null;
        dropout = Dropout(options.Dropout);
        heads = new ModuleList<Linear>(plan.Heads.Select(h => Linear(w, h.Outputs)).ToArray());
        RegisterComponents();
    }

    public TabularPlan Plan => _plan;

    private Module<Tensor, Tensor> Norm(int width) => _options.Normalization == TabularNormalization.Batch
        ? BatchNorm1d(width) : LayerNorm(width);

    private Tensor Normalize(int block, Tensor h) => norms.Count == 0 ? h : norms[block].call(h);

    public override Tensor forward(Tensor input)
    {
        int p = _plan.NumericSlots;
        var parts = new List<Tensor>();
        if (p > 0)
        {
            var numbers = input.narrow(1, 0, p);
            var missing = numbers.isnan();
            parts.Add((where(missing, numeric_mean.expand_as(numbers), numbers) - numeric_mean) / numeric_scale);
            if (_plan.IndicatorSlots.Length > 0)
                parts.Add(missing.index_select(1, indicator_slots).to_type(ScalarType.Float32));
        }
        for (int c = 0; c < embeddings.Count; c++)
            parts.Add(embeddings[c].call(input.select(1, p + c).to_type(ScalarType.Int64)));
        var table = stem?.call(cat(parts, 1));
        var image = _plan.Image is [int channels, int height, int width]
            ? image_trunk!.call(input.narrow(1, p + embeddings.Count, _plan.ImageSize).reshape(-1, channels, height, width))
            : null;
        var series = _plan.Series is [int seriesChannels, int steps]
            ? series_trunk!.call(input.narrow(1, p + embeddings.Count + _plan.ImageSize, _plan.SeriesSize).reshape(-1, steps, seriesChannels).permute(0, 2, 1).unsqueeze(2))
            : null;
        Tensor[] streams = [.. new[] { table, image, series }.OfType<Tensor>()];
        var h = streams.Length == 1 ? streams[0] : Fuse(streams);
        if (_options.Residual)
        {
            for (int i = 0; i < _options.Depth; i++)
                h = h + dropout.call(second[i].call(dropout.call(functional.relu(first[i].call(Normalize(i, h))))));
            h = functional.relu(final_norm?.call(h) ?? h);
        }
        else
        {
            for (int i = 0; i < _options.Depth; i++)
                h = dropout.call(functional.relu(Normalize(i, i == 0 ? h : first[i - 1].call(h))));
        }
        return cat(heads.Select(head => head.call(h)).ToList(), 1);
    }

    // The streams at the shared width: concatenated through a linear layer, or summed with per-unit softmax gates over them.
    private Tensor Fuse(Tensor[] streams)
    {
        var joined = fusion!.call(cat(streams, 1));
        if (_options.Fusion == StreamFusion.Concatenate)
            return joined;
        var gates = joined.view(-1, streams.Length, _options.Width).softmax(1);
        return stack(streams, 1).mul(gates).sum(1);
    }

    /// <summary>
    /// The ONNX graph of one row: input <paramref name="numbersColumn"/> [numeric slots] as the model's preprocessing
    /// writes it, one UInt32 input [1, 1] per categorical key column, the image column [C x H x W] when there is an image
    /// stream, and one output per head, named by
    /// <paramref name="outputName"/>: logits [K], a binary logit [1], a regression's value in the label's units [1].
    /// </summary>
    public byte[] ExportOnnx(string? numbersColumn, IReadOnlyList<string> keyColumns, string? imageColumn, string? seriesColumn, Func<TabularHead, string> outputName)
    {
        eval();
        // ML.NET's ONNX transformer feeds one row a call, without a batch dimension: the row becomes a batch of one.
        var b = new OnnxGraphBuilder("DeepVariantsTabular");
        int p = _plan.NumericSlots;
        var parts = new List<string>();
        string? zero = embeddings.Count > 0 ? b.AddInitializer("zero", [0L]) : null;
        string rowAxis = b.AddInitializer("row_axis", [0L]);
        if (p > 0)
        {
            string numbers = b.AddNode("Unsqueeze", [b.AddInput(numbersColumn!, batched: false, p), rowAxis]);
            string missing = b.AddNode("IsNaN", [numbers]);
            string mean = b.AddInitializer("numeric_mean", numeric_mean);
            string filled = b.AddNode("Where", [missing, mean, numbers]);
            parts.Add(b.AddNode("Div", [b.AddNode("Sub", [filled, mean]), b.AddInitializer("numeric_scale", numeric_scale)]));
            if (_plan.IndicatorSlots.Length > 0)
                parts.Add(b.AddNode("Cast", [b.AddNode("Gather", [missing, b.AddInitializer("indicator_slots", _plan.IndicatorSlots)], OnnxGraphBuilder.Int("axis", 1))],
                    OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Float)));
        }
        for (int c = 0; c < embeddings.Count; c++)
        {
            // A key past the table (another key type than training's) reads as missing.
            // A scalar column arrives as [1, 1].
            string key = b.AddNode("Reshape", [b.AddInput(keyColumns[c], TensorProto.Types.DataType.Uint32, 1L, 1L), b.AddInitializer("key_shape", [1L])]);
            string code = b.AddNode("Cast", [key], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Int64));
            code = b.AddNode("Where", [b.AddNode("LessOrEqual", [code, b.AddInitializer("last", [(long)_plan.Categories[c]])]), code, zero!]);
            parts.Add(b.AddNode("Gather", [b.AddInitializer("embedding", embeddings[c].weight!), code], OnnxGraphBuilder.Int("axis", 0)));
        }
        string? table = stem is null ? null : Gemm(b, stem, parts.Count == 1 ? parts[0] : b.AddNode("Concat", parts, OnnxGraphBuilder.Int("axis", 1)));
        string? image = null;
        if (_plan.Image is [int channels, int height, int width])
        {
            string pixels = b.AddNode("Reshape", [b.AddInput(imageColumn!, batched: false, _plan.ImageSize), b.AddInitializer("image_shape", [1L, channels, height, width])]);
            using var example = zeros(1, channels, height, width);
            image = OnnxModuleExporter.Export(b, image_trunk!, pixels, example);
        }
        string? series = null;
        if (_plan.Series is [int seriesChannels, int steps])
        {
            string values = b.AddNode("Reshape", [b.AddInput(seriesColumn!, batched: false, _plan.SeriesSize), b.AddInitializer("series_shape", [1L, steps, seriesChannels])]);
            values = b.AddNode("Unsqueeze", [b.AddNode("Transpose", [values], OnnxGraphBuilder.Ints("perm", [0, 2, 1])), b.AddInitializer("height_axis", [2L])]);
            using var example = zeros(1, seriesChannels, 1, steps);
            series = OnnxModuleExporter.Export(b, series_trunk!, values, example);
        }
        string[] streams = [.. new[] { table, image, series }.OfType<string>()];
        string h = streams.Length == 1 ? streams[0] : Gemm(b, fusion!, b.AddNode("Concat", streams, OnnxGraphBuilder.Int("axis", 1)));
        if (streams.Length > 1 && _options.Fusion == StreamFusion.GatedSum)
        {
            string gates = b.AddNode("Softmax", [b.AddNode("Reshape", [h, b.AddInitializer("gate_shape", [1L, streams.Length, _options.Width])])], OnnxGraphBuilder.Int("axis", 1));
            string stacked = b.AddNode("Concat", [.. streams.Select(s => b.AddNode("Unsqueeze", [s, b.AddInitializer("stream_axis", [1L])]))], OnnxGraphBuilder.Int("axis", 1));
            h = b.AddNode("ReduceSum", [b.AddNode("Mul", [stacked, gates]), b.AddInitializer("stream_axis", [1L])], OnnxGraphBuilder.Int("keepdims", 0));
        }
        if (_options.Residual)
        {
            for (int i = 0; i < _options.Depth; i++)
            {
                string inner = b.AddNode("Relu", [Gemm(b, first[i], NormalizeOnnx(b, i < norms.Count ? norms[i] : null, h))]);
                h = b.AddNode("Add", [h, Gemm(b, second[i], inner)]);
            }
            h = b.AddNode("Relu", [NormalizeOnnx(b, final_norm, h)]);
        }
        else
        {
            for (int i = 0; i < _options.Depth; i++)
                h = b.AddNode("Relu", [NormalizeOnnx(b, i < norms.Count ? norms[i] : null, i == 0 ? h : Gemm(b, first[i - 1], h))]);
        }
        for (int t = 0; t < heads.Count; t++)
        {
            var head = _plan.Heads[t];
            string y = Gemm(b, heads[t], h);
            if (head.Task.Kind == TabularTaskKind.Regression)
            {
                using var scale = full(1, head.LabelScale);
                using var offset = full(1, head.LabelMean);
                y = b.AddNode("Add", [b.AddNode("Mul", [y, b.AddInitializer("label_scale", scale)]), b.AddInitializer("label_mean", offset)]);
            }
            b.AddOutput(b.AddNode("Reshape", [y, b.AddInitializer("row_shape", [(long)head.Outputs])]), outputName(head), batched: false, head.Outputs);
        }
        return b.ToBytes(new Dictionary<string, string> { ["deepvariants.model"] = "tabular" });
    }

    // Linear and normalization layers through the shared exporter (their ONNX forms do not depend on the example's values).
    private string Gemm(OnnxGraphBuilder b, Linear linear, string x) => Layer(b, linear, x);

    private string NormalizeOnnx(OnnxGraphBuilder b, Module<Tensor, Tensor>? norm, string x) => norm is null ? x : Layer(b, norm, x);

    private string Layer(OnnxGraphBuilder b, nn.Module<Tensor, Tensor> layer, string x)
    {
        using var example = zeros(2, layer is Linear linear ? linear.in_features : _options.Width);
        return OnnxModuleExporter.Export(b, layer, x, example);
    }
}

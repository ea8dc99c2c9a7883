using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Multi-head self-attention with a key-padding mask (Vaswani et al. 2017): for each head h,
/// A_h = softmax(Q_h K_hᵀ / √d_h + M) with M = -10⁹ at padded keys, out = [A_1 V_1, ..., A_H V_H] W_o, where Q, K, V are
/// one projection of the input. Padded queries compute something that nothing reads.
/// </summary>
internal sealed class MaskedSelfAttention : nn.Module
{
    private readonly Linear in_projection;
    private readonly Linear out_projection;
    private readonly long heads, width;

    public MaskedSelfAttention(long width, long heads) : base(nameof(MaskedSelfAttention))
    {
        (this.width, this.heads) = (width, heads);
        in_projection = Linear(width, 3 * width);
        out_projection = Linear(width, width);
        RegisterComponents();
    }

    /// <summary>x [N, T, D], keys [N, T] (bool, true for real steps); returns the output [N, T, D] and the attention [N, H, T, T].</summary>
    public (Tensor Output, Tensor Attention) Forward(Tensor x, Tensor keys)
    {
        long n = x.shape[0], steps = x.shape[1], headWidth = width / heads;
        var qkv = in_projection.call(x).view(n, steps, 3, heads, headWidth).permute(2, 0, 3, 1, 4);
        var (q, k, v) = (qkv[0], qkv[1], qkv[2]);
        var scores = q.matmul(k.transpose(2, 3)).Times(1 / Math.Sqrt(headWidth));
        var attention = where(keys.view(n, 1, 1, steps), scores, full_like(scores, SequenceNetworkScores.Masked)).softmax(3);
        var output = attention.matmul(v).transpose(1, 2).reshape(n, steps, width);
        return (out_projection.call(output), attention);
    }

    /// <summary>One row: x [T, D], keys [T] (bool); returns the output [T, D] and the attention [H, T, T].</summary>
    public (string Output, string Attention) Export(OnnxGraphBuilder b, string x, string keys)
    {
        long headWidth = width / heads;
        string qkv = b.AddNode("Gemm", [x, b.AddInitializer("qkv_weight", in_projection.weight!), b.AddInitializer("qkv_bias", in_projection.bias!)], OnnxGraphBuilder.Int("transB", 1));
        // [T, 3D] -> [T, 3, H, d_h] -> [3, H, T, d_h]
        string split = b.AddNode("Transpose", [b.AddNode("Reshape", [qkv, b.AddInitializer("qkv_shape", [-1L, 3L, heads, headWidth])])],
            OnnxGraphBuilder.Ints("perm", [1, 2, 0, 3]));
        string Part(long index) => b.AddNode("Gather", [split, b.AddInitializer("qkv_index", [index])], OnnxGraphBuilder.Int("axis", 0));
        string q = b.AddNode("Squeeze", [Part(0), b.AddInitializer("part_axis", [0L])]);
        string k = b.AddNode("Squeeze", [Part(1), b.AddInitializer("part_axis", [0L])]);
        string v = b.AddNode("Squeeze", [Part(2), b.AddInitializer("part_axis", [0L])]);
        string scores = b.AddNode("Mul", [b.AddNode("MatMul", [q, b.AddNode("Transpose", [k], OnnxGraphBuilder.Ints("perm", [0, 2, 1]))]),
            b.AddInitializer("attention_scale", full(1, 1 / Math.Sqrt(headWidth)))]);
        string attention = b.AddNode("Softmax", [b.AddNode("Where", [keys, scores, b.AddInitializer("masked_score", full(1, SequenceNetworkScores.MaskedValue))])],
            OnnxGraphBuilder.Int("axis", -1));
        // [H, T, d_h] -> [T, H, d_h] -> [T, D]
        string merged = b.AddNode("Reshape", [b.AddNode("Transpose", [b.AddNode("MatMul", [attention, v])], OnnxGraphBuilder.Ints("perm", [1, 0, 2])),
            b.AddInitializer("merged_shape", [-1L, width])]);
        string output = b.AddNode("Gemm", [merged, b.AddInitializer("out_weight", out_projection.weight!), b.AddInitializer("out_bias", out_projection.bias!)],
            OnnxGraphBuilder.Int("transB", 1));
        return (output, attention);
    }
}

/// <summary>
/// A pre-layer-norm Transformer encoder block (Xiong et al. 2020): x + Dropout(Attention(LN(x))), then
/// x + Dropout(W₂ GELU(W₁ LN(x))).
/// </summary>
internal sealed class EncoderBlock : nn.Module
{
    private const double Epsilon = 1e-5;
    private readonly LayerNorm attention_norm;
    private readonly MaskedSelfAttention attention;
    private readonly LayerNorm feed_forward_norm;
    private readonly Linear feed_forward_in;
    private readonly Linear feed_forward_out;
    private readonly Dropout dropout;

    public EncoderBlock(long width, long heads, long feedForward, double dropoutRate) : base(nameof(EncoderBlock))
    {
        attention_norm = LayerNorm(width, Epsilon);
        attention = new MaskedSelfAttention(width, heads);
        feed_forward_norm = LayerNorm(width, Epsilon);
        feed_forward_in = Linear(width, feedForward);
        feed_forward_out = Linear(feedForward, width);
        dropout = Dropout(dropoutRate);
        RegisterComponents();
    }

    public (Tensor Output, Tensor Attention) Forward(Tensor x, Tensor keys)
    {
        var (attended, weights) = attention.Forward(attention_norm.call(x), keys);
        x = x + dropout.call(attended);
        x = x + dropout.call(feed_forward_out.call(functional.gelu(feed_forward_in.call(feed_forward_norm.call(x)))));
        return (x, weights);
    }

    public (string Output, string Attention) Export(OnnxGraphBuilder b, string x, string keys)
    {
        var (attended, weights) = attention.Export(b, TransformerOnnx.LayerNorm(b, attention_norm, x), keys);
        x = b.AddNode("Add", [x, attended]);
        string hidden = b.AddNode("Gemm", [TransformerOnnx.LayerNorm(b, feed_forward_norm, x), b.AddInitializer("ff_in_weight", feed_forward_in.weight!),
            b.AddInitializer("ff_in_bias", feed_forward_in.bias!)], OnnxGraphBuilder.Int("transB", 1));
        string output = b.AddNode("Gemm", [TransformerOnnx.Gelu(b, hidden), b.AddInitializer("ff_out_weight", feed_forward_out.weight!),
            b.AddInitializer("ff_out_bias", feed_forward_out.bias!)], OnnxGraphBuilder.Int("transB", 1));
        return (b.AddNode("Add", [x, output]), weights);
    }
}

/// <summary>The ONNX forms of the Transformer's layer norm and GELU (opset 17 has LayerNormalization; GELU is written with Erf).</summary>
internal static class TransformerOnnx
{
    public static string LayerNorm(OnnxGraphBuilder b, LayerNorm norm, string x) => OnnxModuleExporter.LayerNormalization(b, norm, x);

    // GELU(x) = x / 2 (1 + erf(x / √2)), PyTorch's exact form.
    public static string Gelu(OnnxGraphBuilder b, string x) => b.AddNode("Mul", [
        b.AddNode("Mul", [x, b.AddInitializer("half", full(1, 0.5))]),
        b.AddNode("Add", [b.AddNode("Erf", [b.AddNode("Mul", [x, b.AddInitializer("inverse_sqrt2", full(1, 1 / Math.Sqrt(2)))])]), b.AddInitializer("one_f", ones(1))])]);
}

/// <summary>
/// The Transformer family: each step's channels projected to the model width, plus its position (sinusoidal,
/// PE(t, i) = sin(t ω_i) and PE(t, D/2 + i) = cos(t ω_i) with ω_i = 10000^(-2i/D), or learned), an optional class
/// token before the steps, pre-layer-norm encoder blocks with padded keys masked, a final layer norm, a pooling
/// (class token, mean over valid steps, or attention) and a linear layer to class logits.
/// The attention weights it shows are the last block's, averaged over heads, from the class token (or, with mean
/// pooling, averaged over the valid queries; with attention pooling, the pooling's own).
/// </summary>
internal sealed class TransformerSequenceNetwork : SequenceNetwork
{
    private readonly Linear input_projection;
    private readonly Parameter? position_table;
    private readonly Parameter? class_token;
    private readonly ModuleList<EncoderBlock> blocks = new();
    private readonly LayerNorm final_norm;
    private readonly AttentionPooling? attention_pooling;
    private readonly Linear classifier;
    private readonly Tensor frequencies;

    public TransformerSequenceNetwork(SequenceArchitecture a, int channels, int classes)
        : base(nameof(TransformerSequenceNetwork), a, channels, classes)
    {
        long d = a.ModelWidth;
        input_projection = Linear(channels, d);
        if (a.Positions == PositionEncoding.Learned)
            position_table = Parameter(randn(a.MaxPositions, d).Times(0.02));
        if (a.EffectivePooling == SequencePooling.ClassToken)
            class_token = Parameter(randn(1, 1, d).Times(0.02));
        for (int i = 0; i < a.Layers; i++)
            blocks.Add(new EncoderBlock(d, a.Heads, a.EffectiveFeedForwardSize, a.Dropout));
        final_norm = LayerNorm(d, 1e-5);
        if (a.EffectivePooling == SequencePooling.Attention)
            attention_pooling = new AttentionPooling(d);
        classifier = Linear(d, classes);
        frequencies = exp(arange(0, d / 2, dtype: ScalarType.Float32).Times(-2.0 * Math.Log(10000) / d));
        RegisterComponents();
    }

    private protected override (Tensor Logits, Tensor? Attention) Classify(Tensor x, Tensor valid, Tensor lengths, bool withAttention)
    {
        long n = x.shape[0], steps = x.shape[1];
        var h = input_projection.call(x) + Positions(steps, x.device).unsqueeze(0);
        var keys = valid;
        if (class_token is not null)
        {
            h = cat([class_token.expand(n, 1, -1), h], 1);
            keys = cat([ones(n, 1, dtype: ScalarType.Bool, device: x.device), valid], 1);
        }
        Tensor lastAttention = null!;
        foreach (var block in blocks)
            (h, lastAttention) = block.Forward(h, keys);
        h = final_norm.call(h);
        var pooling = Architecture.EffectivePooling;
        var validFloat = valid.to_type(ScalarType.Float32);
        (Tensor pooled, Tensor? weights) = pooling switch
        {
            SequencePooling.ClassToken => (h.select(1, 0), withAttention ? lastAttention.mean([1]).select(1, 0).narrow(1, 1, steps) : null),
            SequencePooling.Mean => ((h * validFloat.unsqueeze(2)).sum(1) / lengths.unsqueeze(1),
                withAttention ? (lastAttention.mean([1]) * validFloat.unsqueeze(2)).sum(1) / lengths.unsqueeze(1) : null),
            SequencePooling.Attention => attention_pooling!.Pool(h, valid),
            var other => throw new InvalidOperationException($"Unknown pooling {other}."),
        };
        return (classifier.call(pooled), weights);
    }

    // The positions of steps 0..T-1 [T, D].
    private Tensor Positions(long steps, Device device)
    {
        if (position_table is not null)
            return position_table.index_select(0, arange(steps, dtype: ScalarType.Int64, device: device).clamp_max(Scalars.Of((long)Architecture.MaxPositions - 1)));
        var angles = arange(steps, dtype: ScalarType.Float32, device: device).unsqueeze(1) * frequencies.unsqueeze(0);
        return cat([angles.sin(), angles.cos()], 1);
    }

    private protected override (string Logits, string? Attention) ExportBody(OnnxGraphBuilder b, SeriesNodes series, bool withAttention)
    {
        long d = Architecture.ModelWidth;
        string x = b.AddNode("Reshape", [series.Steps, b.AddInitializer("steps_by_channels", [-1L, Channels])]);
        string h = b.AddNode("Gemm", [x, b.AddInitializer("input_weight", input_projection.weight!), b.AddInitializer("input_bias", input_projection.bias!)],
            OnnxGraphBuilder.Int("transB", 1));
        string positions;
        if (position_table is not null)
        {
            string indices = b.AddNode("Cast", [series.StepIndices], OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Int64));
            indices = b.AddNode("Min", [indices, b.AddInitializer("last_position", [(long)Architecture.MaxPositions - 1])]);
            positions = b.AddNode("Gather", [b.AddInitializer("position_table", position_table), indices], OnnxGraphBuilder.Int("axis", 0));
        }
        else
        {
            string angles = b.AddNode("Mul", [b.AddNode("Unsqueeze", [series.StepIndices, b.AddInitializer("column_axis", [1L])]),
                b.AddInitializer("frequencies", frequencies.unsqueeze(0))]);
            positions = b.AddNode("Concat", [b.AddNode("Sin", [angles]), b.AddNode("Cos", [angles])], OnnxGraphBuilder.Int("axis", 1));
        }
        h = b.AddNode("Add", [h, positions]);
        string keys = series.Valid;
        if (class_token is not null)
        {
            h = b.AddNode("Concat", [b.AddInitializer("class_token", class_token.view(1, d)), h], OnnxGraphBuilder.Int("axis", 0));
            keys = b.AddNode("Cast", [b.AddNode("Concat", [b.AddInitializer("token_valid", ones(1)), series.ValidFloat], OnnxGraphBuilder.Int("axis", 0))],
                OnnxGraphBuilder.Int("to", (long)TensorProto.Types.DataType.Bool));
        }
        string lastAttention = "";
        foreach (var block in blocks)
            (h, lastAttention) = block.Export(b, h, keys);
        h = TransformerOnnx.LayerNorm(b, final_norm, h);
        string? weights = null, pooled;
        switch (Architecture.EffectivePooling)
        {
            case SequencePooling.ClassToken:
                pooled = b.AddNode("Slice", [h, b.AddInitializer("first", [0L]), b.AddInitializer("second", [1L]), b.AddInitializer("step_axis", [0L])]);
                if (withAttention)
                {
                    // The class token's row of the head-averaged attention, without its weight on itself.
                    string row = b.AddNode("Gather", [b.AddNode("ReduceMean", [lastAttention], OnnxGraphBuilder.Ints("axes", [0]), OnnxGraphBuilder.Int("keepdims", 0)),
                        b.AddInitializer("token_row", [0L])], OnnxGraphBuilder.Int("axis", 0));
                    weights = b.AddNode("Slice", [b.AddNode("Squeeze", [row, b.AddInitializer("row_axis", [0L])]), b.AddInitializer("after_token", [1L]),
                        b.AddInitializer("to_end", [long.MaxValue]), b.AddInitializer("key_axis", [0L])]);
                }
                break;
            case SequencePooling.Mean:
                string validColumn = b.AddNode("Unsqueeze", [series.ValidFloat, b.AddInitializer("feature_axis", [1L])]);
                pooled = b.AddNode("Div", [b.AddNode("ReduceSum", [b.AddNode("Mul", [h, validColumn]), b.AddInitializer("steps_axis", [0L])],
                    OnnxGraphBuilder.Int("keepdims", 1)), series.Length]);
                if (withAttention)
                {
                    string averaged = b.AddNode("ReduceMean", [lastAttention], OnnxGraphBuilder.Ints("axes", [0]), OnnxGraphBuilder.Int("keepdims", 0));
                    weights = b.AddNode("Div", [b.AddNode("ReduceSum", [b.AddNode("Mul", [averaged, validColumn]), b.AddInitializer("query_axis", [0L])],
                        OnnxGraphBuilder.Int("keepdims", 0)), series.Length]);
                }
                break;
            default:
                (pooled, string w) = attention_pooling!.Export(b, h, series.Valid);
                weights = w;
                break;
        }
        string logits = b.AddNode("Gemm", [pooled, b.AddInitializer("classifier_weight", classifier.weight!), b.AddInitializer("classifier_bias", classifier.bias!)],
            OnnxGraphBuilder.Int("transB", 1));
        return (logits, weights);
    }
}

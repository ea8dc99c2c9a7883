using Microsoft.ML.DeepVariants.Onnx;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.DeepVariants.Graphs;

/// <summary>
/// A graph convolutional network (Kipf and Welling 2017): each layer computes act(Â · dropout(H) · W + b) with Â
/// the normalised adjacency, propagated sparsely by gather and index-add over the edges, so memory grows
/// with the edges, not with the square of the nodes. Weights start Glorot-uniform and biases at zero, as in the
/// paper; TorchSharp's default initialisation learns far more slowly on row-normalised features.
/// </summary>
internal sealed class GcnNetwork : Module
{
    private readonly ModuleList<Linear> layers;
    private readonly Dropout dropout;
    private readonly bool rowNormalize;

    public GcnNetwork(int features, IReadOnlyList<int> hidden, int classes, float dropoutRate, bool rowNormalize) : base(nameof(GcnNetwork))
    {
        int[] sizes = [features, .. hidden, classes];
        layers = new ModuleList<Linear>(Enumerable.Range(0, sizes.Length - 1).Select(i => Linear(sizes[i], sizes[i + 1])).ToArray());
        using (no_grad())
        {
            foreach (var layer in layers)
            {
                init.xavier_uniform_(layer.weight);
                init.zeros_(layer.bias!);
            }
        }
        dropout = Dropout(dropoutRate);
        this.rowNormalize = rowNormalize;
        FeatureSize = features;
        EmbeddingSize = hidden[^1];
        Classes = classes;
        RegisterComponents();
    }

    public int FeatureSize { get; }
    public int EmbeddingSize { get; }
    public int Classes { get; }

    /// <summary>The first layer's weight: the only parameter weight decay applies to, as in the paper.</summary>
    public Parameter FirstLayerWeight => layers[0].weight;

    /// <summary>Trainable parameters of a GCN, counted without building it: per layer a weight (inputs x outputs) and a bias.</summary>
    public static long CountParameters(int features, IReadOnlyList<int> hidden, int classes)
    {
        long count = 0, inputs = features;
        foreach (long outputs in hidden.Append(classes).Select(h => (long)h))
        {
            count += inputs * outputs + outputs;
            inputs = outputs;
        }
        return count;
    }

    /// <summary>Logits [N, K] of every node, and the embedding [N, E] (the last hidden layer).</summary>
    public Tensor Forward(Tensor x, GraphTensors graph, out Tensor embedding)
    {
        var h = rowNormalize ? x / x.sum(1, keepdim: true).clamp_min(Scalars.Of(1e-12)) : x;
        embedding = h;
        for (int i = 0; i < layers.Count; i++)
        {
            h = Propagate(functional.linear(dropout.call(h), layers[i].weight), graph).Plus(layers[i].bias!);
            if (i < layers.Count - 1)
            {
                h = functional.relu(h);
                embedding = h;
            }
        }
        return h;
    }

    /// <summary>The ONNX graph: inputs features [nodes, F], edge_source and edge_target [edges] (int64) and edge_weight [edges], the normalised operator.</summary>
    public byte[] ExportOnnx(IReadOnlyDictionary<string, string> metadata)
    {
        var b = new OnnxGraphBuilder("DeepVariantsGcn");
        string h = b.AddInput(GcnGraphModel.FeaturesInput, TensorProto.Types.DataType.Float, "nodes", (long)FeatureSize);
        string src = b.AddInput(GcnGraphModel.SourceInput, TensorProto.Types.DataType.Int64, "edges");
        string dst = b.AddInput(GcnGraphModel.TargetInput, TensorProto.Types.DataType.Int64, "edges");
        string weight = b.AddInput(GcnGraphModel.WeightInput, TensorProto.Types.DataType.Float, "edges");
        string axis1 = b.AddInitializer("axis1", [1L]);
        if (rowNormalize)
        {
            string sum = b.AddNode("ReduceSum", [h, axis1], OnnxGraphBuilder.Int("keepdims", 1));
            using var epsilon = tensor(new[] { 1e-12f });
            h = b.AddNode("Div", [h, b.AddNode("Max", [sum, b.AddInitializer("epsilon", epsilon)])]);
        }
        string columnWeight = b.AddNode("Unsqueeze", [weight, axis1]);
        string scatterIndex = b.AddNode("Unsqueeze", [dst, axis1]);
        string embedding = h;
        for (int i = 0; i < layers.Count; i++)
        {
            string linear = b.AddNode("Gemm", [h, b.AddInitializer($"gcn{i}_weight", layers[i].weight)], OnnxGraphBuilder.Int("transB", 1));
            string messages = b.AddNode("Mul", [b.AddNode("Gather", [linear, src], OnnxGraphBuilder.Int("axis", 0)), columnWeight]);
            string zeros = b.AddNode("ConstantOfShape", [b.AddNode("Shape", [linear])]);
            h = b.AddNode("ScatterND", [zeros, scatterIndex, messages], OnnxGraphBuilder.String("reduction", "add"));
            h = b.AddNode("Add", [h, b.AddInitializer($"gcn{i}_bias", layers[i].bias!)]);
            if (i < layers.Count - 1)
            {
                h = b.AddNode("Relu", [h]);
                embedding = h;
            }
        }
        b.AddOutput(h, GcnGraphModel.LogitsOutput, TensorProto.Types.DataType.Float, "nodes", (long)Classes);
        b.AddOutput(embedding, GcnGraphModel.EmbeddingOutput, TensorProto.Types.DataType.Float, "nodes", (long)EmbeddingSize);
        return b.ToBytes(metadata);
    }

    private static Tensor Propagate(Tensor h, GraphTensors graph) =>
        zeros(graph.NodeCount, h.shape[1], dtype: h.dtype, device: h.device)
            .index_add(0, graph.Target, h.index_select(0, graph.Source) * graph.Weight.unsqueeze(1), Scalars.One);
}

/// <summary>A GCN bound to one graph, as the shared training loop sees it: node features in, logits out.</summary>
internal sealed class GraphBoundGcn : Module<Tensor, Tensor>, ISelectiveWeightDecay
{
    private readonly GcnNetwork network;
    private readonly GraphTensors _graph;

    public GraphBoundGcn(GcnNetwork network, GraphTensors graph) : base(nameof(GraphBoundGcn))
    {
        this.network = network;
        _graph = graph;
        RegisterComponents();
    }

    public IEnumerable<Parameter> DecayedParameters => [network.FirstLayerWeight];

    public override Tensor forward(Tensor input) => network.Forward(input, _graph, out _);
}

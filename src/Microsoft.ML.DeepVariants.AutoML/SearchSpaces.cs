using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Sequences;
using Microsoft.ML.DeepVariants.Tabular;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>Ready-made search spaces for the DeepVariants capabilities, and how their configurations become options.</summary>
public static class SearchSpaces
{
    /// <summary>
    /// CNN image classifiers: family, depth, width, kernel, dropout, learning rate, weight decay, batch size and
    /// optimizer, with the knobs that exist for one family only (LeNet's hidden size, VGG's and DenseNet's layers per
    /// block, DenseNet's growth rate, ResNet's bottleneck) and SGD's momentum conditional on them.
    /// </summary>
    /// <example><code>var space = SearchSpaces.Cnn(); var options = SearchSpaces.ToCnnOptions(space.Sample(new Random(1)), 28, 28, 1);</code></example>
    public static SearchSpace Cnn(params CnnFamily[] families)
    {
        var space = new SearchSpace();
        space.Choice("family", (families.Length == 0 ? Enum.GetValues<CnnFamily>() : families).Select(f => (object)f.ToString()).ToArray());
        space.Integer("depth", 1, 3);
        space.LogInteger("width", 8, 64);
        space.Choice("kernel", 3, 5);
        space.LogInteger("hiddenSize", 32, 256).When("family = LeNet", c => c.GetString("family") == nameof(CnnFamily.LeNet));
        space.Integer("layersPerBlock", 1, 3).When("family in (Vgg, DenseNet)", c => c.GetString("family") is nameof(CnnFamily.Vgg) or nameof(CnnFamily.DenseNet));
        space.Choice("growthRate", 8, 12, 16).When("family = DenseNet", c => c.GetString("family") == nameof(CnnFamily.DenseNet));
        space.Choice("bottleneck", false, true).When("family = ResNet", c => c.GetString("family") == nameof(CnnFamily.ResNet));
        space.Uniform("dropout", 0, 0.5);
        space.Choice("optimizer", nameof(OptimizerKind.Adam), nameof(OptimizerKind.AdamW), nameof(OptimizerKind.Sgd));
        space.Uniform("momentum", 0.8, 0.95).When("optimizer = Sgd", c => c.GetString("optimizer") == nameof(OptimizerKind.Sgd));
        space.LogUniform("learningRate", 3e-4, 3e-2);
        space.LogUniform("weightDecay", 1e-6, 1e-3);
        space.Choice("batchSize", 32, 64, 128);
        return space;
    }

    /// <summary>The CNN classifier options a configuration of <see cref="Cnn"/> describes.</summary>
    public static CnnClassifierOptions ToCnnOptions(Configuration c, int imageHeight, int imageWidth, int channels)
    {
        ArgumentNullException.ThrowIfNull(c);
        var architecture = new CnnArchitecture
        {
            Family = Enum.Parse<CnnFamily>(c.GetString("family")),
            Depth = c.GetInt("depth"),
            Width = c.GetInt("width"),
            KernelSize = c.GetInt("kernel"),
            Dropout = (float)c.GetDouble("dropout"),
        };
        if (c.Has("hiddenSize")) architecture.HiddenSize = c.GetInt("hiddenSize");
        if (c.Has("layersPerBlock")) architecture.LayersPerBlock = c.GetInt("layersPerBlock");
        if (c.Has("growthRate")) architecture.GrowthRate = c.GetInt("growthRate");
        if (c.Has("bottleneck")) architecture.Bottleneck = c.GetBool("bottleneck");
        var options = new CnnClassifierOptions
        {
            ImageHeight = imageHeight, ImageWidth = imageWidth, Channels = channels, Architecture = architecture,
            Optimizer = Enum.Parse<OptimizerKind>(c.GetString("optimizer")),
            LearningRate = (float)c.GetDouble("learningRate"),
            WeightDecay = (float)c.GetDouble("weightDecay"),
            BatchSize = c.GetInt("batchSize"),
        };
        if (c.Has("momentum")) options.Momentum = (float)c.GetDouble("momentum");
        return options;
    }

    /// <summary>
    /// Sequence classifiers of every family: recurrent (cell, layers, hidden size, direction, dropout between layers when
    /// more than one, pooling), temporal convolution (FCN, ResNet or InceptionTime, filters, and InceptionTime's depth and
    /// longest kernel, up to 24 steps so that any series of 24 steps or more takes every configuration), Transformer (blocks, width, heads, dropout, positions, pooling); learning rate and batch size for all.
    /// Each family's knobs are conditional on the family.
    /// </summary>
    /// <example><code>var space = SearchSpaces.Sequence();</code></example>
    public static SearchSpace Sequence()
    {
        var space = new SearchSpace();
        space.Choice("family", nameof(SequenceFamily.Recurrent), nameof(SequenceFamily.TemporalConvolution), nameof(SequenceFamily.Transformer));
        static Func<Configuration, bool> Is(SequenceFamily family) => c => c.GetString("family") == family.ToString();
        space.Choice("cell", nameof(RecurrentCell.Lstm), nameof(RecurrentCell.Gru)).When("family = Recurrent", Is(SequenceFamily.Recurrent));
        space.Integer("layers", 1, 3).When("family = Recurrent", Is(SequenceFamily.Recurrent));
        space.Uniform("dropout", 0, 0.5).When("family = Recurrent and layers >= 2", c => Is(SequenceFamily.Recurrent)(c) && c.GetInt("layers") >= 2);
        space.LogInteger("hiddenSize", 16, 256).When("family = Recurrent", Is(SequenceFamily.Recurrent));
        space.Choice("bidirectional", false, true).When("family = Recurrent", Is(SequenceFamily.Recurrent));
        space.Choice("pooling", nameof(SequencePooling.Last), nameof(SequencePooling.Mean), nameof(SequencePooling.Attention)).When("family = Recurrent", Is(SequenceFamily.Recurrent));
        space.Choice("preset", nameof(TemporalConvolutionPreset.Fcn), nameof(TemporalConvolutionPreset.ResNet), nameof(TemporalConvolutionPreset.InceptionTime))
            .When("family = TemporalConvolution", Is(SequenceFamily.TemporalConvolution));
        space.LogInteger("filters", 16, 128).When("family = TemporalConvolution", Is(SequenceFamily.TemporalConvolution));
        static bool Inception(Configuration c) => Is(SequenceFamily.TemporalConvolution)(c) && c.GetString("preset") == nameof(TemporalConvolutionPreset.InceptionTime);
        space.Integer("depth", 3, 9).When("preset = InceptionTime", Inception);
        space.Choice("kernelSize", 8, 16, 24).When("preset = InceptionTime", Inception);
        space.Integer("blocks", 1, 4).When("family = Transformer", Is(SequenceFamily.Transformer));
        space.Choice("modelWidth", 32, 64, 128).When("family = Transformer", Is(SequenceFamily.Transformer));
        space.Choice("heads", 2, 4, 8).When("family = Transformer", Is(SequenceFamily.Transformer));
        space.Uniform("transformerDropout", 0, 0.3).When("family = Transformer", Is(SequenceFamily.Transformer));
        space.Choice("positions", nameof(PositionEncoding.Sinusoidal), nameof(PositionEncoding.Learned)).When("family = Transformer", Is(SequenceFamily.Transformer));
        space.Choice("transformerPooling", nameof(SequencePooling.ClassToken), nameof(SequencePooling.Mean), nameof(SequencePooling.Attention))
            .When("family = Transformer", Is(SequenceFamily.Transformer));
        space.LogUniform("learningRate", 3e-4, 1e-2);
        space.Choice("batchSize", 16, 32, 64);
        return space;
    }

    /// <summary>The sequence classifier options a configuration of <see cref="Sequence"/> describes (a configuration without "family" is recurrent, as before).</summary>
    public static SequenceClassifierOptions ToSequenceOptions(Configuration c, int channels)
    {
        ArgumentNullException.ThrowIfNull(c);
        var family = c.Has("family") ? Enum.Parse<SequenceFamily>(c.GetString("family")) : SequenceFamily.Recurrent;
        var architecture = family switch
        {
            SequenceFamily.TemporalConvolution => new SequenceArchitecture
            {
                Family = family,
                Preset = Enum.Parse<TemporalConvolutionPreset>(c.GetString("preset")),
                Filters = c.GetInt("filters"),
                Depth = c.Has("depth") ? c.GetInt("depth") : 6,
                KernelSize = c.Has("kernelSize") ? c.GetInt("kernelSize") : null,
            },
            SequenceFamily.Transformer => new SequenceArchitecture
            {
                Family = family,
                Layers = c.GetInt("blocks"),
                ModelWidth = c.GetInt("modelWidth"),
                Heads = c.GetInt("heads"),
                Dropout = (float)c.GetDouble("transformerDropout"),
                Positions = Enum.Parse<PositionEncoding>(c.GetString("positions")),
                Pooling = Enum.Parse<SequencePooling>(c.GetString("transformerPooling")),
            },
            _ => new SequenceArchitecture
            {
                Cell = Enum.Parse<RecurrentCell>(c.GetString("cell")),
                Layers = c.GetInt("layers"),
                Dropout = c.Has("dropout") ? (float)c.GetDouble("dropout") : 0,
                HiddenSize = c.GetInt("hiddenSize"),
                Bidirectional = c.GetBool("bidirectional"),
                Pooling = Enum.Parse<SequencePooling>(c.GetString("pooling")),
            },
        };
        return new SequenceClassifierOptions
        {
            Channels = channels,
            // A trial's epochs are the sweep's unit of budget and of early stopping, so a trial runs exactly those.
            MinimumSteps = 0,
            Architecture = architecture,
            LearningRate = (float)c.GetDouble("learningRate"),
            BatchSize = c.GetInt("batchSize"),
        };
    }

    /// <summary>
    /// Tabular networks: width, depth, dropout, normalization, residual blocks, the embedding size of categorical columns
    /// (0 sizes each by its categories), learning rate, weight decay and batch size, trained with AdamW and a cosine schedule.
    /// </summary>
    /// <example><code>var options = SearchSpaces.ToTabularOptions(SearchSpaces.Tabular().Sample(new Random(1)), columns);</code></example>
    public static SearchSpace Tabular()
    {
        var space = new SearchSpace();
        space.LogInteger("width", 32, 1024);
        space.Integer("depth", 1, 6);
        space.Uniform("dropout", 0, 0.5);
        space.Choice("normalization", nameof(TabularNormalization.Batch), nameof(TabularNormalization.Layer), nameof(TabularNormalization.None));
        space.Choice("residual", true, false);
        space.Choice("embeddingSize", 0, 4, 8, 16, 32);
        space.LogUniform("learningRate", 1e-4, 1e-2);
        space.LogUniform("weightDecay", 1e-6, 1e-2);
        space.Choice("batchSize", 64, 128, 256, 512);
        return space;
    }

    /// <summary>
    /// The tabular network options a configuration of <see cref="Tabular"/> describes, reading the columns and labels of
    /// <paramref name="columns"/> (which is not changed).
    /// </summary>
    public static TabularNetworkOptions ToTabularOptions(Configuration c, TabularNetworkOptions columns)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(columns);
        return new TabularNetworkOptions
        {
            NumericColumnNames = [.. columns.NumericColumnNames], CategoricalColumnNames = [.. columns.CategoricalColumnNames],
            LabelColumnName = columns.LabelColumnName, Task = columns.Task, Labels = [.. columns.Labels],
            HandleMissing = columns.HandleMissing, MaxCategories = columns.MaxCategories,
            ScoreColumnName = columns.ScoreColumnName, PredictedLabelColumnName = columns.PredictedLabelColumnName, ProbabilityColumnName = columns.ProbabilityColumnName,
            Width = c.GetInt("width"),
            Depth = c.GetInt("depth"),
            Dropout = (float)c.GetDouble("dropout"),
            Normalization = Enum.Parse<TabularNormalization>(c.GetString("normalization")),
            Residual = c.GetBool("residual"),
            EmbeddingSize = c.GetInt("embeddingSize"),
            Optimizer = OptimizerKind.AdamW,
            Schedule = LearningRateSchedule.Cosine,
            LearningRate = (float)c.GetDouble("learningRate"),
            WeightDecay = (float)c.GetDouble("weightDecay"),
            BatchSize = c.GetInt("batchSize"),
        };
    }
}

using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Autoencoders;
using Microsoft.ML.DeepVariants.Backbones;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Distillation;
using Microsoft.ML.DeepVariants.Graphs;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.DeepVariants.Pruning;
using Microsoft.ML.DeepVariants.Sequences;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// Bad inputs across every public entry point. Each case asserts the exact exception type, that no training batch ran
/// (the options report every batch to a probe), and that the message names the column, option or file and what was
/// expected. Cases are listed by name so that each runs and reports on its own.
/// </summary>
[TestClass]
public sealed class BadInputTests
{
    private static readonly MLContext Ml = new(seed: 1);

    /// <summary>Counts the training batches a fit reported; every case expects none.</summary>
    private sealed class Probe : IProgress<TrainingProgress>
    {
        public int Batches;

        public void Report(TrainingProgress value) => Interlocked.Increment(ref Batches);

        public T Watch<T>(T options) where T : TrainingOptions
        {
            options.Progress = this;
            options.Device = TorchDeviceKind.Cpu;
            return options;
        }
    }

    private sealed record Case(Type Exception, string[] Fragments, Action<Probe> Run);

    private static readonly Dictionary<string, Case> Cases = [];

    private static void Add<TException>(string name, Action<Probe> run, params string[] fragments) where TException : Exception =>
        Cases.Add(name, new Case(typeof(TException), fragments, run));

    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(k => new object[] { k });

    [TestMethod]
    public void TheSuiteCoversAtLeastOneHundredCases() => Assert.IsGreaterThanOrEqualTo(100, Cases.Count);

    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void IsRefusedBeforeTrainingWithAMessageThatNamesIt(string name)
    {
        var (type, fragments, run) = Cases[name];
        var probe = new Probe();
        Exception? thrown = null;
        try
        {
            run(probe);
        }
        catch (Exception e)
        {
            thrown = e;
        }
        Assert.IsNotNull(thrown, $"{name}: nothing was thrown");
        Assert.AreEqual(type, thrown.GetType(), $"{name}: {thrown}");
        Assert.AreEqual(0, probe.Batches, $"{name}: {probe.Batches} training events before the error");
        foreach (string fragment in fragments)
            StringAssert.Contains(thrown.Message, fragment, $"{name}: the message was: {thrown.Message}");
        // The package's internal column names (the keyed label) never reach the user.
        Assert.IsFalse(thrown.Message.Contains("DeepVariants.Label.") || thrown.Message.Contains(".Key'"), $"{name}: an internal name leaked: {thrown.Message}");
        Assert.IsFalse(thrown.Message.Contains(" a infinite"), $"{name}: {thrown.Message}");
    }

    // ---- data ----

    private static IDataView Images(int count = 8, int size = 16, Func<int, int, float>? value = null, Func<int, string>? label = null) =>
        Ml.Data.LoadFromEnumerable(Enumerable.Range(0, count).Select(i => new VectorRow
        {
            Features = Enumerable.Range(0, size).Select(j => value?.Invoke(i, j) ?? (i + j) % 3 / 3f).ToArray(),
            Label = label?.Invoke(i) ?? (i % 2 == 0 ? "a" : "b"),
        }), Sized<VectorRow>(nameof(VectorRow.Features), size));

    // The validation rows with their feature column renamed, so that it is missing there.
    private static IDataView WithoutFeatures(IDataView data)
    {
        var copied = Ml.Transforms.CopyColumns("Pixels", "Features").Fit(data).Transform(data);
        return Ml.Transforms.DropColumns("Features").Fit(copied).Transform(copied);
    }

    private static SchemaDefinition Sized<T>(string column, int size)
    {
        var schema = SchemaDefinition.Create(typeof(T));
        schema[column].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        return schema;
    }

    private static IDataView Series(params float[][] series) =>
        Ml.Data.LoadFromEnumerable(series.Select((s, i) => new SeriesRow { Series = s, Label = i % 2 == 0 ? "a" : "b" }));

    private static float[][] GoodSeries => [[1, 2, 3, 4], [4, 3, 2, 1], [1, 1, 2, 2], [2, 2, 1, 1]];

    private static IDataView Nodes(Func<int, string>? label = null, Func<int, string>? split = null, int count = 6) =>
        Ml.Data.LoadFromEnumerable(Enumerable.Range(0, count).Select(i => new NodeRow
        {
            NodeId = i, Features = [i % 2, 1 - i % 2, 1, 0], Label = label?.Invoke(i) ?? (i % 2 == 0 ? "x" : "y"), Split = split?.Invoke(i) ?? (i < 4 ? "train" : "val"),
        }));

    private static IDataView Edges(params (int, int)[] edges) =>
        Ml.Data.LoadFromEnumerable((edges.Length == 0 ? new[] { (0, 1), (1, 2), (2, 3), (3, 4), (4, 5) } : edges).Select(e => new EdgeRow { Source = e.Item1, Target = e.Item2 }));

    private static CnnClassifierOptions Cnn(Probe p, Action<CnnClassifierOptions>? change = null)
    {
        var options = p.Watch(new CnnClassifierOptions { ImageHeight = 4, ImageWidth = 4, Epochs = 1, Architecture = new CnnArchitecture { KernelSize = 3, Width = 4, HiddenSize = 8 } });
        change?.Invoke(options);
        return options;
    }

    private static void FitCnn(Probe p, Action<CnnClassifierOptions>? change = null, IDataView? data = null, IDataView? validation = null) =>
        Ml.Transforms.DeepVariants.CnnClassifier(Cnn(p, change)).Fit(data ?? Images(), validation);

    private static void FitCnnArchitecture(Probe p, Action<CnnArchitecture> change) => FitCnn(p, o => change(o.Architecture));

    private static void FitAutoencoder(Probe p, Action<DenoisingAutoencoderOptions>? change = null, IDataView? data = null)
    {
        var options = p.Watch(new DenoisingAutoencoderOptions { Epochs = 1, Width = 8, CodeSize = 4 });
        change?.Invoke(options);
        Ml.Transforms.DeepVariants.DenoisingAutoencoder(options).Fit(data ?? Images());
    }

    private static void FitSequence(Probe p, Action<SequenceClassifierOptions>? change = null, IDataView? data = null, IDataView? validation = null)
    {
        var options = p.Watch(new SequenceClassifierOptions { Epochs = 1, MinimumSteps = 0, Architecture = new SequenceArchitecture { HiddenSize = 4 } });
        change?.Invoke(options);
        Ml.Transforms.DeepVariants.SequenceClassifier(options).Fit(data ?? Series(GoodSeries), validation);
    }

    private static void FitGcn(Probe p, Action<GcnOptions>? change = null, IDataView? nodes = null, IDataView? edges = null)
    {
        var options = p.Watch(new GcnOptions { Epochs = 2 });
        change?.Invoke(options);
        Ml.Transforms.DeepVariants.GcnNodeClassifier(edges ?? Edges(), options).Fit(nodes ?? Nodes());
    }

    private static void FitPretrained(Probe p, Action<PretrainedClassifierOptions> change)
    {
        var options = p.Watch(new PretrainedClassifierOptions { Epochs = 1 });
        // A backbone shaped like the test images, so that each case meets only its own mistake.
        options.Backbone.InputColumnName = "Features";
        (options.Backbone.Channels, options.Backbone.ImageHeight, options.Backbone.ImageWidth) = (1, 4, 4);
        options.Backbone.ChannelMeans = null;
        change(options);
        Ml.Transforms.DeepVariants.PretrainedClassifier(options).Fit(Images());
    }

    // A small fitted classifier, for the components that start from one (distillation, pruning).
    private static readonly Lazy<FitResult> Fitted = new(() =>
        Ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 4, ImageWidth = 4, Epochs = 1, Device = TorchDeviceKind.Cpu, Architecture = new CnnArchitecture { KernelSize = 3, Width = 4, HiddenSize = 8 },
        }).Train(Images()));

    private static string TempFile(string name, byte[] content)
    {
        string path = Path.Combine(Path.GetTempPath(), $"dv-bad-{Guid.NewGuid():N}-{name}");
        File.WriteAllBytes(path, content);
        return path;
    }

    private static string TempText(string name, string content) => TempFile(name, System.Text.Encoding.UTF8.GetBytes(content));

    // A real ONNX file cut in half: what an interrupted download leaves.
    private static string TruncatedOnnx()
    {
        byte[] bytes = Fitted.Value.OnnxModel;
        return TempFile("truncated.onnx", bytes[..(bytes.Length / 2)]);
    }

    static BadInputTests()
    {
        // ---- CNN classifier: the schema ----
        Add<ArgumentOutOfRangeException>("Cnn: missing feature column", p => FitCnn(p, o => o.FeatureColumnName = "Pixels"), "Could not find input column 'Pixels'");
        Add<ArgumentOutOfRangeException>("Cnn: missing label column", p => FitCnn(p, o => o.LabelColumnName = "Class"), "Could not find input column 'Class'");
        Add<ArgumentOutOfRangeException>("Cnn: wrong vector size", p => FitCnn(p, data: Images(size: 10)), "Features", "expected Vector<Single, 16>", "got Vector<Single, 10>");
        Add<ArgumentOutOfRangeException>("Cnn: double features", p => FitCnn(p, data: Ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(i => new DoubleRow { Label = i % 2 == 0 ? "a" : "b" }))),
            "Schema mismatch for input column 'Features'", "Double");
        Add<ArgumentOutOfRangeException>("Cnn: text features", p => FitCnn(p, data: Ml.Data.LoadFromEnumerable(new[] { new TextRow { Features = "x", Label = "a" } })), "Features", "String");
        Add<ArgumentOutOfRangeException>("Cnn: vector label", p => FitCnn(p, o => o.LabelColumnName = "Features"), "Schema mismatch for input column 'Features'", "label");
        Add<ArgumentOutOfRangeException>("Cnn: NaN feature", p => FitCnn(p, data: Images(value: (i, j) => i == 3 && j == 5 ? float.NaN : 0.5f)), "Features", "a NaN value", "row 3", "slot 5");
        Add<ArgumentOutOfRangeException>("Cnn: infinite feature", p => FitCnn(p, data: Images(value: (i, j) => i == 1 && j == 0 ? float.PositiveInfinity : 0.5f)), "Features", "an infinite value", "row 1");
        Add<ArgumentException>("Cnn: empty training data", p => FitCnn(p, data: Images(count: 0)), "training data is empty", "Features");
        Add<ArgumentException>("Cnn: single class", p => FitCnn(p, data: Images(label: _ => "only")), "Label", "single class", "only");
        Add<ArgumentOutOfRangeException>("Cnn: missing label value", p => FitCnn(p, data: Images(label: i => i == 2 ? "" : i % 2 == 0 ? "a" : "b")), "Label", "missing value at row 2");
        Add<ArgumentOutOfRangeException>("Cnn: validation missing feature column", p => FitCnn(p, validation: WithoutFeatures(Images())), "Could not find input column 'Features'", "validation");
        Add<ArgumentOutOfRangeException>("Cnn: validation wrong size", p => FitCnn(p, validation: Images(size: 9)), "Features", "validation", "Vector<Single, 16>");
        Add<ArgumentOutOfRangeException>("Cnn: validation class unseen in training", p => FitCnn(p, validation: Images(label: i => i == 1 ? "c" : "a")),
            "Label", "'c'", "row 1", "validation", "no training row has");
        Add<ArgumentOutOfRangeException>("Cnn: validation missing label", p => FitCnn(p, validation: Images(label: i => i == 0 ? "" : "a")), "Label", "missing value", "validation");
        Add<ArgumentOutOfRangeException>("Cnn: validation NaN feature", p => FitCnn(p, validation: Images(value: (i, j) => i == 2 && j == 1 ? float.NaN : 0.1f)), "Features", "NaN", "row 2", "validation");
        Add<ArgumentOutOfRangeException>("Cnn: image height not declared", p => FitCnn(p, o => { o.ImageHeight = 0; o.ImageWidth = 0; }), "ImageHeight", "Features");
        Add<ArgumentOutOfRangeException>("Cnn: negative image height", p => FitCnn(p, o => o.ImageHeight = -4), "ImageHeight");
        Add<ArgumentOutOfRangeException>("Cnn: two channels", p => FitCnn(p, o => o.Channels = 2), "Channels", "1 (grayscale) or 3 (RGB)");
        Add<ArgumentException>("Cnn: empty feature column name", p => FitCnn(p, o => o.FeatureColumnName = ""), "FeatureColumnName", "must name a column");
        Add<ArgumentException>("Cnn: empty label column name", p => FitCnn(p, o => o.LabelColumnName = " "), "LabelColumnName", "must name a column");
        Add<ArgumentOutOfRangeException>("Cnn: GradCamClass out of range", p => FitCnn(p, o => { o.GradCamColumnName = "Cam"; o.GradCamClass = 5; }),
            "GradCamClass", "0 to 1", "'Label' has 2 classes");
        Add<ArgumentOutOfRangeException>("Cnn: negative GradCamClass", p => FitCnn(p, o => { o.GradCamColumnName = "Cam"; o.GradCamClass = -1; }), "GradCamClass");
        Add<ArgumentOutOfRangeException>("Cnn: kernel larger than the image", p => FitCnn(p, o => o.Architecture.KernelSize = 7), "KernelSize", "7x7", "4x4", "'Features'");
        Add<ArgumentOutOfRangeException>("Cnn: LeNet's default kernel on 4x4 images", p => FitCnn(p, o => o.Architecture.KernelSize = 0), "KernelSize", "5x5", "4x4");
        Add<ArgumentOutOfRangeException>("Cnn: over MaxParameters", p => FitCnn(p, o => { o.MaxParameters = 1000; o.Architecture.Width = 32; }),
            "MaxParameters", "trainable parameters", "1,000");

        // ---- CNN architecture knobs ----
        Add<ArgumentOutOfRangeException>("Cnn architecture: depth 0", p => FitCnnArchitecture(p, a => a.Depth = 0), "Depth", "1 to 16");
        Add<ArgumentOutOfRangeException>("Cnn architecture: LeNet depth 100", p => FitCnnArchitecture(p, a => a.Depth = 100), "Depth", "1 to 16");
        Add<ArgumentOutOfRangeException>("Cnn architecture: VGG depth 100", p => FitCnnArchitecture(p, a => { a.Family = CnnFamily.Vgg; a.Depth = 100; }), "Depth");
        Add<ArgumentOutOfRangeException>("Cnn architecture: width 0", p => FitCnnArchitecture(p, a => a.Width = 0), "Width");
        Add<ArgumentOutOfRangeException>("Cnn architecture: width 100,000", p => FitCnnArchitecture(p, a => a.Width = 100_000), "Width", "4,096");
        Add<ArgumentOutOfRangeException>("Cnn architecture: channels overflow", p => FitCnnArchitecture(p, a => { a.Depth = 12; a.Width = 64; }), "Width", "131,072 channels", "65,536");
        Add<ArgumentOutOfRangeException>("Cnn architecture: even kernel", p => FitCnnArchitecture(p, a => a.KernelSize = 4), "KernelSize", "odd");
        Add<ArgumentOutOfRangeException>("Cnn architecture: kernel 17", p => FitCnnArchitecture(p, a => a.KernelSize = 17), "KernelSize", "15");
        Add<ArgumentOutOfRangeException>("Cnn architecture: negative kernel", p => FitCnnArchitecture(p, a => a.KernelSize = -1), "KernelSize");
        Add<ArgumentOutOfRangeException>("Cnn architecture: dropout 1", p => FitCnnArchitecture(p, a => a.Dropout = 1), "Dropout", "[0, 1)");
        Add<ArgumentOutOfRangeException>("Cnn architecture: dropout NaN", p => FitCnnArchitecture(p, a => a.Dropout = float.NaN), "Dropout");
        Add<ArgumentOutOfRangeException>("Cnn architecture: layers per block 0", p => FitCnnArchitecture(p, a => a.LayersPerBlock = 0), "LayersPerBlock");
        Add<ArgumentOutOfRangeException>("Cnn architecture: growth rate 0", p => FitCnnArchitecture(p, a => a.GrowthRate = 0), "GrowthRate");
        Add<ArgumentOutOfRangeException>("Cnn architecture: hidden size 0", p => FitCnnArchitecture(p, a => a.HiddenSize = 0), "HiddenSize");
        Add<ArgumentOutOfRangeException>("Cnn architecture: unknown family", p => FitCnnArchitecture(p, a => a.Family = (CnnFamily)99), "Family", "Unknown CNN family");
        Add<ArgumentNullException>("Cnn architecture: null", p => FitCnn(p, o => o.Architecture = null!), "Architecture");
        Add<System.Text.Json.JsonException>("Cnn architecture: JSON null", _ => CnnArchitecture.FromJson("null"), "no CNN architecture");
        Add<System.Text.Json.JsonException>("Cnn architecture: JSON unknown family", _ => CnnArchitecture.FromJson("""{"Family":"Transformer"}"""), "Family");

        // ---- training options (shared by every estimator) ----
        Add<ArgumentOutOfRangeException>("Training: batch size 0", p => FitCnn(p, o => o.BatchSize = 0), "BatchSize");
        Add<ArgumentOutOfRangeException>("Training: batch size -3", p => FitCnn(p, o => o.BatchSize = -3), "BatchSize");
        Add<ArgumentOutOfRangeException>("Training: epochs 0", p => FitCnn(p, o => o.Epochs = 0), "Epochs");
        Add<ArgumentOutOfRangeException>("Training: learning rate 0", p => FitCnn(p, o => o.LearningRate = 0), "LearningRate", "greater than zero");
        Add<ArgumentOutOfRangeException>("Training: learning rate NaN", p => FitCnn(p, o => o.LearningRate = float.NaN), "LearningRate");
        Add<ArgumentOutOfRangeException>("Training: learning rate infinite", p => FitCnn(p, o => o.LearningRate = float.PositiveInfinity), "LearningRate", "finite");
        Add<ArgumentOutOfRangeException>("Training: negative weight decay", p => FitCnn(p, o => o.WeightDecay = -1), "WeightDecay");
        Add<ArgumentOutOfRangeException>("Training: momentum 1", p => FitCnn(p, o => o.Momentum = 1), "Momentum", "[0, 1)");
        Add<ArgumentOutOfRangeException>("Training: step size 0", p => FitCnn(p, o => o.StepSize = 0), "StepSize");
        Add<ArgumentOutOfRangeException>("Training: step gamma 0", p => FitCnn(p, o => o.StepGamma = 0), "StepGamma", "(0, 1]");
        Add<ArgumentOutOfRangeException>("Training: step gamma 2", p => FitCnn(p, o => o.StepGamma = 2), "StepGamma");
        Add<ArgumentOutOfRangeException>("Training: negative patience", p => FitCnn(p, o => o.EarlyStoppingPatience = -1), "EarlyStoppingPatience");
        Add<ArgumentOutOfRangeException>("Training: in-memory limit 0", p => FitCnn(p, o => o.InMemoryLimitBytes = 0), "InMemoryLimitBytes");
        Add<ArgumentOutOfRangeException>("Training: negative shuffle buffer", p => FitCnn(p, o => o.ShuffleBufferRows = -1), "ShuffleBufferRows");
        Add<ArgumentOutOfRangeException>("Training: prefetch 0", p => FitCnn(p, o => o.PrefetchBatches = 0), "PrefetchBatches");
        Add<ArgumentOutOfRangeException>("Training: steps per epoch 0", p => FitCnn(p, o => o.StepsPerEpoch = 0), "StepsPerEpoch");
        Add<ArgumentOutOfRangeException>("Training: negative minimum steps", p => FitCnn(p, o => o.MinimumSteps = -1), "MinimumSteps");
        Add<ArgumentOutOfRangeException>("Training: max parameters 0", p => FitCnn(p, o => o.MaxParameters = 0), "MaxParameters");
        Add<ArgumentOutOfRangeException>("Training: divergence factor 1", p => FitCnn(p, o => o.DivergenceFactor = 1), "DivergenceFactor", "above 1");
        Add<ArgumentOutOfRangeException>("Training: divergence factor NaN", p => FitCnn(p, o => o.DivergenceFactor = double.NaN), "DivergenceFactor");
        Add<ArgumentOutOfRangeException>("Training: threads 0", p => FitCnn(p, o => o.Threads = 0), "Threads", "1 to 1,024");
        Add<ArgumentOutOfRangeException>("Training: threads 5000", p => FitCnn(p, o => o.Threads = 5000), "Threads");
        Add<ArgumentException>("Training: checkpoint directory is a file", p => FitCnn(p, o => o.CheckpointDirectory = TempText("file", "x")), "CheckpointDirectory", "not a file");
        Add<ArgumentNullException>("Training: null callback", p => FitCnn(p, o => o.Callbacks.Add(null!)), "Callbacks");
        Add<ArgumentOutOfRangeException>("Training: unknown data loading", p => FitCnn(p, o => o.DataLoading = (DataLoadingMode)7), "DataLoading");
        Add<ArgumentOutOfRangeException>("Augmentation: negative crop padding", p => FitCnn(p, o => o.Augmentation = new CnnAugmentation { CropPadding = -1 }), "CropPadding");
        Add<ArgumentOutOfRangeException>("Augmentation: flip probability 2", p => FitCnn(p, o => o.Augmentation = new CnnAugmentation { HorizontalFlipProbability = 2 }), "HorizontalFlipProbability");

        // ---- CNN featurizer ----
        Add<ArgumentOutOfRangeException>("Featurizer: missing feature column", p => Ml.Transforms.DeepVariants.CnnFeaturizer(p.Watch(new CnnFeaturizerOptions
        { ImageHeight = 4, ImageWidth = 4, FeatureColumnName = "Pixels", Architecture = new CnnArchitecture { KernelSize = 3 } })).Fit(Images()), "Could not find input column 'Pixels'");
        Add<ArgumentOutOfRangeException>("Featurizer: wrong vector size", p => Ml.Transforms.DeepVariants.CnnFeaturizer(p.Watch(new CnnFeaturizerOptions
        { ImageHeight = 5, ImageWidth = 5, Architecture = new CnnArchitecture { KernelSize = 3 } })).Fit(Images()), "Features", "Vector<Single, 25>");

        // ---- denoising autoencoder ----
        Add<ArgumentOutOfRangeException>("Autoencoder: missing feature column", p => FitAutoencoder(p, o => o.FeatureColumnName = "Pixels"), "Could not find input column 'Pixels'");
        Add<ArgumentOutOfRangeException>("Autoencoder: scalar feature", p => FitAutoencoder(p, o => o.FeatureColumnName = "Label"), "Label", "Vector<Single> of known size");
        Add<ArgumentOutOfRangeException>("Autoencoder: variable-size vector", p => FitAutoencoder(p, data: Series(GoodSeries), change: o => o.FeatureColumnName = "Series"), "Series", "known size");
        Add<ArgumentOutOfRangeException>("Autoencoder: missing clean column", p => FitAutoencoder(p, o => o.CleanColumnName = "Clean"), "Could not find input column 'Clean'");
        Add<ArgumentOutOfRangeException>("Autoencoder: NaN feature", p => FitAutoencoder(p, data: Images(value: (i, j) => i == 4 && j == 2 ? float.NaN : 0)), "Features", "NaN", "row 4");
        Add<ArgumentException>("Autoencoder: empty data", p => FitAutoencoder(p, data: Images(count: 0)), "training data is empty");
        Add<ArgumentOutOfRangeException>("Autoencoder: code size 0", p => FitAutoencoder(p, o => o.CodeSize = 0), "CodeSize");
        Add<ArgumentOutOfRangeException>("Autoencoder: depth 0", p => FitAutoencoder(p, o => o.Depth = 0), "Depth", "1 to 8");
        Add<ArgumentOutOfRangeException>("Autoencoder: depth 40", p => FitAutoencoder(p, o => o.Depth = 40), "Depth", "1 to 8");
        Add<ArgumentOutOfRangeException>("Autoencoder: width 0", p => FitAutoencoder(p, o => o.Width = 0), "Width");
        Add<ArgumentOutOfRangeException>("Autoencoder: negative noise", p => FitAutoencoder(p, o => o.NoiseStandardDeviation = -1), "NoiseStandardDeviation");
        Add<ArgumentException>("Autoencoder: salt and pepper without a range", p => FitAutoencoder(p, o => o.SaltAndPepperProbability = 0.1f), "SaltAndPepperProbability", "InputMinimum");
        Add<ArgumentOutOfRangeException>("Autoencoder: masking probability 1", p => FitAutoencoder(p, o => o.MaskingProbability = 1), "MaskingProbability");
        Add<ArgumentException>("Autoencoder: minimum without maximum", p => FitAutoencoder(p, o => o.InputMinimum = 0), "InputMinimum", "InputMaximum");
        Add<ArgumentException>("Autoencoder: minimum above maximum", p => FitAutoencoder(p, o => { o.InputMinimum = 1; o.InputMaximum = 0; }), "minimum below the maximum");
        Add<ArgumentOutOfRangeException>("Autoencoder: convolutional height not divisible", p => FitAutoencoder(p, o => { o.Kind = AutoencoderKind.Convolutional; o.ImageHeight = 4; o.ImageWidth = 4; o.Depth = 3; }),
            "Depth", "divisible by 8");
        Add<ArgumentOutOfRangeException>("Autoencoder: convolutional size mismatch", p => FitAutoencoder(p, o => { o.Kind = AutoencoderKind.Convolutional; o.ImageHeight = 8; o.ImageWidth = 8; o.Depth = 1; }),
            "Features", "Vector<Single, 64>");
        Add<ArgumentOutOfRangeException>("Autoencoder: convolutional channels overflow", p => FitAutoencoder(p, o => { o.Kind = AutoencoderKind.Convolutional; o.ImageHeight = 256; o.ImageWidth = 256; o.Depth = 8; o.Width = 4096; }),
            "Width", "channels in its last block");
        Add<ArgumentOutOfRangeException>("Autoencoder: over MaxParameters", p => FitAutoencoder(p, o => { o.Width = 65536; o.MaxParameters = 1_000_000; }), "MaxParameters", "trainable parameters");
        Add<ArgumentOutOfRangeException>("Autoencoder: unknown kind", p => FitAutoencoder(p, o => o.Kind = (AutoencoderKind)5), "Kind");

        // ---- sequence classifier ----
        Add<ArgumentOutOfRangeException>("Sequence: missing feature column", p => FitSequence(p, o => o.FeatureColumnName = "Values"), "Could not find input column 'Values'");
        Add<ArgumentOutOfRangeException>("Sequence: missing label column", p => FitSequence(p, o => o.LabelColumnName = "Class"), "Could not find input column 'Class'");
        Add<ArgumentOutOfRangeException>("Sequence: scalar feature", p => FitSequence(p, o => o.FeatureColumnName = "Label"), "Label", "Vector<Single>");
        Add<ArgumentOutOfRangeException>("Sequence: channels 0", p => FitSequence(p, o => o.Channels = 0), "Channels");
        Add<ArgumentOutOfRangeException>("Sequence: length not a whole number of steps", p => FitSequence(p, o => o.Channels = 3, Series([1, 2, 3], [1, 2, 3, 4])), "Series", "row 1", "whole number of steps of 3");
        Add<ArgumentException>("Sequence: empty data is empty, not a single class", p => FitSequence(p, data: Series()), "training data is empty", "Series");
        Add<ArgumentException>("Sequence: single class", p => FitSequence(p, data: Ml.Data.LoadFromEnumerable(GoodSeries.Select(s => new SeriesRow { Series = s, Label = "one" }))), "single class", "one");
        Add<ArgumentOutOfRangeException>("Sequence: infinite value", p => FitSequence(p, data: Series([1, 2], [1, float.NegativeInfinity], [3, 4], [4, 3])), "Series", "an infinite value", "row 1", "step 2");
        Add<ArgumentOutOfRangeException>("Sequence: empty series", p => FitSequence(p, data: Series([1, 2], [float.NaN, float.NaN], [3, 4], [4, 3])), "Series", "empty series", "row 1");
        Add<ArgumentOutOfRangeException>("Sequence: negative max length", p => FitSequence(p, o => o.MaxLength = -1), "MaxLength");
        Add<ArgumentOutOfRangeException>("Sequence: layers 0", p => FitSequence(p, o => o.Architecture.Layers = 0), "Layers", "1 to 16");
        Add<ArgumentOutOfRangeException>("Sequence: layers 17", p => FitSequence(p, o => o.Architecture.Layers = 17), "Layers", "1 to 16");
        Add<ArgumentOutOfRangeException>("Sequence: hidden size 0", p => FitSequence(p, o => o.Architecture.HiddenSize = 0), "HiddenSize");
        Add<ArgumentOutOfRangeException>("Sequence: hidden size 20,000", p => FitSequence(p, o => o.Architecture.HiddenSize = 20_000), "HiddenSize", "16,384");
        Add<ArgumentOutOfRangeException>("Sequence: dropout 1", p => FitSequence(p, o => o.Architecture.Dropout = 1), "Dropout");
        Add<ArgumentOutOfRangeException>("Sequence: unknown cell", p => FitSequence(p, o => o.Architecture.Cell = (RecurrentCell)9), "Cell");
        Add<ArgumentOutOfRangeException>("Sequence: unknown pooling", p => FitSequence(p, o => o.Architecture.Pooling = (SequencePooling)9), "Pooling");
        Add<ArgumentOutOfRangeException>("Sequence: over MaxParameters", p => FitSequence(p, o => { o.Architecture.HiddenSize = 4096; o.Architecture.Layers = 8; }), "MaxParameters", "trainable parameters");
        Add<ArgumentOutOfRangeException>("Sequence: validation class unseen", p => FitSequence(p, validation: Ml.Data.LoadFromEnumerable(new[] { new SeriesRow { Series = [1, 2], Label = "zzz" } })),
            "Label", "'zzz'", "validation");
        Add<InvalidDataException>("Sequence: malformed .ts file", _ => TimeSeriesFile.Read(TempText("bad.ts", "@problemName x\n@data\n1,2:a\n")), ".ts");
        Add<FileNotFoundException>("Sequence: missing .ts file", _ => TimeSeriesFile.Read("/nonexistent/problem_TRAIN.ts"), "problem_TRAIN.ts");

        // ---- GCN node classifier ----
        Add<ArgumentOutOfRangeException>("Gcn: missing node id column", p => FitGcn(p, o => o.NodeIdColumnName = "Id"), "Could not find input column 'Id'");
        Add<ArgumentOutOfRangeException>("Gcn: missing feature column", p => FitGcn(p, o => o.FeatureColumnName = "X"), "Could not find input column 'X'");
        Add<ArgumentOutOfRangeException>("Gcn: numeric label", p => FitGcn(p, o => o.LabelColumnName = "NodeId"), "NodeId", "a key or text label");
        Add<ArgumentOutOfRangeException>("Gcn: missing edge source column", p => FitGcn(p, o => o.EdgeSourceColumnName = "From"), "Could not find input column 'From'");
        Add<ArgumentException>("Gcn: edge to an unknown node", p => FitGcn(p, edges: Edges((0, 1), (1, 42))), "Edge row 1", "node 42", "Target");
        Add<ArgumentException>("Gcn: duplicate node id", p => FitGcn(p, nodes: Ml.Data.LoadFromEnumerable(new[] { 0, 1, 1 }.Select((i, row) => new NodeRow { NodeId = i, Features = [1, 0, 0, 0], Label = row == 1 ? "y" : "x", Split = "train" }))),
            "Node id 1", "NodeId", "more than once");
        Add<ArgumentOutOfRangeException>("Gcn: no hidden layers", p => FitGcn(p, o => o.HiddenSizes = []), "HiddenSizes", "1 to 8");
        Add<ArgumentOutOfRangeException>("Gcn: nine hidden layers", p => FitGcn(p, o => o.HiddenSizes = [4, 4, 4, 4, 4, 4, 4, 4, 4]), "HiddenSizes");
        Add<ArgumentOutOfRangeException>("Gcn: hidden size 0", p => FitGcn(p, o => o.HiddenSizes = [0]), "HiddenSizes");
        Add<ArgumentException>("Gcn: no labelled training node", p => FitGcn(p, nodes: Nodes(split: i => i < 4 ? "test" : "val")), "No training node has a label", "Split");
        Add<ArgumentException>("Gcn: neither split nor train column", p => FitGcn(p, o => o.SplitColumnName = null), "SplitColumnName", "TrainColumnName");
        Add<ArgumentNullException>("Gcn: null unlabelled value", p => FitGcn(p, o => o.UnlabelledValues = [null!]), "UnlabelledValues");
        Add<ArgumentOutOfRangeException>("Gcn: dropout 1", p => FitGcn(p, o => o.Dropout = 1), "Dropout");
        Add<ArgumentException>("Gcn: only unlabelled classes in training", p => FitGcn(p, o => o.UnlabelledValues = ["x", "y"]), "No training node has a label");
        Add<ArgumentOutOfRangeException>("Gcn: over MaxParameters", p => FitGcn(p, o => { o.HiddenSizes = [65536, 65536]; }), "MaxParameters", "smaller HiddenSizes");
        Add<FileNotFoundException>("Gcn model: missing file", _ => GcnGraphModel.Load("/nonexistent/gcn.onnx"), "/nonexistent/gcn.onnx");
        Add<InvalidDataException>("Gcn model: not ONNX", _ => GcnGraphModel.Load(TempText("gcn.onnx", "this is not a model")), "gcn.onnx", "not a DeepVariants GCN model");
        Add<InvalidDataException>("Gcn model: an ONNX file of another kind", _ => GcnGraphModel.Load(TempFile("cnn.onnx", Fitted.Value.OnnxModel)), "cnn.onnx", "no 'deepvariants.gcn'");
        Add<FileNotFoundException>("Planetoid: missing node file", _ => Planetoid.Read("/nonexistent/nodes.tsv", "/nonexistent/edges.tsv"), "/nonexistent/nodes.tsv");
        Add<InvalidDataException>("Planetoid: wrong header", _ => Planetoid.Read(TempText("nodes.tsv", "id\tclass\n"), TempText("edges.tsv", "source\ttarget\n")), "nodes.tsv:1", "header");
        Add<InvalidDataException>("Planetoid: word index not an integer", _ => Planetoid.Read(TempText("nodes.tsv", "node\tlabel\tsplit\tfeatures\n0\ta\ttrain\t1 two\n"), TempText("edges.tsv", "source\ttarget\n")),
            "nodes.tsv:2", "'two' is not an integer");
        Add<InvalidDataException>("Planetoid: word index past the vocabulary", _ => Planetoid.Read(TempText("nodes.tsv", "node\tlabel\tsplit\tfeatures\n0\ta\ttrain\t1 9\n"), TempText("edges.tsv", "source\ttarget\n"), 5),
            "nodes.tsv:2", "word index 9", "0..4");
        Add<InvalidDataException>("Planetoid: edge line with one field", _ => Planetoid.Read(TempText("nodes.tsv", "node\tlabel\tsplit\tfeatures\n0\ta\ttrain\t1\n"), TempText("edges.tsv", "source\ttarget\n0\n")),
            "edges.tsv:2", "2 tab-separated fields");

        // ---- pretrained backbones ----
        Add<FileNotFoundException>("Pretrained: missing backbone", p => FitPretrained(p, o => o.Backbone.ModelPath = "/nonexistent/resnet.onnx"), "/nonexistent/resnet.onnx", "ModelPath");
        Add<InvalidDataException>("Pretrained: truncated backbone", p => FitPretrained(p, o => o.Backbone.ModelPath = TruncatedOnnx()), "truncated.onnx", "not a readable ONNX model");
        Add<InvalidDataException>("Pretrained: text file as backbone", p => FitPretrained(p, o => o.Backbone.ModelPath = TempText("notes.onnx", "a list of things to do")), "notes.onnx");
        Add<FileNotFoundException>("Pretrained: missing classifier to continue from", _ => PretrainedBackboneOptions.FromClassifier("/nonexistent/model.zip"), "/nonexistent/model.zip");
        Add<InvalidDataException>("Pretrained: classifier zip that is not a zip", _ => PretrainedBackboneOptions.FromClassifier(TempText("model.zip", "not a zip")), "model.zip");
        Add<ArgumentException>("Pretrained: empty input column name", p => FitPretrained(p, o => { o.Backbone.ModelPath = TempFile("cnn.onnx", Fitted.Value.OnnxModel); o.Backbone.InputColumnName = ""; }), "InputColumnName");
        Add<InvalidDataException>("Importer: truncated graph", _ => OnnxImporter.Import(Fitted.Value.OnnxModel[..100], null, "half.onnx"), "half.onnx");

        // ---- distillation and pruning ----
        Add<ArgumentOutOfRangeException>("Distill: temperature 0", p => Ml.Transforms.DeepVariants.Distill(Fitted.Value.Model,
            new DistillationOptions { Student = Cnn(p), Temperature = 0 }).Fit(Images()), "Temperature", "greater than zero");
        Add<ArgumentOutOfRangeException>("Distill: alpha 2", p => Ml.Transforms.DeepVariants.Distill(Fitted.Value.Model,
            new DistillationOptions { Student = Cnn(p), Alpha = 2 }).Fit(Images()), "Alpha", "[0, 1]");
        Add<ArgumentOutOfRangeException>("Distill: teacher without the score column", p => Ml.Transforms.DeepVariants.Distill(Fitted.Value.Model,
            new DistillationOptions { Student = Cnn(p), TeacherScoreColumnName = "Probabilities" }).Fit(Images()), "Probabilities");
        Add<ArgumentOutOfRangeException>("Distill: student with a bad architecture", p => Ml.Transforms.DeepVariants.Distill(Fitted.Value.Model,
            new DistillationOptions { Student = Cnn(p, o => o.Architecture.Depth = 50) }).Fit(Images()), "Depth");
        Add<ArgumentOutOfRangeException>("Prune: sparsity 1", p => Ml.Transforms.DeepVariants.Prune(Fitted.Value, p.Watch(new PruningOptions { Sparsity = 1 })).Fit(Images()), "Sparsity", "[0, 1)");
        Add<ArgumentOutOfRangeException>("Prune: negative sparsity", p => Ml.Transforms.DeepVariants.Prune(Fitted.Value, p.Watch(new PruningOptions { Sparsity = -0.1 })).Fit(Images()), "Sparsity");
        Add<ArgumentOutOfRangeException>("Prune: negative fine-tuning epochs", p => Ml.Transforms.DeepVariants.Prune(Fitted.Value, p.Watch(new PruningOptions { Epochs = -1 })).Fit(Images()), "Epochs");
        Add<ArgumentException>("Prune: per-layer sparsity without the per-layer scope", p => Ml.Transforms.DeepVariants.Prune(Fitted.Value,
            p.Watch(new PruningOptions { LayerSparsity = new() { ["conv1"] = 0.5 } })).Fit(Images()), "LayerSparsity", "PerLayer");
        Add<ArgumentOutOfRangeException>("Prune: data of another shape", p => Ml.Transforms.DeepVariants.Prune(Fitted.Value, p.Watch(new PruningOptions { Epochs = 1 })).Fit(Images(size: 9)),
            "Features", "Vector<Single, 16>");
    }

    private sealed class VectorRow
    {
        public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class DoubleRow
    {
        [VectorType(16)]
        public double[] Features { get; set; } = new double[16];
        public string Label { get; set; } = "";
    }

    private sealed class TextRow
    {
        public string Features { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private sealed class SeriesRow
    {
        public float[] Series { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private sealed class NodeRow
    {
        public int NodeId { get; set; }
        [VectorType(4)]
        public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
        public string Split { get; set; } = "";
    }

    private sealed class EdgeRow
    {
        public int Source { get; set; }
        public int Target { get; set; }
    }
}

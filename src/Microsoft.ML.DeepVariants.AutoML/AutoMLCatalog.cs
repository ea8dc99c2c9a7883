using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>How trials are proposed.</summary>
public enum SearchAlgorithm
{
    /// <summary>Tree-structured Parzen Estimator after a few random trials.</summary>
    Tpe,
    /// <summary>Uniform random search.</summary>
    Random,
}

/// <summary>How bad trials are stopped early.</summary>
public enum TrialStopping
{
    /// <summary>Asynchronous successive halving (rungs in epochs, reduction factor 3).</summary>
    Asha,
    /// <summary>The median stopping rule.</summary>
    Median,
    /// <summary>Every trial runs all its epochs.</summary>
    None,
}

/// <summary>An experiment's budgets, workers, journal and algorithms.</summary>
/// <example>
/// <code>
/// var settings = new ExperimentSettings { JournalPath = "cnn-sweep.db", MaxTrials = 27, EpochsPerTrial = 9, MaxTime = TimeSpan.FromMinutes(10) };
/// // Workers on many machines, one study:
/// var shared = new ExperimentSettings { Storage = "postgresql://sweeper@db-host:5432/sweeps", Study = "fashion-cnn", MaxTrials = 200 };
/// </code>
/// </example>
public class ExperimentSettings : SweepSettings
{
    /// <summary>The SQLite journal; an experiment started again on the same file resumes. Default "sweep.db". <see cref="Storage"/>, when set, is used instead.</summary>
    public string JournalPath { get; set; } = "sweep.db";
    /// <summary>
    /// The study storage, shared by every worker of the study: <c>postgresql://user:password@host:port/database</c> for
    /// workers on many machines, or <c>sqlite:///file.db</c>; null for <see cref="JournalPath"/>. Optuna 3.1 reads it too.
    /// </summary>
    public string? Storage { get; set; }
    /// <summary>The study's name in the storage; workers started with the same storage and study share its trials. Default "default".</summary>
    public string Study { get; set; } = SweepJournal.DefaultStudy;
    /// <summary>How trials are proposed. Default TPE.</summary>
    public SearchAlgorithm Search { get; set; } = SearchAlgorithm.Tpe;
    /// <summary>How bad trials are stopped. Default ASHA.</summary>
    public TrialStopping EarlyStopping { get; set; } = TrialStopping.Asha;
    /// <summary>ASHA's reduction factor. Default 3.</summary>
    public int ReductionFactor { get; set; } = 3;
    /// <summary>ASHA's first rung, in epochs. Default 1.</summary>
    public int MinEpochs { get; set; } = 1;
}

/// <summary>Settings of an image-classification experiment: the images' size and columns, and the families to search.</summary>
/// <example><code>var settings = new ImageClassificationExperimentSettings { ImageHeight = 28, ImageWidth = 28, MaxTrials = 30 };</code></example>
public sealed class ImageClassificationExperimentSettings : ExperimentSettings
{
    /// <summary>Image height in pixels.</summary>
    public int ImageHeight { get; set; }
    /// <summary>Image width in pixels.</summary>
    public int ImageWidth { get; set; }
    /// <summary>1 for grayscale, 3 for RGB. Default 1.</summary>
    public int Channels { get; set; } = 1;
    /// <summary>The input column: an image or a CHW float vector. Default "Features".</summary>
    public string FeatureColumnName { get; set; } = "Features";
    /// <summary>The label column, a key for the refit. Default "Label".</summary>
    public string LabelColumnName { get; set; } = "Label";
    /// <summary>The families to search; all when empty.</summary>
    public CnnFamily[] Families { get; set; } = [];
    /// <summary>Where trials train. Default Auto (a GPU when TorchSharp reports one).</summary>
    public TorchDeviceKind Device { get; set; } = TorchDeviceKind.Auto;
}

/// <summary>An experiment ready to run: its sweep and journal.</summary>
/// <example>
/// <code>
/// using var experiment = mlContext.DeepVariantsAutoML.CreateImageClassificationExperiment(train, validation, settings);
/// var result = experiment.Run();
/// experiment.RefitBest(result, "best.zip");
/// </code>
/// </example>
public sealed class SweepExperiment : IDisposable
{
    internal SweepExperiment(SearchSpace space, ITrialRunner runner, ExperimentSettings settings)
    {
        Space = space;
        Journal = SweepJournal.Open(settings.Storage ?? settings.JournalPath, settings.Study);
        IProposer proposer = settings.Search == SearchAlgorithm.Random ? new RandomSearchProposer(space, settings.Seed) : new TpeProposer(space, settings.Seed);
        ITrialScheduler scheduler = settings.EarlyStopping switch
        {
            TrialStopping.Asha => new AshaScheduler { MinEpochs = settings.MinEpochs, ReductionFactor = settings.ReductionFactor },
            TrialStopping.Median => new MedianStoppingRule(),
            _ => new NoEarlyStopping(),
        };
        Sweep = new Sweep(space, runner, proposer, scheduler, Journal, settings);
    }

    /// <summary>The search space.</summary>
    public SearchSpace Space { get; }
    /// <summary>The journal.</summary>
    public SweepJournal Journal { get; }
    /// <summary>The sweep.</summary>
    public Sweep Sweep { get; }

    /// <summary>Runs (or resumes) the sweep.</summary>
    public SweepResult Run() => Sweep.Run();

    /// <summary>Refits the best configuration on training plus validation data and saves it with its configuration JSON beside it.</summary>
    public void RefitBest(SweepResult result, string modelPath) => Sweep.RefitBest(result, modelPath);

    /// <inheritdoc/>
    public void Dispose() => Journal.Dispose();
}

/// <summary>Adds <c>mlContext.DeepVariantsAutoML</c>: Model Builder-style experiments over the DeepVariants models.</summary>
/// <example>
/// <code>
/// using Microsoft.ML.DeepVariants.AutoML;
/// using var experiment = mlContext.DeepVariantsAutoML.CreateImageClassificationExperiment(train, validation,
///     new ImageClassificationExperimentSettings { ImageHeight = 28, ImageWidth = 28, MaxTime = TimeSpan.FromMinutes(10) });
/// SweepResult result = experiment.Run();
/// </code>
/// </example>
public static class AutoMLCatalogExtensions
{
    extension(MLContext mlContext)
    {
        /// <summary>Architecture and hyperparameter sweeps for DeepVariants models.</summary>
        public DeepVariantsAutoMLCatalog DeepVariantsAutoML => new(mlContext);
    }
}

/// <summary>Creates experiments: a task's ready-made search space, its trial runner and a budget.</summary>
public sealed class DeepVariantsAutoMLCatalog
{
    private readonly MLContext _mlContext;

    internal DeepVariantsAutoMLCatalog(MLContext mlContext) => _mlContext = mlContext ?? throw new ArgumentNullException(nameof(mlContext));

    /// <summary>Searches CNN families and hyperparameters for an image classifier, scoring validation accuracy.</summary>
    public SweepExperiment CreateImageClassificationExperiment(IDataView train, IDataView validation, ImageClassificationExperimentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(validation);
        ArgumentNullException.ThrowIfNull(settings);
        var runner = new CnnTrialRunner(_mlContext, train, validation, settings.ImageHeight, settings.ImageWidth, settings.Channels,
            settings.FeatureColumnName, settings.LabelColumnName, settings.Device);
        return new SweepExperiment(SearchSpaces.Cnn(settings.Families), runner, settings);
    }

    /// <summary>Searches LSTM/GRU architectures and hyperparameters for a sequence classifier of <paramref name="channels"/> values per step.</summary>
    public SweepExperiment CreateSequenceClassificationExperiment(IDataView train, IDataView validation, int channels, ExperimentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new SweepExperiment(SearchSpaces.Sequence(), new SequenceTrialRunner(_mlContext, train, validation, channels), settings);
    }

    /// <summary>
    /// Searches tabular network architectures and hyperparameters (<see cref="SearchSpaces.Tabular"/>) for the columns and
    /// the one label of <paramref name="columns"/>, scoring the validation metric (accuracy, or the negative mean squared
    /// error of the standardized label for a regression).
    /// </summary>
    /// <example>
    /// <code>
    /// using var experiment = mlContext.DeepVariantsAutoML.CreateTabularExperiment(train, validation,
    ///     new TabularNetworkOptions { NumericColumnNames = ["Features"], LabelColumnName = "Label" }, new ExperimentSettings { MaxTrials = 20 });
    /// </code>
    /// </example>
    public SweepExperiment CreateTabularExperiment(IDataView train, IDataView validation, Tabular.TabularNetworkOptions columns, ExperimentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new SweepExperiment(SearchSpaces.Tabular(), new TabularTrialRunner(_mlContext, train, validation, columns), settings);
    }

    /// <summary>Any search space and trial runner, with the experiment's budgets, journal and algorithms.</summary>
    public SweepExperiment CreateExperiment(SearchSpace space, ITrialRunner runner, ExperimentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(space);
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(settings);
        return new SweepExperiment(space, runner, settings);
    }
}

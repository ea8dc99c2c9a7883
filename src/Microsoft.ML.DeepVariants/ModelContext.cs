using Microsoft.ML.Runtime;

namespace Microsoft.ML.DeepVariants;

/// <summary>What every DeepVariants estimator needs from its MLContext: the environment (seed, GPU settings, log) and the transforms catalog that builds the ML.NET parts of a fitted model.</summary>
internal sealed class ModelContext
{
    public ModelContext(TransformsCatalog transforms)
    {
        Transforms = transforms;
        Environment = MLNetInternals.GetEnvironment(transforms);
    }

    public ModelContext(IHostEnvironment environment)
    {
        Environment = environment;
        Transforms = MLNetInternals.CreateTransformsCatalog(environment);
    }

    public IHostEnvironment Environment { get; }
    public TransformsCatalog Transforms { get; }

    /// <summary>The options' seed, else the MLContext's, else a fresh one.</summary>
    public int ResolveSeed(int? optionsSeed) => optionsSeed ?? MLNetInternals.GetSeed(Environment) ?? Random.Shared.Next();

    /// <summary>Writes an informational line (or, with <paramref name="warning"/>, a warning) to MLContext.Log under <paramref name="component"/>.</summary>
    public Action<string> Logger(string component, bool warning = false)
    {
        var host = Environment.Register(component);
        return message =>
        {
            using var channel = host.Start("Training");
            if (warning)
                channel.Warning(MessageSensitivity.None, message);
            else
                channel.Info(MessageSensitivity.None, message);
        };
    }
}

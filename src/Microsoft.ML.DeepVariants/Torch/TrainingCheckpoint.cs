using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// The state of a training run after a finished epoch, in one file in the checkpoint folder: the history and loop state
/// (as JSON), the weights, the optimizer's state, the best epoch's weights, the callbacks' states and TorchSharp's random
/// generator. Written to a temporary file and then moved, so a kill leaves the previous checkpoint or the new one, never
/// half of one. A fingerprint of the options, the network and the data guards against resuming another run.
/// </summary>
internal sealed class TrainingCheckpoint(string directory, string fingerprint)
{
    public const string FileName = "training.checkpoint";
    private const string Magic = "DeepVariants.ML training checkpoint 2";

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetFullPath(directory), FileName);

    /// <summary>What the loop needs besides the tensors to go on where it stopped.</summary>
    internal sealed record LoopState(List<TrainingProgress> History, int BestEpoch, double BestScore, double LearningRateScale,
        bool RestoreBest, string? StopReason, Dictionary<string, string?> Callbacks)
    {
        /// <summary>The first batch's loss, before any step: what the divergence guard and the loss-never-moved check compare with.</summary>
        public double? StartingLoss { get; init; }

        /// <summary>True once the divergence guard stopped the run.</summary>
        public bool Diverged { get; init; }
    }

    public void Save(LoopState state, nn.Module model, TrainingOptimizer optimizer, Dictionary<string, Tensor>? best)
    {
        var header = new Header(fingerprint, state);
        AtomicFile.Write(Path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(JsonSerializer.Serialize(header, Json));
            model.save(writer);
            optimizer.Save(writer);
            writer.Write(best?.Count ?? 0);
            foreach (var (name, tensor) in best ?? [])
            {
                writer.Write(name);
                tensor.Save(writer);
            }
            using var rng = random.get_rng_state();
            byte[] bytes = rng.bytes.ToArray();
            writer.Write(bytes.Length);
            writer.Write(bytes);
        });
    }

    /// <summary>Loads the checkpoint into <paramref name="model"/> and <paramref name="optimizer"/>; null when there is none.</summary>
    public LoopState? TryLoad(nn.Module model, TrainingOptimizer optimizer, out Dictionary<string, Tensor>? best)
    {
        best = null;
        if (!File.Exists(Path))
            return null;
        using var stream = File.OpenRead(Path);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        Header header;
        try
        {
            if (reader.ReadString() != Magic)
                throw new InvalidDataException("wrong header");
            header = JsonSerializer.Deserialize<Header>(reader.ReadString(), Json) ?? throw new InvalidDataException("empty header");
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or JsonException or IOException)
        {
            throw new InvalidDataException($"'{Path}' in CheckpointDirectory is not a DeepVariants training checkpoint ({e.Message}); delete it or choose another folder.", e);
        }
        if (header.Fingerprint != fingerprint)
            throw new InvalidOperationException(
                $"CheckpointDirectory '{System.IO.Path.GetDirectoryName(Path)}' holds the checkpoint of another training run (other options, network or data); " +
                "delete it, or choose another folder, to start this one.");
        model.load(reader);
        optimizer.Load(reader);
        int count = reader.ReadInt32();
        if (count > 0)
        {
            var shapes = model.state_dict();
            best = [];
            for (int i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                var tensor = empty(shapes[name].shape, shapes[name].dtype);
                tensor.Load(reader);
                best[name] = tensor;
            }
        }
        byte[] rng = reader.ReadBytes(reader.ReadInt32());
        using (var state = tensor(rng, dtype: ScalarType.Byte))
            random.set_rng_state(state);
        return header.State;
    }

    /// <summary>Removes the checkpoint (training finished).</summary>
    public void Delete()
    {
        if (File.Exists(Path))
            File.Delete(Path);
    }

    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private sealed record Header(string Fingerprint, LoopState State);
}

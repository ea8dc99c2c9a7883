// Training processes the tests start, kill or watch crash:
//   TrainingHost <checkpoint folder> <scores file> [--pause-after N]
//     Trains a small CNN on 1,000 Fashion-MNIST images for 4 epochs with a checkpoint folder, then writes its scores on
//     200 test images. With --pause-after N it stops once epoch N's checkpoint is written, prints "PAUSED N" and waits to be killed.
//   TrainingHost gru-stress <seconds>
//     Trains bidirectional GRUs on 427-step univariate series while another thread forces garbage collections and
//     finalizers, for about that long, and prints "DONE <fits>": the conditions in which TorchSharp's implicitly created
//     Scalars were freed by their finalizer while a native kernel still read them.
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;
using Microsoft.ML.DeepVariants.Sequences;

if (args[0] == "gru-stress")
    return GruStress.Run(double.Parse(args[1], CultureInfo.InvariantCulture));

string checkpoint = args[0], scoresPath = args[1];
int pauseAfter = args.Length > 3 && args[2] == "--pause-after" ? int.Parse(args[3], CultureInfo.InvariantCulture) : 0;
var ml = new MLContext(seed: 7);
ml.Log += (_, e) => { if (e.Message.Contains("Epoch") || e.Message.Contains("Resuming")) Console.WriteLine(e.Message); };
var train = ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Train, maxRows: 1000));
var test = ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Test, maxRows: 200));
var options = new CnnClassifierOptions
{
    ImageHeight = 28, ImageWidth = 28, Epochs = 4, BatchSize = 50, LearningRate = 2e-3f, Device = TorchDeviceKind.Cpu,
    Architecture = new CnnArchitecture { Width = 8, HiddenSize = 32, Dropout = 0.2f },
    Augmentation = new CnnAugmentation { HorizontalFlipProbability = 0.5f, NoiseStandardDeviation = 0.05f },
    Schedule = LearningRateSchedule.Cosine, CheckpointDirectory = checkpoint,
};
options.Callbacks.Add(new ReduceLearningRateOnPlateau { Patience = 1, MinimumDelta = 1e9 });
// The first batch of the next epoch comes after epoch N's checkpoint is on disk: pause there, and wait to be killed.
options.Progress = new PauseAt(pauseAfter + 1);
var model = ml.Transforms.DeepVariants.CnnClassifier(options).Fit(train);
var scores = model.Transform(test).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();
File.WriteAllBytes(scoresPath, System.Runtime.InteropServices.MemoryMarshal.AsBytes(scores.AsSpan()).ToArray());
Console.WriteLine($"DONE {scores.Length / 10} rows");
return 0;

sealed class PauseAt(int epoch) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        if (value.Epoch != epoch || value.IsEpochEnd || epoch == 1)
            return;
        Console.WriteLine($"PAUSED {epoch - 1}");
        Thread.Sleep(Timeout.Infinite);
    }
}

static class GruStress
{
    public static int Run(double seconds)
    {
        var random = new Random(5);
        // Three classes of 427-step series: sines of 1, 2 or 3 periods over the series, with noise.
        var rows = Enumerable.Range(0, 48).Select(i => new SeriesRow
        {
            Label = (i % 3).ToString(CultureInfo.InvariantCulture),
            Series = Enumerable.Range(0, 427).Select(t => (float)(Math.Sin(2 * Math.PI * (i % 3 + 1) * t / 427.0) + 0.3 * (random.NextDouble() - 0.5))).ToArray(),
        }).ToList();
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int fits = 0;
        while (clock.Elapsed.TotalSeconds < seconds || fits == 0)
        {
            var ml = new MLContext(seed: fits);
            var options = new SequenceClassifierOptions
            {
                Epochs = 2, BatchSize = 16, MinimumSteps = 0, Device = TorchDeviceKind.Cpu,
                Architecture = new SequenceArchitecture { Cell = RecurrentCell.Gru, Bidirectional = true, HiddenSize = 16 },
            };
            var model = ml.Transforms.DeepVariants.SequenceClassifier(options).Fit(ml.Data.LoadFromEnumerable(rows));
            fits++;
            Console.WriteLine($"fit {fits} after {clock.Elapsed.TotalSeconds:F0} s");
        }
        stop.Cancel();
        Console.WriteLine($"DONE {fits}");
        return 0;
    }
}

sealed class SeriesRow
{
    public float[] Series { get; set; } = [];
    public string Label { get; set; } = "";
}

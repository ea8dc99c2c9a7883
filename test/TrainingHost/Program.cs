// Trains a small CNN on 1,000 Fashion-MNIST images for 4 epochs with a checkpoint folder, then writes its scores on
// 200 test images. With --pause-after N it stops once epoch N's checkpoint is written, prints "PAUSED N" and waits to be killed.
//   TrainingHost <checkpoint folder> <scores file> [--pause-after N]
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Datasets;

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

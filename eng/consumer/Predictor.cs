// The consumer test's second application (eng/consumer-test.sh): it references Microsoft.ML, its ONNX transformer and
// ONNX Runtime only, loads the model the first one saved, and predicts the same rows with the same scores.
using Microsoft.ML;
using Microsoft.ML.Data;

string modelPath = args[0];
var ml = new MLContext(seed: 1);
var model = ml.Model.Load(modelPath, out _);
var rows = ml.Data.LoadFromTextFile(Path.ChangeExtension(modelPath, ".rows.csv"), separatorChar: ',', columns:
[
    new TextLoader.Column("Features", DataKind.Single, 0, 783),
    new TextLoader.Column("Expected", DataKind.Single, 784, 793),
]);
var scored = model.Transform(rows);
var scores = scored.GetColumn<float[]>("Score").ToArray();
var expected = scored.GetColumn<float[]>("Expected").ToArray();
float gap = scores.Zip(expected, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
Console.WriteLine($"predictor: {scores.Length} rows, largest score difference from the trainer {gap:E2}");
if (scores.Length == 0 || gap > 1e-5f)
    throw new InvalidOperationException("The plain ML.NET application does not predict what the trainer did.");

// The consumer test's first application (eng/consumer-test.sh): it references the DeepVariants packages from a
// local feed only, trains a small CNN on Fashion-MNIST, saves it, and writes test rows with its predictions.
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants;
using Microsoft.ML.DeepVariants.Datasets;

string modelPath = args[0];
var ml = new MLContext(seed: 1);
var train = ml.Data.LoadFromEnumerable(FashionMnist.Read(FashionMnistSplit.Train, maxRows: 2000));
var test = FashionMnist.Read(FashionMnistSplit.Test, maxRows: 200);
var model = ml.Transforms.DeepVariants.CnnClassifier(28, 28, epochs: 2).Fit(train);
ml.Model.Save(model, train.Schema, modelPath);

var scored = model.Transform(ml.Data.LoadFromEnumerable(test));
var named = ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(scored).Transform(scored);
double accuracy = named.GetColumn<string>("PredictedClass").Zip(test, (p, row) => p == row.Label ? 1.0 : 0.0).Average();
Console.WriteLine($"trainer: accuracy {accuracy:P1} on {test.Count} test images");
if (accuracy < 0.6)
    throw new InvalidOperationException("The CNN did not learn.");
// The rows, with the trainer's scores, for the plain ML.NET application to predict and compare.
var scores = scored.GetColumn<float[]>("Score").ToArray();
using var writer = new StreamWriter(Path.ChangeExtension(modelPath, ".rows.csv"));
for (int i = 0; i < test.Count; i++)
    writer.WriteLine(string.Join(",", test[i].Features.Concat(scores[i]).Select(v => v.ToString("R", CultureInfo.InvariantCulture))));

// Loads a saved ML.NET model and predicts with ML.NET alone: no DeepVariants or TorchSharp assembly is referenced.
//   PlainMLNet.Host <model.zip> <rows.tsv> <columns> <output column> <predictions.tsv>
// <columns> describes the rows for ML.NET's TextLoader: name:kind:first-last, comma-separated, with kinds R4 (float),
// I4 (int32) or TX (text), and '*' as the last index of a variable-length vector ("Series:R4:0-*").
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

if (args.Length != 5)
{
    Console.Error.WriteLine("usage: PlainMLNet.Host <model.zip> <rows.tsv> <columns> <output column> <predictions.tsv>");
    return 2;
}
var ml = new MLContext();
var model = ml.Model.Load(args[0], out _);
var columns = args[2].Split(',').Select(spec =>
{
    var parts = spec.Split(':');
    var kind = parts[1] switch { "R4" => DataKind.Single, "I4" => DataKind.Int32, "TX" => DataKind.String, var k => throw new ArgumentException($"unknown kind {k}") };
    var range = parts[2].Split('-');
    var textRange = range.Length == 1 ? new TextLoader.Range(int.Parse(range[0], CultureInfo.InvariantCulture))
        : range[1] == "*" ? new TextLoader.Range(int.Parse(range[0], CultureInfo.InvariantCulture), null) { AutoEnd = false, VariableEnd = true }
        : new TextLoader.Range(int.Parse(range[0], CultureInfo.InvariantCulture), int.Parse(range[1], CultureInfo.InvariantCulture));
    return new TextLoader.Column(parts[0], kind, [textRange]);
}).ToArray();
var rows = ml.Data.LoadFromTextFile(args[1], columns, separatorChar: '\t', hasHeader: false);
var scored = model.Transform(rows);
var output = scored.Schema[args[3]];
using (var writer = new StreamWriter(args[4]))
using (var cursor = scored.GetRowCursor([output]))
{
    if (output.Type is VectorDataViewType)
    {
        var get = cursor.GetGetter<VBuffer<float>>(output);
        VBuffer<float> value = default;
        while (cursor.MoveNext())
        {
            get(ref value);
            writer.WriteLine(string.Join('\t', value.DenseValues().Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
        }
    }
    else
    {
        var get = cursor.GetGetter<float>(output);
        float value = 0;
        while (cursor.MoveNext())
        {
            get(ref value);
            writer.WriteLine(value.ToString("R", CultureInfo.InvariantCulture));
        }
    }
}
// What this process loaded, so the test can check that no DeepVariants or TorchSharp code was needed.
Console.WriteLine("assemblies: " + string.Join(" ", AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).Order()));
return 0;

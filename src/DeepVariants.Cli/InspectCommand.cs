using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Data;
using Onnx;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

// Microsoft.ML has a Command namespace, which would hide System.CommandLine's type inside this namespace.
using Command = System.CommandLine.Command;

/// <summary>
/// <c>deepvariants inspect</c> (what a saved model or ONNX file holds: columns, transformers, graphs, operators,
/// parameters) and <c>deepvariants export</c> (the ONNX graph out of a saved model).
/// </summary>
internal static class InspectCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var path = new Argument<string>("path") { Description = "A saved model (.zip) or an ONNX file (.onnx)." };
        var command = new Command("inspect", "Show what a saved model or an ONNX file contains: input and output columns, the transformers, " +
            "and each ONNX graph's inputs, outputs, operators and parameters.\nExamples:\n  deepvariants inspect model/model.zip\n  deepvariants inspect resnet18.onnx")
        {
            path,
        };
        command.SetAction(parse => Inspect(parse.GetValue(path)!, console));
        return command;
    }

    public static Command CreateExport(IAnsiConsole console)
    {
        var model = new Option<string>("--model") { Description = "The saved model (.zip).", Required = true };
        var output = new Option<string>("--output") { Description = "The ONNX file to write; a model with several graphs writes NAME-2.onnx and so on beside it. Example: --output model.onnx", DefaultValueFactory = _ => "model.onnx" };
        var command = new Command("export", "Write the ONNX graph that serves a saved model, to run it with ONNX Runtime anywhere.\n" +
            "Example:\n  deepvariants export --model model/model.zip --output model.onnx")
        {
            model, output,
        };
        command.SetAction(parse => Export(parse.GetValue(model)!, parse.GetValue(output)!, console));
        return command;
    }

    private static int Inspect(string path, IAnsiConsole console)
    {
        if (!File.Exists(path))
            throw new UsageException($"inspect: '{path}' does not exist; expected a saved model (.zip) or an ONNX file (.onnx).");
        if (Path.GetExtension(path).Equals(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            Describe(console, Path.GetFileName(path), OnnxFile.Read(path, "inspect"), new FileInfo(path).Length);
            return CommandLine.Success;
        }
        var ml = new MLContext(1);
        var saved = SavedModel.Load(ml, path, "inspect");
        console.MarkupLine(Markup.Escape($"{path}: an ML.NET model, {new FileInfo(path).Length:N0} bytes, reading {saved.Kind.ToString().ToLowerInvariant()}."));
        var output = saved.Model.GetOutputSchema(saved.Input);
        var columns = new Table().AddColumns("column", "type", "");
        foreach (var column in saved.Input)
            columns.AddRow(Markup.Escape(column.Name), Markup.Escape(column.Type.ToString() ?? ""), "input");
        foreach (var column in output.Where(c => !c.IsHidden && saved.Input.GetColumnOrNull(c.Name) is null))
            columns.AddRow(Markup.Escape(column.Name), Markup.Escape(column.Type.ToString() ?? ""), "output");
        console.Write(columns);
        console.MarkupLine(Markup.Escape("Transformers: " + string.Join(" -> ", Steps(saved.Model))));
        if (saved.Card is { } card)
            console.MarkupLine(Markup.Escape($"Trained by deepvariants train: {card.Task} of '{card.Label}' on {card.Data}."));
        var graphs = SavedModel.OnnxGraphs(path);
        if (graphs.Count == 0)
            console.MarkupLine("No ONNX graph inside.");
        foreach (var (entry, bytes) in graphs)
            Describe(console, entry, ModelProto.Parser.ParseFrom(bytes), bytes.Length);
        return CommandLine.Success;
    }

    private static IEnumerable<string> Steps(ITransformer model) => model is IEnumerable<ITransformer> chain
        ? chain.SelectMany(Steps)
        : [model.GetType().Name.Split('`')[0].Replace("Transformer", "", StringComparison.Ordinal)];

    private static void Describe(IAnsiConsole console, string name, ModelProto model, long bytes)
    {
        var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        console.MarkupLine(Markup.Escape($"ONNX graph {name}: {bytes:N0} bytes, IR {model.IrVersion}, opsets {OnnxFile.Opsets(model)}, " +
            $"producer '{model.ProducerName}', {model.Graph.Node.Count:N0} nodes, {OnnxFile.Parameters(model):N0} parameters."));
        var values = new Table().AddColumns("", "name", "type");
        foreach (var input in model.Graph.Input.Where(i => !initializers.Contains(i.Name)))
            values.AddRow("input", Markup.Escape(input.Name), Markup.Escape(OnnxFile.Describe(input)));
        foreach (var output in model.Graph.Output)
            values.AddRow("output", Markup.Escape(output.Name), Markup.Escape(OnnxFile.Describe(output)));
        console.Write(values);
        console.MarkupLine(Markup.Escape("Operators: " + string.Join(", ", OnnxFile.Operators(model).Select(o => $"{o.Operator} {o.Count.ToString(CultureInfo.InvariantCulture)}"))));
    }

    private static int Export(string modelPath, string output, IAnsiConsole console)
    {
        if (Directory.Exists(output))
            throw new UsageException($"--output: '{output}' is a folder; expected the .onnx file to write.");
        var saved = SavedModel.Load(new MLContext(1), modelPath, "--model");
        var graphs = SavedModel.OnnxGraphs(saved.Path);
        if (graphs.Count == 0)
            throw new UsageException($"--model: '{modelPath}' holds no ONNX graph (it was not trained by DeepVariants.ML, or it serves through other ML.NET transformers).");
        for (int i = 0; i < graphs.Count; i++)
        {
            string path = i == 0 ? output : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, $"{Path.GetFileNameWithoutExtension(output)}-{i + 1}.onnx");
            OutputFiles.Write(path, stream => stream.Write(graphs[i].Bytes));
            console.MarkupLine(Markup.Escape($"Wrote {path} ({graphs[i].Bytes.Length:N0} bytes) from {graphs[i].Entry}."));
        }
        if (graphs.Count > 1)
            console.MarkupLine("The model's graphs run in the order written; the ML.NET steps between them (such as image loading) are not in the ONNX files.");
        else
            console.MarkupLine("The ML.NET steps before the graph (such as loading and resizing images) are not in the ONNX file; feed it what they produce.");
        return CommandLine.Success;
    }
}

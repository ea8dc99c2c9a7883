using System.Collections;
using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.AutoML.Tests;

/// <summary>
/// The README and the pages in docs/ stay true: every C# snippet compiles as written (its own using lines, nothing
/// undefined) against the packages' assemblies, and every generated section (option tables from the XML docs, the
/// command line's options, benchmark tables) matches what its source says now. With DEEPVARIANTS_WRITE_DOCS=1 the
/// test writes the generated sections instead of comparing them:
/// <c>DEEPVARIANTS_WRITE_DOCS=1 dotnet test --project test/Microsoft.ML.DeepVariants.AutoML.Tests -c Release --filter FullyQualifiedName~DocumentationTests</c>.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class DocumentationTests
{
    private static readonly Regex Generated = new(@"<!-- (options|command|benchmark): (\S+) -->\n.*?<!-- /\1 -->", RegexOptions.Singleline);

    public TestContext TestContext { get; set; } = null!;

    private static string Repository
    {
        get
        {
            for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
                if (File.Exists(Path.Combine(folder.FullName, "DeepVariants.ML.sln")))
                    return folder.FullName;
            throw new InvalidOperationException($"No DeepVariants.ML.sln above {AppContext.BaseDirectory}.");
        }
    }

    private static IEnumerable<string> Pages() =>
        new[] { Path.Combine(Repository, "README.md") }.Concat(Directory.GetFiles(Path.Combine(Repository, "docs"), "*.md").Order(StringComparer.Ordinal));

    [TestMethod]
    public void EveryCSharpSnippetOfTheReadmeAndTheDocsCompilesAsWritten()
    {
        // What a new console app sees: the SDK's implicit usings, and the assemblies this test runs with (the packages and their dependencies).
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.Ordinal)).Select(p => MetadataReference.CreateFromFile(p)).ToList();
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var implicitUsings = CSharpSyntaxTree.ParseText(
            "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
            "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;", parse);
        var failures = new List<string>();
        int snippets = 0;
        foreach (string page in Pages())
        {
            string text = File.ReadAllText(page).Replace("\r\n", "\n");
            foreach (Match block in Regex.Matches(text, @"^```csharp\n(.*?)^```", RegexOptions.Singleline | RegexOptions.Multiline))
            {
                snippets++;
                int line = text[..block.Index].Count(c => c == '\n') + 2;
                var tree = CSharpSyntaxTree.ParseText(block.Groups[1].Value, parse, path: $"{Path.GetFileName(page)}:{line}");
                var compilation = CSharpCompilation.Create($"Snippet{snippets}", [implicitUsings, tree], references,
                    new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
                var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
                if (errors.Count > 0)
                    failures.Add($"{Path.GetFileName(page)}, snippet at line {line}:\n  " +
                        string.Join("\n  ", errors.Take(8).Select(e => $"line {line + e.Location.GetLineSpan().StartLinePosition.Line}: {e.GetMessage(CultureInfo.InvariantCulture)}")));
            }
        }
        TestContext.WriteLine($"{snippets} snippets compiled");
        Assert.IsEmpty(failures, string.Join("\n", failures));
        Assert.IsGreaterThan(15, snippets, "the README and every docs page have their examples");
    }

    [TestMethod]
    public void GeneratedSectionsOfTheDocsMatchTheirSources()
    {
        bool write = Environment.GetEnvironmentVariable("DEEPVARIANTS_WRITE_DOCS") == "1";
        var stale = new List<string>();
        int sections = 0;
        foreach (string page in Pages())
        {
            string text = File.ReadAllText(page).Replace("\r\n", "\n");
            string updated = Generated.Replace(text, match =>
            {
                sections++;
                return $"<!-- {match.Groups[1].Value}: {match.Groups[2].Value} -->\n{Section(match.Groups[1].Value, match.Groups[2].Value)}<!-- /{match.Groups[1].Value} -->";
            });
            if (updated == text)
                continue;
            if (write)
                File.WriteAllText(page, updated);
            else
                stale.Add(Path.GetFileName(page));
        }
        TestContext.WriteLine($"{sections} generated sections");
        Assert.IsGreaterThan(15, sections, "every capability page has its option table and figures");
        Assert.IsEmpty(stale, $"out of date (the XML docs, options or benchmarks changed): {string.Join(", ", stale)}; " +
            "regenerate with DEEPVARIANTS_WRITE_DOCS=1 and this test");
    }

    private static string Section(string kind, string argument) => kind switch
    {
        "options" => OptionsTable(argument),
        "command" => CommandTable(argument),
        _ => BenchmarkTable(argument),
    };

    // The options a class declares (not those of TrainingOptions, which docs/training.md lists), their defaults from a
    // new instance, and their XML summaries.
    private static string OptionsTable(string typeName)
    {
        var type = new[] { typeof(TrainingOptions).Assembly, typeof(SweepResult).Assembly }.Select(a => a.GetType(typeName)).FirstOrDefault(t => t is not null)
            ?? throw new InvalidOperationException($"No type {typeName}.");
        var instance = type.GetConstructor(Type.EmptyTypes) is not null ? Activator.CreateInstance(type) : null;
        var stop = type == typeof(TrainingOptions) ? typeof(object) : typeof(TrainingOptions);
        var rows = new StringBuilder("| Option | Default | What it does |\n|---|---|---|\n");
        for (var level = type; level is not null && level != stop && level != typeof(object); level = level.BaseType)
        {
            foreach (var property in level.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly).Where(p => p.CanRead && p.GetMethod!.IsPublic))
            {
                string defaultValue = instance is null ? "" : Format(property.GetValue(instance));
                rows.Append($"| `{property.Name}` | {defaultValue} | {Cell(XmlSummary($"P:{level.FullName}.{property.Name}"))} |\n");
            }
        }
        return rows.ToString();
    }

    private static string CommandTable(string name)
    {
        var root = Cli.CommandLine.CreateRootCommand(AnsiConsole.Console);
        // "study.show" names the subcommand show of study.
        System.CommandLine.Command command = root;
        foreach (string part in name.Split('.'))
            command = command.Subcommands.Single(c => c.Name == part);
        // The description's first line, then its indented example lines as a shell block.
        var lines = (command.Description ?? "").Split('\n');
        var examples = lines.Where(l => l.StartsWith("  ", StringComparison.Ordinal)).Select(l => l.Trim()).ToList();
        var rows = new StringBuilder(lines[0] + "\n\n");
        if (examples.Count > 0)
            rows.Append($"```bash\n{string.Join("\n", examples)}\n```\n\n");
        var options = command.Options.Where(o => !o.Hidden && o.Name != "--help").ToList();
        if (options.Count == 0 && command.Arguments.Count == 0)
            return rows.ToString();  // a group of subcommands, each with its own table
        rows.Append("| Option | Default | What it does |\n|---|---|---|\n");
        foreach (var option in options)
        {
            string defaultValue = option.HasDefaultValue ? Format(option.GetDefaultValue()) : option.Required ? "required" : "";
            rows.Append($"| `{option.Name}` | {defaultValue} | {Cell(option.Description ?? "")} |\n");
        }
        foreach (var argument in command.Arguments)
            rows.Append($"| `{argument.Name}` (argument) | required | {Cell(argument.Description ?? "")} |\n");
        return rows.ToString();
    }

    // The first table of a benchmark report, with the command that wrote it.
    private static string BenchmarkTable(string report)
    {
        var lines = File.ReadAllLines(Path.Combine(Repository, "docs", "benchmarks", report));
        string command = lines.FirstOrDefault(l => l.StartsWith("Command:", StringComparison.Ordinal)) ?? "";
        var table = lines.SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|'));
        return $"From [benchmarks/{report}](benchmarks/{report}). {command}\n\n{string.Join("\n", table)}\n";
    }

    private static readonly Lazy<Dictionary<string, XElement>> Members = new(() =>
        new[] { "Microsoft.ML.DeepVariants.xml", "Microsoft.ML.DeepVariants.AutoML.xml" }
            .SelectMany(f => XDocument.Load(Path.Combine(AppContext.BaseDirectory, f)).Descendants("member"))
            // Source-generated types (GeneratedRegex's helpers) appear in each assembly's docs under one name.
            .GroupBy(m => (string)m.Attribute("name")!)
            .ToDictionary(g => g.Key, g => g.First()));

    private static string XmlSummary(string member)
    {
        if (!Members.Value.TryGetValue(member, out var element) || element.Element("summary") is not { } summary)
            throw new InvalidOperationException($"{member} has no XML summary; every public option needs one.");
        var text = new StringBuilder();
        foreach (var node in summary.Nodes())
            text.Append(node switch
            {
                XText t => t.Value,
                XElement { Name.LocalName: "see" } see => $"`{((string?)see.Attribute("cref") ?? (string?)see.Attribute("langword") ?? "").Split('.', ':').Last()}`",
                XElement { Name.LocalName: "c" or "paramref" or "typeparamref" } c => $"`{c.Value}{(string?)c.Attribute("name")}`",
                XElement other => other.Value,
                _ => "",
            });
        return Regex.Replace(text.ToString(), @"\s+", " ").Trim();
    }

    private static string Cell(string text) => text.Replace("|", "\\|").Replace("\n", " ");

    private static string Format(object? value) => value switch
    {
        null => "null",
        CancellationToken => "none",
        string s => $"`\"{s}\"`",
        bool b => b ? "`true`" : "`false`",
        float f => $"`{f.ToString("R", CultureInfo.InvariantCulture)}`",
        double d => $"`{d.ToString("R", CultureInfo.InvariantCulture)}`",
        Enum e => $"`{e}`",
        IFormattable f => $"`{f.ToString(null, CultureInfo.InvariantCulture)}`",
        ICollection { Count: 0 } => "empty",
        IEnumerable items when value is not string => $"`[{string.Join(", ", items.Cast<object?>().Select(i => Format(i).Trim('`')))}]`",
        _ => $"a `{value.GetType().Name}`",
    };
}

using System.CommandLine;
using Spectre.Console;

namespace Microsoft.ML.DeepVariants.Cli;

/// <summary>
/// A mistake in what the user gave the tool (a file, a folder, an option): reported as one line that names it, with
/// exit code <see cref="CommandLine.BadInput"/> and no stack trace.
/// </summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The <c>deepvariants</c> command line: <c>train</c>, <c>evaluate</c>, <c>predict</c>, <c>sweep</c>, <c>inspect</c> and
/// <c>export</c>. Exit codes: 0 done, 1 the work failed (every trial failed, an unexpected error), 2 bad input (a file,
/// folder or option; nothing is written), 130 cancelled.
/// </summary>
/// <example><code>return CommandLine.Run(["train", "--data", "images/", "--output", "model"]);</code></example>
public static class CommandLine
{
    /// <summary>The exit code of a run that did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>The exit code of a run whose work failed: every trial failed, or an error that is not the user's.</summary>
    public const int Failed = 1;

    /// <summary>The exit code of a run refused before any work: a missing or unreadable file, a bad option.</summary>
    public const int BadInput = 2;

    /// <summary>The exit code of a run stopped with Ctrl+C.</summary>
    public const int Cancelled = 130;

    /// <summary>Runs the tool on <paramref name="args"/>, writing to <paramref name="console"/> (the terminal when null).</summary>
    public static int Run(string[] args, IAnsiConsole? console = null)
    {
        TextWriter? help = null;
        if (console is null)
        {
            console = AnsiConsole.Console;
            help = Console.Out;
            // Logs and pipes get whole lines, not lines wrapped at 80 columns.
            if (Console.IsOutputRedirected)
                console.Profile.Width = 240;
        }
        var parsed = CreateRootCommand(console).Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
                console.MarkupLine($"[red]error:[/] {Markup.Escape(error.Message)}");
            console.MarkupLine("Run with --help to see the commands and their options.");
            return BadInput;
        }
        try
        {
            // Asynchronous, so Ctrl+C (SIGINT, SIGTERM) cancels the actions' token instead of ending the process: a sweep
            // then leaves its trial in flight queued for the next worker. Half a minute lets a trial reach its next check.
            return parsed.InvokeAsync(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false, Output = help ?? new ConsoleWriter(console), ProcessTerminationTimeout = TimeSpan.FromSeconds(30),
            }).GetAwaiter().GetResult();
        }
        catch (Exception e) when (Unwrap(e) is OperationCanceledException)
        {
            console.MarkupLine("[yellow]cancelled[/]");
            return Cancelled;
        }
        catch (Exception e) when (IsUsersMistake(Unwrap(e)))
        {
            console.MarkupLine($"[red]error:[/] {Markup.Escape(Unwrap(e).Message)}");
            return BadInput;
        }
        catch (Exception e)
        {
            var inner = Unwrap(e);
            console.MarkupLine($"[red]failed:[/] {Markup.Escape(inner.Message)} ({inner.GetType().Name})");
            if (Environment.GetEnvironmentVariable("DEEPVARIANTS_TRACE") == "1")
                console.WriteLine(inner.ToString());
            else
                console.MarkupLine("Set DEEPVARIANTS_TRACE=1 to see where it failed.");
            return Failed;
        }
    }

    /// <summary>The commands and their options, writing to <paramref name="console"/> (docs/command-line.md is generated from them).</summary>
    public static RootCommand CreateRootCommand(IAnsiConsole console) =>
        new("DeepVariants.ML: deep-learning variants for ML.NET. Train, evaluate, predict, sweep, inspect and export models.")
        {
            TrainCommand.Create(console), EvaluateCommand.Create(console), PredictCommand.Create(console), SweepCommand.Create(console),
            InspectCommand.Create(console), InspectCommand.CreateExport(console), StudyCommand.Create(console),
        };

    private static Exception Unwrap(Exception e) => e is AggregateException { InnerExceptions.Count: 1 } a ? Unwrap(a.InnerExceptions[0]) : e;

    // What the package throws for input it refuses before training: options, schemas, files. Anything else is a failure.
    private static bool IsUsersMistake(Exception e) =>
        e is UsageException or ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or FormatException;

    /// <summary>System.CommandLine's help and messages, through the same console as everything else.</summary>
    private sealed class ConsoleWriter(IAnsiConsole console) : StringWriter
    {
        public override void Write(char value) => console.Write(value.ToString());
        public override void Write(string? value) => console.Write(value ?? "");
        public override void Write(char[] buffer, int index, int count) => console.Write(new string(buffer, index, count));
    }
}

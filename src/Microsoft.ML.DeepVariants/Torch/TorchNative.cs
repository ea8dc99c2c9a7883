using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Loads TorchSharp's native library before the first fit and, when it cannot, says why: TorchSharp's own message
/// ("doesn't contain a reference to libtorch-cpu-linux-x64") is the same whether the package is missing or the system
/// libstdc++ lacks a symbol version the library asks for, so the library is loaded here directly and the loader's
/// own error is read.
/// </summary>
internal static class TorchNative
{
    private const string LibraryName = "libLibTorchSharp.so";
    private static readonly Lazy<Exception?> Failure = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Throws, once per process the same way, when TorchSharp cannot run here.</summary>
    public static void EnsureLoaded()
    {
        if (Failure.Value is { } failure)
            throw new InvalidOperationException(failure.Message, failure.InnerException);
    }

    private static Exception? Probe()
    {
        try
        {
            InitializeDeviceType(DeviceType.CPU);
            return null;
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            return new InvalidOperationException(Explain(e, AppContext.BaseDirectory), e);
        }
    }

    /// <summary>What went wrong loading TorchSharp for an application whose files are in <paramref name="baseDirectory"/>, and what to do.</summary>
    public static string Explain(Exception failure, string baseDirectory)
    {
        if (!OperatingSystem.IsLinux())
            return $"TorchSharp could not start: {failure.Message}";
        string[] candidates = [Path.Combine(baseDirectory, LibraryName), Path.Combine(baseDirectory, "runtimes", "linux-x64", "native", LibraryName)];
        string? library = candidates.FirstOrDefault(File.Exists);
        if (library is null)
            return $"TorchSharp's native library ({LibraryName}) is not among the application's files in '{baseDirectory}'. Reference the package " +
                "libtorch-cpu-linux-x64 (version 2.10.0) in the application itself, not only in a library it uses, and build it again.";
        string loaderError;
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(library));
            return $"TorchSharp could not start although '{library}' loads: {failure.Message}";
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            loaderError = e.Message;
        }
        int version = loaderError.IndexOf("GLIBCXX_", StringComparison.Ordinal);
        if (version >= 0)
        {
            string name = new(loaderError[version..].TakeWhile(c => char.IsLetterOrDigit(c) || c is '_' or '.').ToArray());
            return $"The system libstdc++ lacks the symbol version {name} that '{library}' asks for (Debian 12 and Ubuntu 22.04 ship an older one). " +
                "The Microsoft.ML.DeepVariants package marks that requirement weak when the application is built (its buildTransitive targets): " +
                "build the application again with the package referenced, check that DeepVariantsSkipNativeCompat is not set, or install a newer libstdc++6. " +
                $"The loader said: {loaderError}";
        }
        return $"TorchSharp's native library '{library}' could not be loaded: {loaderError}";
    }
}

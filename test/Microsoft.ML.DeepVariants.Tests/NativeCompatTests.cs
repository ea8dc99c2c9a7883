using System.Reflection;
using System.Security.Cryptography;
using DeepVariants.Build;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>The Debian 12 build step (eng/TorchSharpNativeCompat.*) and its effect on the build output.</summary>
[TestClass]
public sealed class NativeCompatTests
{
    private const string Version = "GLIBCXX_3.4.32";

    private static string CachedLibrary()
    {
        string root = typeof(NativeCompatTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "NuGetPackageRoot").Value!;
        string path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.IsTrue(File.Exists(path), $"TorchSharp's native library is not in the package cache at {path}");
        return path;
    }

    private static string OutputLibrary() =>
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [TestMethod]
    public void ATensorCanBeCreatedAfterTheBuild()
    {
        using var tensor = TorchSharp.torch.arange(1, 5, dtype: TorchSharp.torch.ScalarType.Float32);
        Assert.AreEqual(10f, tensor.sum().item<float>());
    }

    [TestMethod]
    public void MarkingIsExactIdempotentAndLeavesThePackageCacheAlone()
    {
        string cached = CachedLibrary();
        byte[] cacheHashBefore = SHA256.HashData(File.ReadAllBytes(cached));
        Assert.IsFalse(ElfVersionNeeds.IsWeak(cached, Version), "the package ships a strong GLIBCXX_3.4.32 requirement");

        string copy = Path.Combine(Path.GetTempPath(), $"libLibTorchSharp-{Guid.NewGuid():N}.so");
        File.Copy(cached, copy);
        try
        {
            Assert.AreEqual(MarkWeakResult.Marked, ElfVersionNeeds.MarkWeak(copy, Version));
            Assert.IsTrue(ElfVersionNeeds.IsWeak(copy, Version));
            byte[] original = File.ReadAllBytes(cached), marked = File.ReadAllBytes(copy);
            Assert.AreEqual(original.Length, marked.Length);
            int changed = original.Zip(marked).Count(pair => pair.First != pair.Second);
            Assert.AreEqual(1, changed, "only the flags byte of that one requirement changes");

            Assert.AreEqual(MarkWeakResult.AlreadyWeak, ElfVersionNeeds.MarkWeak(copy, Version), "a second run changes nothing");
            CollectionAssert.AreEqual(marked, File.ReadAllBytes(copy));
            Assert.AreEqual(MarkWeakResult.NotRequired, ElfVersionNeeds.MarkWeak(copy, "GLIBCXX_99.0"));
        }
        finally
        {
            File.Delete(copy);
        }
        CollectionAssert.AreEqual(cacheHashBefore, SHA256.HashData(File.ReadAllBytes(cached)), "the package cache is never edited");
    }

    [TestMethod]
    public void TheBuildOutputCopyIsWeakExactlyWhenTheSystemNeedsIt()
    {
        string system = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }
            .First(File.Exists);
        bool systemHasVersion = ElfVersionNeeds.DefinesVersion(system, Version);
        Assert.AreEqual(!systemHasVersion, ElfVersionNeeds.IsWeak(OutputLibrary(), Version),
            $"{system} {(systemHasVersion ? "defines" : "lacks")} {Version}");
    }

    [TestMethod]
    public void AFailedNativeLoadIsExplainedByItsCause()
    {
        var misleading = new NotSupportedException("This application or script uses TorchSharp but doesn't contain a reference to libtorch-cpu-linux-x64.");
        string folder = Directory.CreateTempSubdirectory("torchnative-").FullName;
        try
        {
            StringAssert.Contains(TorchNative.Explain(misleading, folder), "Reference the package libtorch-cpu-linux-x64");

            // The package's own copy, whose GLIBCXX_3.4.32 requirement is strong, where an application would have it.
            string native = Path.Combine(folder, "runtimes", "linux-x64", "native");
            Directory.CreateDirectory(native);
            File.Copy(CachedLibrary(), Path.Combine(native, "libLibTorchSharp.so"));
            string system = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }
                .First(File.Exists);
            string message = TorchNative.Explain(misleading, folder);
            if (ElfVersionNeeds.DefinesVersion(system, Version))
                StringAssert.Contains(message, "loads");
            else
            {
                StringAssert.Contains(message, $"lacks the symbol version {Version}");
                StringAssert.Contains(message, "DeepVariantsSkipNativeCompat");
            }

            File.WriteAllText(Path.Combine(native, "libLibTorchSharp.so"), "not a shared library");
            StringAssert.Contains(TorchNative.Explain(misleading, folder), "could not be loaded");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void AFileThatIsNotElfIsRejected()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "not a shared library, but long enough to hold an ELF header of sixty-four bytes......");
            var error = Assert.ThrowsExactly<InvalidDataException>(() => ElfVersionNeeds.MarkWeak(path, Version));
            StringAssert.Contains(error.Message, "is not an ELF file");
        }
        finally
        {
            File.Delete(path);
        }
    }
}

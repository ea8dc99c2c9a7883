using System.Runtime.InteropServices;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Opt-in tuning of glibc's allocator for TorchSharp. By default glibc returns big tensor buffers to the OS
/// after every operation and maps them again on the next; keeping them (no mmap for large blocks, a very high
/// trim threshold) made TorchSharp about twice as fast at inference on a 2-core machine (DESIGN.md). The cost
/// is that freed native memory stays with the process. The same effect without code: run with
/// <c>MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736</c>.
/// </summary>
/// <example>
/// <code>
/// NativeAllocator.KeepFreedMemory(); // once, at start-up, before training
/// </code>
/// </example>
public static class NativeAllocator
{
    private const int MallocTrimThreshold = -1;
    private const int MallocMmapMax = -4;

    /// <summary>
    /// Asks glibc to keep freed memory for reuse. Returns false (and changes nothing) where the C library is not
    /// glibc, such as on Windows, macOS or musl-based Linux.
    /// </summary>
    public static bool KeepFreedMemory()
    {
        if (!OperatingSystem.IsLinux())
            return false;
        try
        {
            return mallopt(MallocMmapMax, 0) == 1 & mallopt(MallocTrimThreshold, int.MaxValue) == 1;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);
}

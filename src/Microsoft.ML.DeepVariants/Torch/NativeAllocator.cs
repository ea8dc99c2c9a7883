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

    private static bool _keep;
    private static long _limit, _releases;

    /// <summary>How often <see cref="ReleaseIfGrown"/> has handed memory back in this process.</summary>
    public static long Releases => Interlocked.Read(ref _releases);
    private static readonly bool Glibc = OperatingSystem.IsLinux() && File.Exists("/proc/self/statm") && HasMallocTrim();

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
            _keep = true;
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

    /// <summary>
    /// The trainer's allocator policy, run after every training step and inference batch: glibc keeps freed tensor buffers
    /// in its heaps, and on some workloads never reuses them (fine-tuning ResNet18's last two blocks grew resident memory
    /// by about 50 MB a step, 3.2 GB an epoch of 2,000 images, with constant live tensors). When resident memory has grown
    /// past a slack (128 MB and a tenth) over its level after the last release, <c>malloc_trim(0)</c> hands the freed
    /// memory back: the fine-tuning then stayed at 780 MB. Trimming after every step instead made a small CNN's epoch 35%
    /// slower; this way a run whose memory holds steady never trims. Nothing happens after <see cref="KeepFreedMemory"/>,
    /// or where the C library is not glibc.
    /// </summary>
    internal static void ReleaseIfGrown()
    {
        if (_keep || !Glibc)
            return;
        long resident = ResidentBytes();
        long limit = Interlocked.Read(ref _limit);
        if (limit == 0)
        {
            Interlocked.CompareExchange(ref _limit, resident + Slack(resident), 0);
            return;
        }
        if (resident <= limit)
            return;
        malloc_trim(0);
        Interlocked.Increment(ref _releases);
        long after = ResidentBytes();
        Interlocked.Exchange(ref _limit, after + Slack(after));
    }

    /// <summary>
    /// The trainer's policy at each epoch's end: hands freed memory back whatever the growth, so that resident memory
    /// between epochs is what the run holds, not what glibc's arenas happened to keep from the epoch's last batches (a
    /// small CNN's end-of-epoch RSS swung by 17% without it). Once an epoch, it costs a few milliseconds.
    /// The managed heap gets the same treatment: after the run's first epoch, when the garbage of reading and checking the data
    /// is dead, one compacting collection that decommits what it frees (about 20 ms on a 50 MB heap; skipped when at most
    /// one epoch follows, since there is no later epoch for it to steady, and its cost would fall on every short fit); after every later
    /// epoch a generation-0 collection, so that each epoch's small managed garbage reuses the pages of the last instead
    /// of touching fresh ones until the GC's budget runs out. Without them the GCN's 200 Cora epochs (about 60 KB of
    /// managed garbage each) grew resident memory by 5.4% and levelled off only after the first collection, at epoch 180.
    /// </summary>
    internal static void ReleaseAtEpochEnd(bool compactHeap)
    {
        if (compactHeap)
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        else
            GC.Collect(0, GCCollectionMode.Forced, blocking: true, compacting: false);
        if (_keep || !Glibc)
            return;
        malloc_trim(0);
        long after = ResidentBytes();
        Interlocked.Exchange(ref _limit, after + Slack(after));
    }

    private static long Slack(long resident) => (128L << 20) + resident / 10;

    // Resident pages from /proc/self/statm (its second field), in bytes.
    private static long ResidentBytes()
    {
        try
        {
            string text = File.ReadAllText("/proc/self/statm");
            int start = text.IndexOf(' ') + 1, end = text.IndexOf(' ', start);
            return long.Parse(text.AsSpan(start, end - start), System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static bool HasMallocTrim()
    {
        try
        {
            return NativeLibrary.TryLoad("libc.so.6", out var libc) && NativeLibrary.TryGetExport(libc, "malloc_trim", out _);
        }
        catch (DllNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);
}

using System.Diagnostics;
using System.Globalization;

namespace Microsoft.ML.DeepVariants.Benchmarks;

/// <summary>Peak resident memory of this process (VmHWM on Linux, the peak working set elsewhere).</summary>
internal static class ProcessMemory
{
    public static double PeakMegabytes()
    {
        string? line = File.Exists("/proc/self/status")
            ? File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            : null;
        return line is null
            ? Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0
            : double.Parse(line.Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
    }
}

using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>Where a DeepVariants model trains.</summary>
public enum TorchDeviceKind
{
    /// <summary>CUDA when TorchSharp reports it (the device is <c>MLContext.GpuDeviceId</c>, else 0), otherwise the CPU.</summary>
    Auto,
    /// <summary>Always the CPU.</summary>
    Cpu,
    /// <summary>CUDA; fails unless <c>MLContext.FallbackToCpu</c> is set, in which case it falls back to the CPU.</summary>
    Cuda,
}

/// <summary>Turns a <see cref="TorchDeviceKind"/> and the MLContext's GPU settings into a TorchSharp device.</summary>
internal static class TorchDevices
{
    /// <param name="kind">What the options ask for.</param>
    /// <param name="gpuDeviceId">MLContext.GpuDeviceId.</param>
    /// <param name="fallbackToCpu">MLContext.FallbackToCpu.</param>
    /// <param name="cudaAvailable">Whether TorchSharp reports CUDA (a parameter so that the choice is testable without a GPU).</param>
    /// <param name="log">Where to say what was chosen and why.</param>
    public static Device Resolve(TorchDeviceKind kind, int? gpuDeviceId, bool fallbackToCpu, bool cudaAvailable, Action<string>? log = null)
    {
        if (gpuDeviceId is < 0)
            throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), gpuDeviceId, "MLContext.GpuDeviceId must be null or a non-negative device index.");
        switch (kind)
        {
            case TorchDeviceKind.Cpu:
                return CPU;
            case TorchDeviceKind.Auto:
                if (cudaAvailable)
                {
                    log?.Invoke($"Device Auto: CUDA is available, training on cuda:{gpuDeviceId ?? 0}.");
                    return device(DeviceType.CUDA, gpuDeviceId ?? 0);
                }
                log?.Invoke("Device Auto: CUDA is not available, training on the CPU.");
                return CPU;
            case TorchDeviceKind.Cuda:
                if (cudaAvailable)
                    return device(DeviceType.CUDA, gpuDeviceId ?? 0);
                if (fallbackToCpu)
                {
                    log?.Invoke("Device Cuda: CUDA is not available and MLContext.FallbackToCpu is set, training on the CPU.");
                    return CPU;
                }
                throw new InvalidOperationException(
                    "Device Cuda was requested, but TorchSharp reports no CUDA device. Reference a TorchSharp CUDA package " +
                    "(for example libtorch-cuda-12.8-linux-x64), choose TorchDeviceKind.Auto, or set MLContext.FallbackToCpu = true.");
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown device kind.");
        }
    }

    /// <summary>Resolves the device with the environment's settings and TorchSharp's own report.</summary>
    public static Device Resolve(TorchDeviceKind kind, IHostEnvironment environment, Action<string>? log)
    {
        // The first TorchSharp call of a fit: a native library that cannot load is explained here, not by TorchSharp.
        TorchNative.EnsureLoaded();
        return Resolve(kind, MLNetInternals.GetGpuDeviceId(environment), MLNetInternals.GetFallbackToCpu(environment),
            kind != TorchDeviceKind.Cpu && cuda.is_available(), log);
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>
/// Tensor arithmetic that never lets TorchSharp make a temporary <see cref="Scalar"/>. TorchSharp 0.107 turns every number
/// an operation takes (the hidden <c>alpha = 1</c> of <c>a + b</c>, the <c>1</c> of <c>1 - x</c>, a <c>mul(0.5)</c>) into a
/// native Scalar that only its finalizer frees, and passes the Scalar's handle to the kernel without keeping the object
/// alive. A garbage collection during the kernel can then free the Scalar the kernel is reading: "Expected false to be
/// true ... toFloat at c10/core/Scalar.h", or a crash, at a random epoch. So code that runs every batch adds tensors with
/// <c>Plus</c>, and takes its numbers from Scalars that live as long as the process (<see cref="One"/>,
/// <c>Of</c>) or as long as their module (a field made in the constructor).
/// </summary>
internal static class Scalars
{
    /// <summary>1, as an integer Scalar (it scales integer and floating-point tensors alike).</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>-1, as an integer Scalar.</summary>
    public static readonly Scalar MinusOne = (-1).ToScalar();

    /// <summary>0, as an integer Scalar.</summary>
    public static readonly Scalar Zero = 0.ToScalar();

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<double, Scalar> KeptReals = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<long, Scalar> KeptIntegers = new();

    /// <summary>A floating-point Scalar for <paramref name="value"/> that is never freed: for the constants and shapes the code uses, never for data.</summary>
    public static Scalar Of(double value) => KeptReals.GetOrAdd(value, v => v.ToScalar());

    /// <summary>An integer Scalar (it keeps integer tensors integer), never freed: for constants and shapes, never for data.</summary>
    public static Scalar Of(long value) => KeptIntegers.GetOrAdd(value, v => v.ToScalar());

    /// <summary><paramref name="a"/> + <paramref name="b"/>, without a temporary Scalar.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="a"/> + <paramref name="value"/> (a constant or a shape, not data), without a temporary Scalar.</summary>
    public static Tensor Plus(this Tensor a, double value) => a.add(Of(value), One);

    /// <summary><paramref name="a"/> + <paramref name="value"/>, an integer (integer tensors stay integer).</summary>
    public static Tensor Plus(this Tensor a, long value) => a.add(Of(value), One);

    /// <summary><paramref name="a"/> times <paramref name="value"/> (a constant or a shape, not data), without a temporary Scalar.</summary>
    public static Tensor Times(this Tensor a, double value) => a.mul(Of(value));

    /// <summary><paramref name="a"/> times <paramref name="value"/>, an integer (integer tensors stay integer).</summary>
    public static Tensor Times(this Tensor a, long value) => a.mul(Of(value));

    /// <summary><paramref name="a"/> += <paramref name="b"/>, without a temporary Scalar.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);

    /// <summary>The integers from <paramref name="start"/> up to (not including) <paramref name="stop"/>, as <c>arange</c> without temporaries.</summary>
    public static Tensor Range(long start, long stop, ScalarType dtype, Device device)
    {
        using Scalar from = start.ToScalar(), to = stop.ToScalar(), step = 1.ToScalar();
        return arange(from, to, step, dtype: dtype, device: device);
    }

    /// <summary>1 - <paramref name="a"/>, without a temporary Scalar.</summary>
    public static Tensor OneMinus(this Tensor a) => a.neg().add_(One, One);
}

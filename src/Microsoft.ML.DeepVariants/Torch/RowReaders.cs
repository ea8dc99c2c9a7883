using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>Writes one row's network input (float32 values, <see cref="Shape"/> of them) from a data view row.</summary>
internal abstract class FeatureReader
{
    /// <summary>The input of one row, such as [C, H, W] or [steps, channels].</summary>
    public abstract long[] Shape { get; }

    public int Values => checked((int)Shape.Aggregate(1L, (a, b) => a * b));

    public abstract IEnumerable<DataViewSchema.Column> Columns { get; }

    /// <summary>A writer for the rows of <paramref name="row"/>'s cursor: row number (for messages), destination.</summary>
    public abstract RowWriter<float> Bind(DataViewRow row, string role);
}

/// <summary>Writes one row's training target: a class index (int64) or float values.</summary>
internal abstract class TargetReader
{
    /// <summary>Int64 for a class index, Float32 for values.</summary>
    public abstract ScalarType Type { get; }

    /// <summary>The target of one row: [] for a class index, [K] for values.</summary>
    public abstract long[] Shape { get; }

    public int Values => checked((int)Shape.Aggregate(1L, (a, b) => a * b));

    public abstract IEnumerable<DataViewSchema.Column> Columns { get; }

    /// <summary>A writer of the target bytes of a row, given the features already written for it.</summary>
    public abstract TargetWriter Bind(DataViewRow row, string role);
}

internal delegate void RowWriter<T>(long row, Span<T> destination);

internal delegate void TargetWriter(long row, ReadOnlySpan<float> features, Span<byte> destination);

/// <summary>
/// How one row of a prepared data view becomes a network input and a training target. The same reader serves the
/// in-memory path (rows written straight into one preallocated native tensor) and the streaming path (rows written
/// into each batch's tensors on a background thread), so both run the same checks.
/// </summary>
internal sealed class RowReader(FeatureReader features, TargetReader targets)
{
    public FeatureReader Features { get; } = features;
    public TargetReader Targets { get; } = targets;

    /// <summary>Bytes one row takes in memory, features and target.</summary>
    public long RowBytes => Features.Values * 4L + Targets.Values * (Targets.Type == ScalarType.Int64 ? 8L : 4L);

    public DataViewSchema.Column[] Columns => Features.Columns.Concat(Targets.Columns).DistinctBy(c => c.Index).ToArray();

    /// <summary>A reader with other targets (a teacher's logits next to the label, say).</summary>
    public RowReader WithTargets(TargetReader other) => new(Features, other);
}

/// <summary>A fixed-size float vector column, reshaped to <see cref="Shape"/>; NaN and infinite values are refused.</summary>
internal sealed class VectorFeatures(DataViewSchema.Column column, long[] shape) : FeatureReader
{
    public override long[] Shape => shape;
    public override IEnumerable<DataViewSchema.Column> Columns => [column];

    public override RowWriter<float> Bind(DataViewRow row, string role)
    {
        var get = row.GetGetter<VBuffer<float>>(column);
        VBuffer<float> buffer = default;
        int size = Values;
        return (long index, Span<float> destination) =>
        {
            get(ref buffer);
            if (buffer.Length != size)
                throw new ArgumentOutOfRangeException(column.Name,
                    $"Column '{column.Name}' has {buffer.Length} values at row {index}{SchemaView.In(role)}; expected {size}.");
            buffer.CopyTo(destination);
            RowChecks.RequireFinite(destination, column.Name, index, role);
        };
    }
}

/// <summary>A key label as a class index; a missing label is <see cref="ClassificationObjective.Unlabelled"/> when allowed (the checks ran in <see cref="ClassLabels.Scan"/>).</summary>
internal sealed class ClassTarget(DataViewSchema.Column keyColumn, string userColumn, bool allowMissing = false) : TargetReader
{
    public override ScalarType Type => ScalarType.Int64;
    public override long[] Shape => [];
    public override IEnumerable<DataViewSchema.Column> Columns => [keyColumn];

    public override TargetWriter Bind(DataViewRow row, string role)
    {
        var get = row.GetGetter<uint>(keyColumn);
        uint key = 0;
        return (long index, ReadOnlySpan<float> _, Span<byte> destination) =>
        {
            get(ref key);
            if (key == 0 && !allowMissing)
                throw new ArgumentOutOfRangeException(userColumn,
                    $"Label column '{userColumn}' has a missing value at row {index}{SchemaView.In(role)}; every {role} row needs a label.");
            MemoryMarshal.Cast<byte, long>(destination)[0] = key == 0 ? ClassificationObjective.Unlabelled : key - 1;
        };
    }
}

/// <summary>A float vector target of a known size (a clean image for a denoiser); NaN and infinite values are refused.</summary>
internal sealed class VectorTarget(DataViewSchema.Column column, int size) : TargetReader
{
    public override ScalarType Type => ScalarType.Float32;
    public override long[] Shape => [size];
    public override IEnumerable<DataViewSchema.Column> Columns => [column];

    public override TargetWriter Bind(DataViewRow row, string role)
    {
        var get = row.GetGetter<VBuffer<float>>(column);
        VBuffer<float> buffer = default;
        return (long index, ReadOnlySpan<float> _, Span<byte> destination) =>
        {
            get(ref buffer);
            var values = MemoryMarshal.Cast<byte, float>(destination);
            if (buffer.Length != size)
                throw new ArgumentOutOfRangeException(column.Name,
                    $"Column '{column.Name}' has {buffer.Length} values at row {index}{SchemaView.In(role)}; expected {size}.");
            buffer.CopyTo(values);
            RowChecks.RequireFinite(values, column.Name, index, role);
        };
    }
}

/// <summary>The row's own features as its target (an autoencoder without a clean column); nothing more is stored.</summary>
internal sealed class SameAsFeatures(long[] shape) : TargetReader
{
    public override ScalarType Type => ScalarType.Float32;
    public override long[] Shape => shape;
    public override IEnumerable<DataViewSchema.Column> Columns => [];

    public override TargetWriter Bind(DataViewRow row, string role) =>
        (long _, ReadOnlySpan<float> features, Span<byte> destination) => features.CopyTo(MemoryMarshal.Cast<byte, float>(destination));
}

internal static class RowChecks
{
    public static void RequireFinite(ReadOnlySpan<float> values, string column, long row, string role)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new ArgumentOutOfRangeException(column,
                    $"Column '{column}' has {(float.IsNaN(values[i]) ? "a NaN" : "an infinite")} value at row {row}{SchemaView.In(role)}, slot {i}; expected finite numbers.");
    }
}

/// <summary>Raw access to the memory of contiguous CPU tensors, so rows are written in place, without managed copies.</summary>
internal static unsafe class TensorMemory
{
    /// <summary>The address of the first element of a contiguous CPU tensor with at least one element.</summary>
    public static IntPtr Address(Tensor tensor)
    {
        if (tensor.device_type != DeviceType.CPU || !tensor.is_contiguous())
            throw new InvalidOperationException("Rows are written into contiguous CPU tensors only.");
        using var flat = tensor.view(-1);
        using var first = flat.narrow(0, 0, 1);
        return (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first.bytes));
    }

    /// <summary>Row <paramref name="row"/> of <paramref name="values"/> elements of <typeparamref name="T"/> from <paramref name="address"/>.</summary>
    public static Span<T> Row<T>(IntPtr address, long row, int values) where T : unmanaged =>
        new((T*)address + row * values, values);

    public static Span<byte> RowBytes(IntPtr address, long row, int bytes) => new((byte*)address + row * bytes, bytes);
}

using System.ComponentModel;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.DeepVariants.Sequences;

/// <summary>
/// Pads a variable-length series column to a fixed size with NaN, the padding marker the exported graph masks out.
/// ML.NET's ONNX transformer accepts fixed-size vectors only, and a third-party assembly can put nothing in a model
/// zip but ONNX graphs and ML.NET's own transforms. CustomMapping is the one public extension that persists: it
/// saves a contract name, and the output size must be a compile-time attribute. So the padded sizes are the powers
/// of two from 16 to 1,048,576 values, each with its own small type; a model takes the smallest that holds its
/// longest series. Loading such a model needs
/// <c>mlContext.ComponentCatalog.RegisterAssembly(typeof(SequenceClassifierEstimator).Assembly)</c> first.
/// </summary>
internal static class SeriesPadding
{
    public const string InputColumn = "DeepVariants.SeriesInput";
    public const string PaddedColumn = "DeepVariants.SeriesPadded";
    public const string ContractPrefix = "DeepVariants.PadSeries.";
    public const int LargestSize = 1 << 20;

    /// <summary>The padded size for series of up to <paramref name="values"/> values.</summary>
    public static int SizeFor(long values)
    {
        if (values > LargestSize)
            throw new ArgumentOutOfRangeException(nameof(values), values,
                $"Series of {values} values are longer than the {LargestSize} values a variable-length column can be padded to; give the column a fixed size instead.");
        int size = 16;
        while (size < values)
            size *= 2;
        return size;
    }

    /// <summary>Copies <paramref name="column"/> to the padding input and pads it to <paramref name="size"/> values.</summary>
    public static IEstimator<ITransformer> Estimator(ModelContext context, string column, int size)
    {
        var type = typeof(SeriesPadding).Assembly.GetType($"{typeof(SeriesPadding).Namespace}.PadSeries{size}")
            ?? throw new ArgumentOutOfRangeException(nameof(size), size, "Not a padded size: a power of two from 16 to 1,048,576.");
        var mapping = ((IPadSeriesFactory)Activator.CreateInstance(type)!).Estimator(context.Transforms);
        return context.Transforms.CopyColumns(InputColumn, column).Append(mapping);
    }

    public static void Pad(SeriesInput input, PaddedSeries output)
    {
        float[] values = input.Values ?? [];
        if (values.Length > output.Size)
            throw new InvalidOperationException(
                $"A series of {values.Length} values reached a model that accepts at most {output.Size} (its longest training series, or MaxLength, times Channels, rounded up); refit it with a larger MaxLength.");
        var padded = new float[output.Size];
        values.CopyTo(padded, 0);
        Array.Fill(padded, float.NaN, values.Length, padded.Length - values.Length);
        output.Values = padded;
    }
}

internal interface IPadSeriesFactory
{
    IEstimator<ITransformer> Estimator(TransformsCatalog transforms);
}

/// <summary>The input of the padding step (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class SeriesInput
{
    /// <summary>The series, of any length.</summary>
    [ColumnName(SeriesPadding.InputColumn)]
    public float[] Values { get; set; } = [];
}

/// <summary>The output of the padding step (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public abstract class PaddedSeries
{
    /// <summary>The padded series.</summary>
    public abstract float[] Values { get; set; }

    /// <summary>Its fixed size.</summary>
    [NoColumn]
    public abstract int Size { get; }
}

/// <summary>The padding step's factory, for ML.NET's CustomMapping (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public abstract class PadSeriesFactory<TPadded> : CustomMappingFactory<SeriesInput, TPadded>, IPadSeriesFactory
    where TPadded : PaddedSeries, new()
{
    /// <inheritdoc/>
    public override Action<SeriesInput, TPadded> GetMapping() => SeriesPadding.Pad;

    IEstimator<ITransformer> IPadSeriesFactory.Estimator(TransformsCatalog transforms) =>
        transforms.CustomMapping<SeriesInput, TPadded>(GetMapping(), SeriesPadding.ContractPrefix + new TPadded().Size);
}

/// <summary>A padded series of 16 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries16 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(16)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 16; }
/// <summary>Pads to 16 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "16")]
public sealed class PadSeries16 : PadSeriesFactory<PaddedSeries16> { }

/// <summary>A padded series of 32 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries32 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(32)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 32; }
/// <summary>Pads to 32 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "32")]
public sealed class PadSeries32 : PadSeriesFactory<PaddedSeries32> { }

/// <summary>A padded series of 64 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries64 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(64)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 64; }
/// <summary>Pads to 64 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "64")]
public sealed class PadSeries64 : PadSeriesFactory<PaddedSeries64> { }

/// <summary>A padded series of 128 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries128 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(128)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 128; }
/// <summary>Pads to 128 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "128")]
public sealed class PadSeries128 : PadSeriesFactory<PaddedSeries128> { }

/// <summary>A padded series of 256 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries256 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(256)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 256; }
/// <summary>Pads to 256 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "256")]
public sealed class PadSeries256 : PadSeriesFactory<PaddedSeries256> { }

/// <summary>A padded series of 512 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries512 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(512)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 512; }
/// <summary>Pads to 512 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "512")]
public sealed class PadSeries512 : PadSeriesFactory<PaddedSeries512> { }

/// <summary>A padded series of 1024 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries1024 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(1024)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 1024; }
/// <summary>Pads to 1024 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "1024")]
public sealed class PadSeries1024 : PadSeriesFactory<PaddedSeries1024> { }

/// <summary>A padded series of 2048 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries2048 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(2048)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 2048; }
/// <summary>Pads to 2048 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "2048")]
public sealed class PadSeries2048 : PadSeriesFactory<PaddedSeries2048> { }

/// <summary>A padded series of 4096 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries4096 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(4096)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 4096; }
/// <summary>Pads to 4096 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "4096")]
public sealed class PadSeries4096 : PadSeriesFactory<PaddedSeries4096> { }

/// <summary>A padded series of 8192 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries8192 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(8192)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 8192; }
/// <summary>Pads to 8192 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "8192")]
public sealed class PadSeries8192 : PadSeriesFactory<PaddedSeries8192> { }

/// <summary>A padded series of 16384 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries16384 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(16384)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 16384; }
/// <summary>Pads to 16384 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "16384")]
public sealed class PadSeries16384 : PadSeriesFactory<PaddedSeries16384> { }

/// <summary>A padded series of 32768 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries32768 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(32768)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 32768; }
/// <summary>Pads to 32768 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "32768")]
public sealed class PadSeries32768 : PadSeriesFactory<PaddedSeries32768> { }

/// <summary>A padded series of 65536 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries65536 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(65536)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 65536; }
/// <summary>Pads to 65536 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "65536")]
public sealed class PadSeries65536 : PadSeriesFactory<PaddedSeries65536> { }

/// <summary>A padded series of 131072 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries131072 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(131072)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 131072; }
/// <summary>Pads to 131072 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "131072")]
public sealed class PadSeries131072 : PadSeriesFactory<PaddedSeries131072> { }

/// <summary>A padded series of 262144 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries262144 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(262144)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 262144; }
/// <summary>Pads to 262144 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "262144")]
public sealed class PadSeries262144 : PadSeriesFactory<PaddedSeries262144> { }

/// <summary>A padded series of 524288 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries524288 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(524288)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 524288; }
/// <summary>Pads to 524288 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "524288")]
public sealed class PadSeries524288 : PadSeriesFactory<PaddedSeries524288> { }

/// <summary>A padded series of 1048576 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PaddedSeries1048576 : PaddedSeries { /// <inheritdoc/>
    [ColumnName(SeriesPadding.PaddedColumn), VectorType(1048576)] public override float[] Values { get; set; } = []; /// <inheritdoc/>
    [NoColumn] public override int Size => 1048576; }
/// <summary>Pads to 1048576 values (infrastructure of saved models).</summary>
[EditorBrowsable(EditorBrowsableState.Never), CustomMappingFactoryAttribute(SeriesPadding.ContractPrefix + "1048576")]
public sealed class PadSeries1048576 : PadSeriesFactory<PaddedSeries1048576> { }

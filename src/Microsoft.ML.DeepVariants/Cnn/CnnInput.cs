using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.DeepVariants.Cnn;

/// <summary>
/// How a CNN reads its input column: a float vector already in CHW order, or an ML.NET image, which an
/// ML.NET pixel-extraction step (kept in the fitted model) turns into such a vector scaled to [0, 1].
/// </summary>
internal sealed record CnnInput(int Channels, int Height, int Width, string TensorColumn, IEstimator<ITransformer>? Preprocessing,
    IReadOnlyList<string> TemporaryColumns)
{
    public int Size => Channels * Height * Width;

    public static CnnInput Resolve(ModelContext context, DataViewSchema schema, CnnOptions options)
    {
        string column = options.FeatureColumnName;
        var col = schema.GetColumnOrNull(column) ?? throw DataViewReader.MissingColumn(column);
        return col.Type switch
        {
            ImageDataViewType image => FromImage(context, column, image, options),
            VectorDataViewType { ItemType: NumberDataViewType item } vector when item == NumberDataViewType.Single => FromVector(column, vector, options),
            _ => throw DataViewReader.SchemaMismatch(column, ExpectedText(options), col.Type),
        };
    }

    /// <summary>The same checks on a schema shape, for GetOutputSchema.</summary>
    public static void Check(SchemaShape schema, CnnOptions options)
    {
        string column = options.FeatureColumnName;
        var col = schema.FirstOrDefault(c => c.Name == column);
        if (col.Name != column)
            throw DataViewReader.MissingColumn(column);
        bool isImage = col.ItemType is ImageDataViewType && col.Kind == SchemaShape.Column.VectorKind.Scalar;
        bool isFloatVector = col.ItemType == NumberDataViewType.Single && col.Kind == SchemaShape.Column.VectorKind.Vector;
        if (!isImage && !isFloatVector)
            throw new ArgumentOutOfRangeException(column,
                $"Schema mismatch for input column '{column}': expected {ExpectedText(options)}, got {col.Kind} of {col.ItemType}.");
        if (!isImage && (options.ImageHeight == 0 || options.ImageWidth == 0))
            throw new ArgumentOutOfRangeException(nameof(options.ImageHeight),
                $"Input column '{column}' is a vector, so ImageHeight and ImageWidth must be set to the images' size.");
        if (!schema.Any(c => c.Name == options.LabelColumnName))
            throw DataViewReader.MissingColumn(options.LabelColumnName);
    }

    private static CnnInput FromVector(string column, VectorDataViewType vector, CnnOptions o)
    {
        if (o.ImageHeight == 0 || o.ImageWidth == 0)
            throw new ArgumentOutOfRangeException(nameof(o.ImageHeight),
                $"Input column '{column}' is a vector, so ImageHeight and ImageWidth must be set to the images' size.");
        int size = o.Channels * o.ImageHeight * o.ImageWidth;
        if (vector.Size != size)
            throw DataViewReader.SchemaMismatch(column, $"Vector<Single, {size}> ({o.Channels}x{o.ImageHeight}x{o.ImageWidth})", vector);
        return new CnnInput(o.Channels, o.ImageHeight, o.ImageWidth, column, null, []);
    }

    private static CnnInput FromImage(ModelContext context, string column, ImageDataViewType image, CnnOptions o)
    {
        if (image.Height <= 0 || image.Width <= 0)
            throw new ArgumentOutOfRangeException(column,
                $"Image column '{column}' has no fixed size; add mlContext.Transforms.ResizeImages(...) before the CNN.");
        if ((o.ImageHeight != 0 && o.ImageHeight != image.Height) || (o.ImageWidth != 0 && o.ImageWidth != image.Width))
            throw new ArgumentOutOfRangeException(column,
                $"Image column '{column}' holds {image.Height}x{image.Width} images, but the options declare {o.ImageHeight}x{o.ImageWidth}.");

        string pixels = column + ".Pixels";
        var temporary = new List<string> { pixels };
        IEstimator<ITransformer> extract;
        if (o.Channels == 1)
        {
            string gray = column + ".Grayscale";
            temporary.Add(gray);
            extract = context.Transforms.ConvertToGrayscale(gray, column)
                .Append(context.Transforms.ExtractPixels(pixels, gray, ImagePixelExtractingEstimator.ColorBits.Red,
                    interleavePixelColors: false, scaleImage: 1f / 255));
        }
        else
        {
            extract = context.Transforms.ExtractPixels(pixels, column, ImagePixelExtractingEstimator.ColorBits.Rgb,
                interleavePixelColors: false, scaleImage: 1f / 255);
        }
        return new CnnInput(o.Channels, image.Height, image.Width, pixels, extract, temporary);
    }

    private static string ExpectedText(CnnOptions o) => o.ImageHeight > 0 && o.ImageWidth > 0
        ? $"Vector<Single, {o.Channels * o.ImageHeight * o.ImageWidth}> or an image"
        : "a Vector<Single> of Channels x ImageHeight x ImageWidth values, or an image";
}

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

    /// <summary>Checks the feature column (a schema shape or a data view's schema) and says how it becomes tensors.</summary>
    public static CnnInput Resolve(ModelContext context, SchemaView schema, CnnOptions options)
    {
        var column = schema.Require(options.FeatureColumnName);
        if (column.IsScalar && column.ItemType is ImageDataViewType image)
            return FromImage(context, schema, column, image, options);
        if (column.IsFloatVector)
            return FromVector(schema, column, options);
        throw schema.Mismatch(column, ExpectedText(options));
    }

    private static CnnInput FromVector(SchemaView schema, ColumnInfo column, CnnOptions o)
    {
        if (o.ImageHeight == 0 || o.ImageWidth == 0)
            throw new ArgumentOutOfRangeException(nameof(o.ImageHeight),
                $"Input column '{column.Name}' is a vector, so ImageHeight and ImageWidth must be set to the images' size.");
        int size = o.Channels * o.ImageHeight * o.ImageWidth;
        if (schema.HasSizes && column.Size != size)
            throw schema.Mismatch(column, $"Vector<Single, {size}> ({o.Channels}x{o.ImageHeight}x{o.ImageWidth})");
        return new CnnInput(o.Channels, o.ImageHeight, o.ImageWidth, column.Name, null, []);
    }

    private static CnnInput FromImage(ModelContext context, SchemaView schema, ColumnInfo column, ImageDataViewType image, CnnOptions o)
    {
        if (image.Height <= 0 || image.Width <= 0)
            throw new ArgumentOutOfRangeException(column.Name,
                $"Image column '{column.Name}'{SchemaView.In(schema.Role)} has no fixed size; add mlContext.Transforms.ResizeImages(...) before the CNN.");
        if ((o.ImageHeight != 0 && o.ImageHeight != image.Height) || (o.ImageWidth != 0 && o.ImageWidth != image.Width))
            throw new ArgumentOutOfRangeException(column.Name,
                $"Image column '{column.Name}'{SchemaView.In(schema.Role)} holds {image.Height}x{image.Width} images, but the options declare {o.ImageHeight}x{o.ImageWidth}.");

        string pixels = column.Name + ".Pixels";
        var temporary = new List<string> { pixels };
        IEstimator<ITransformer> extract;
        if (o.Channels == 1)
        {
            string gray = column.Name + ".Grayscale";
            temporary.Add(gray);
            extract = context.Transforms.ConvertToGrayscale(gray, column.Name)
                .Append(context.Transforms.ExtractPixels(pixels, gray, ImagePixelExtractingEstimator.ColorBits.Red,
                    interleavePixelColors: false, scaleImage: 1f / 255));
        }
        else
        {
            extract = context.Transforms.ExtractPixels(pixels, column.Name, ImagePixelExtractingEstimator.ColorBits.Rgb,
                interleavePixelColors: false, scaleImage: 1f / 255);
        }
        return new CnnInput(o.Channels, image.Height, image.Width, pixels, extract, temporary);
    }

    private static string ExpectedText(CnnOptions o) => o.ImageHeight > 0 && o.ImageWidth > 0
        ? $"Vector<Single, {o.Channels * o.ImageHeight * o.ImageWidth}> or an image"
        : "a Vector<Single> of Channels x ImageHeight x ImageWidth values, or an image";
}

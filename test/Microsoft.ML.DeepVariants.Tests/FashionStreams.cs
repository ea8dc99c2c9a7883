using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Datasets;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Fashion-MNIST items with two more columns for multi-task and multi-stream examples: the item's group, and a noisy hint of its class.</summary>
public static class FashionStreams
{
    /// <summary>A Fashion-MNIST item with its group (footwear, bag, clothing) and a noisy hint: the class one-hot plus Gaussian noise.</summary>
    public sealed class FashionItem
    {
        [VectorType(28 * 28)]
        public float[] Pixels { get; set; } = [];

        public string Item { get; set; } = "";

        public string Group { get; set; } = "";

        [VectorType(10)]
        public float[] Hint { get; set; } = [];
    }

    public static string GroupOf(string item) => item switch
    {
        "Sandal" or "Sneaker" or "Ankle boot" => "footwear",
        "Bag" => "bag",
        _ => "clothing",
    };

    /// <summary>Rows with a hint whose noise (standard deviation <paramref name="noise"/>) leaves its arg-max right about two times in three, wrong independently of the image.</summary>
    public static List<FashionItem> Items(IEnumerable<FashionMnistImage> images, int seed, double noise = 0.5)
    {
        var random = new Random(seed);
        var classes = FashionMnist.ClassNames.ToList();
        return images.Select(image =>
        {
            var hint = new float[10];
            hint[classes.IndexOf(image.Label)] = 1;
            for (int i = 0; i < hint.Length; i++)
                hint[i] += (float)(noise * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
            return new FashionItem { Pixels = image.Features, Item = image.Label, Group = GroupOf(image.Label), Hint = hint };
        }).ToList();
    }

}

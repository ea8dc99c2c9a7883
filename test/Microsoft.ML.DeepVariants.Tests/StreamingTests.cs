using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Data bigger than memory: batches stream from the data view, with the same checks as in-memory data.</summary>
[TestClass]
public sealed class StreamingTests
{
    public TestContext TestContext { get; set; } = null!;

    private static CnnClassifierOptions Options(int size, int channels) => new()
    {
        ImageHeight = size, ImageWidth = size, Channels = channels, Epochs = 1, BatchSize = 32, LearningRate = 3e-3f, Device = TorchDeviceKind.Cpu,
        Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Depth = 2, Width = 8, HiddenSize = 16 },
    };

    [TestMethod]
    public void TrainsFromASourceLargerThanMemoryWithBoundedResidentMemory()
    {
        // 180,000 images of 3x64x64 made on the fly: 2.2 billion floats (8.8 GB), more than an array or a quarter of this machine holds.
        var images = new SyntheticImages(rows: 180_000, size: 64, channels: 3, seed: 1);
        Assert.IsGreaterThan((double)int.MaxValue, 180_000.0 * 3 * 64 * 64);
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var options = Options(64, 3);
        options.StepsPerEpoch = 40;
        double before = ResidentMegabytes(), peak = before;
        options.Progress = new Inline(_ => peak = Math.Max(peak, ResidentMegabytes()));
        var result = ml.Transforms.DeepVariants.CnnClassifier(options).Train(images);

        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("Streaming the training data (180,000 rows")), string.Join("\n", messages.Take(10)));
        TestContext.WriteLine($"resident memory {before:F0} MB before training, at most {peak:F0} MB during 40 streamed batches; {images.FeatureReads:N0} rows decoded");
        Assert.IsLessThan(1024, peak - before, "a few batches and the shuffle buffer, not the data set");
        Assert.IsLessThan(10_000, images.FeatureReads, "only the rows the 40 batches and the shuffle buffer needed were made");
        Assert.AreEqual(40, result.History.Epochs[0].Batches);

        var test = new SyntheticImages(rows: 500, size: 64, channels: 3, seed: 2);
        double accuracy = ml.MulticlassClassification.Evaluate(result.Model.Transform(test)).MicroAccuracy;
        TestContext.WriteLine($"accuracy on 500 new images after 40 streamed batches: {accuracy:P1}");
        Assert.IsGreaterThan(0.9, accuracy, "the bright half tells the classes apart");
    }

    [TestMethod]
    [DataRow(DataLoadingMode.InMemory, 1)]
    [DataRow(DataLoadingMode.Streaming, 3)]
    public void EachEpochReadsEveryRowOnce(DataLoadingMode mode, int readsPerRow)
    {
        var images = new SyntheticImages(rows: 300, size: 8, channels: 1, seed: 3);
        var options = Options(8, 1);
        options.Epochs = 3;
        options.DataLoading = mode;
        options.ShuffleBufferRows = 100;
        new MLContext(seed: 1).Transforms.DeepVariants.CnnClassifier(options).Fit(images);
        Assert.AreEqual(300 * readsPerRow, images.FeatureReads);
        Assert.IsTrue(images.ReadsPerRow.All(r => r == readsPerRow), "in memory every row is read once; streamed, once per epoch");
    }

    [TestMethod]
    [DataRow(DataLoadingMode.InMemory)]
    [DataRow(DataLoadingMode.Streaming)]
    public void StreamedAndInMemoryDataGetTheSameChecks(DataLoadingMode mode)
    {
        var images = new SyntheticImages(rows: 200, size: 8, channels: 1, seed: 4) { NaNAtRow = 57 };
        var options = Options(8, 1);
        options.DataLoading = mode;
        options.ShuffleBufferRows = 0;
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MLContext(seed: 1).Transforms.DeepVariants.CnnClassifier(options).Fit(images));
        StringAssert.Contains(error.Message, "Column 'Features' has a NaN value at row 57");
    }

    private static double ResidentMegabytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return double.Parse(line.Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
    }

    private sealed class Inline(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

/// <summary>
/// Images made on the fly, row by row: noise, and a bright top half for class 0 or bottom half for class 1 in the first
/// channel. Nothing is stored; a row's pixels are computed only when its feature getter is called, which is counted.
/// </summary>
internal sealed class SyntheticImages : IDataView
{
    private readonly long _rows;
    private readonly int _size, _channels, _seed;
    private long _featureReads;

    public SyntheticImages(long rows, int size, int channels, int seed)
    {
        (_rows, _size, _channels, _seed) = (rows, size, channels, seed);
        var builder = new DataViewSchema.Builder();
        builder.AddColumn("Features", new VectorDataViewType(NumberDataViewType.Single, channels * size * size));
        builder.AddColumn("Label", new KeyDataViewType(typeof(uint), 2));
        Schema = builder.ToSchema();
        ReadsPerRow = rows <= 100_000 ? new int[rows] : [];
    }

    public long? NaNAtRow { get; init; }
    public long FeatureReads => Interlocked.Read(ref _featureReads);
    public int[] ReadsPerRow { get; }
    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _rows;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded.Select(c => c.Index).ToHashSet());

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private uint Label(long row) => (uint)(StableSeed.Mix(_seed, row) % 2) + 1;

    private void Fill(long row, Span<float> pixels)
    {
        Interlocked.Increment(ref _featureReads);
        if (ReadsPerRow.Length > 0)
            Interlocked.Increment(ref ReadsPerRow[row]);
        var random = new Random(StableSeed.Mix(_seed, row, 1));
        for (int i = 0; i < pixels.Length; i++)
            pixels[i] = (float)(random.NextDouble() * 0.3);
        int half = _size / 2 * _size, plane = _size * _size;
        var bright = Label(row) == 1 ? pixels[..half] : pixels[half..plane];
        foreach (ref float p in bright)
            p += 0.7f;
        if (row == NaNAtRow)
            pixels[3] = float.NaN;
    }

    private sealed class Cursor(SyntheticImages parent, HashSet<int> active) : DataViewRowCursor
    {
        private long _position = -1;

        public override DataViewSchema Schema => parent.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        public override bool MoveNext() => ++_position < parent._rows;

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index == 1)
                return (ValueGetter<TValue>)(Delegate)(ValueGetter<uint>)((ref uint value) => value = parent.Label(_position));
            int size = parent._channels * parent._size * parent._size;
            ValueGetter<VBuffer<float>> features = (ref VBuffer<float> value) =>
            {
                var editor = VBufferEditor.Create(ref value, size);
                parent.Fill(_position, editor.Values);
                value = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)features;
        }
    }
}

using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>One mini-batch: inputs [B, ...] and targets [B, ...], owned by whoever takes it from a source.</summary>
internal readonly record struct Batch(Tensor Inputs, Tensor Targets) : IDisposable
{
    public long Rows => Inputs.shape[0];

    public void Dispose()
    {
        Inputs.Dispose();
        Targets.Dispose();
    }
}

/// <summary>Where training batches come from: rows held in memory, or streamed from a data view.</summary>
internal interface IBatchSource : IDisposable
{
    /// <summary>Rows in one full pass.</summary>
    long Rows { get; }

    /// <summary>Batches of one epoch, shuffled from (<paramref name="seed"/>, <paramref name="epoch"/>) when <paramref name="shuffle"/> is set.</summary>
    IEnumerable<Batch> Batches(int batchSize, bool shuffle, int seed, int epoch, CancellationToken token);
}

/// <summary>
/// Rows held as CPU tensors: inputs [N, ...] and targets [N, ...]. Shuffled epochs draw their permutations in turn from
/// one generator seeded by the run's seed; asked for a later epoch first (a run resumed from a checkpoint), it draws the
/// earlier epochs' permutations again, so every epoch's order depends only on the seed and the epoch.
/// </summary>
internal sealed class InMemoryBatchSource : IBatchSource
{
    public InMemoryBatchSource(Tensor inputs, Tensor targets)
    {
        if (inputs.shape[0] != targets.shape[0])
            throw new ArgumentException($"Inputs have {inputs.shape[0]} rows but targets have {targets.shape[0]}.");
        Inputs = inputs;
        Targets = targets;
    }

    public Tensor Inputs { get; }
    public Tensor Targets { get; }
    public long Rows => Inputs.shape[0];

    private Generator? _shuffler;
    private int _shufflerSeed, _nextEpoch;

    public IEnumerable<Batch> Batches(int batchSize, bool shuffle, int seed, int epoch, CancellationToken token)
    {
        Tensor? order = shuffle ? Permutation(seed, epoch) : null;
        try
        {
            for (long start = 0; start < Rows; start += batchSize)
            {
                token.ThrowIfCancellationRequested();
                long length = Math.Min(batchSize, Rows - start);
                if (order is null)
                {
                    yield return new Batch(Inputs.narrow(0, start, length), Targets.narrow(0, start, length));
                }
                else
                {
                    using var index = order.narrow(0, start, length);
                    yield return new Batch(Inputs.index_select(0, index), Targets.index_select(0, index));
                }
            }
        }
        finally
        {
            order?.Dispose();
        }
    }

    private Tensor Permutation(int seed, int epoch)
    {
        if (_shuffler is null || seed != _shufflerSeed || epoch < _nextEpoch)
        {
            _shuffler?.Dispose();
            (_shuffler, _shufflerSeed, _nextEpoch) = (new Generator((ulong)seed), seed, 1);
        }
        for (; _nextEpoch < epoch; _nextEpoch++)
            randperm(Rows, generator: _shuffler).Dispose();
        _nextEpoch++;
        return randperm(Rows, generator: _shuffler);
    }

    public void Dispose()
    {
        Inputs.Dispose();
        Targets.Dispose();
        _shuffler?.Dispose();
    }
}

/// <summary>
/// Streams batches from a data view: a background thread reads rows from the cursor (decoding images, say, as ML.NET's
/// lazy transforms do) into each batch's tensors and hands them over through a queue of at most
/// <see cref="TrainingOptions.PrefetchBatches"/> batches, so memory holds a few batches, not the data set.
/// Shuffling: ML.NET's own shuffled cursor when the data view can shuffle (in-memory lists permute fully, its binary
/// and text loaders shuffle blocks), then a shuffle buffer of <see cref="TrainingOptions.ShuffleBufferRows"/> rows from
/// which each row is drawn uniformly, as tf.data's <c>shuffle</c> does, so a view that cannot shuffle still gets local
/// randomness. Both are seeded by the run's seed and the epoch.
/// </summary>
internal sealed class StreamingBatchSource(IDataView data, RowReader reader, long rows, TrainingOptions options, string role) : IBatchSource
{
    // The shuffle buffer is plain arrays; this caps it whatever ShuffleBufferRows says (an array holds at most 2^31 values).
    private const long MaxBufferBytes = 512L << 20;

    public long Rows => rows;

    public IEnumerable<Batch> Batches(int batchSize, bool shuffle, int seed, int epoch, CancellationToken token)
    {
        using var queue = new BlockingCollection<Batch>(Math.Max(1, options.PrefetchBatches));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(token);
        ExceptionDispatchInfo? failure = null;
        var producer = Task.Factory.StartNew(() =>
        {
            try
            {
                Produce(queue, batchSize, shuffle, seed, epoch, stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                queue.CompleteAdding();
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable(token))
                yield return batch;
        }
        finally
        {
            // The consumer may stop early (early stopping, an error, StepsPerEpoch): stop the reader and free what it queued.
            stop.Cancel();
            try
            {
                producer.Wait(CancellationToken.None);
            }
            catch (AggregateException)
            {
            }
            while (queue.TryTake(out var left))
                left.Dispose();
        }
        failure?.Throw();
    }

    /// <summary>The shuffle buffer's rows: the option, or as many as the default budget holds (at least 4,096), never more than the data.</summary>
    public static int BufferRows(TrainingOptions options, long rowBytes, long rows)
    {
        long wanted = options.ShuffleBufferRows ?? Math.Max(4096, TrainingOptions.ShuffleBufferBytes / Math.Max(1, rowBytes));
        return (int)Math.Min(Math.Min(wanted, Math.Max(1, rows)), MaxBufferBytes / Math.Max(1, rowBytes));
    }

    private void Produce(BlockingCollection<Batch> queue, int batchSize, bool shuffle, int seed, int epoch, CancellationToken token)
    {
        var features = reader.Features;
        var targets = reader.Targets;
        int featureValues = features.Values, targetBytes = (int)(reader.RowBytes - featureValues * 4L);
        var cursorRandom = shuffle && data.CanShuffle ? new Random(StableSeed.Mix(seed, epoch, 0xc0)) : null;
        using var cursor = data.GetRowCursor(reader.Columns, cursorRandom);
        var writeFeatures = features.Bind(cursor, role);
        var writeTarget = targets.Bind(cursor, role);

        // The shuffle buffer holds rows as plain arrays; without it rows go straight into the batch tensors.
        int bufferRows = shuffle ? BufferRows(options, reader.RowBytes, rows) : 0;
        float[]? bufferFeatures = bufferRows > 1 ? new float[(long)bufferRows * featureValues] : null;
        byte[]? bufferTargets = bufferRows > 1 ? new byte[(long)bufferRows * targetBytes] : null;
        var pick = new Random(StableSeed.Mix(seed, epoch, 0xb0f));
        int buffered = 0;

        Tensor? x = null, y = null;
        IntPtr xAddress = 0, yAddress = 0;
        int filled = 0;
        long produced = 0;

        void Emit()
        {
            var batch = filled == x!.shape[0] ? new Batch(x, y!) : new Batch(x.narrow(0, 0, filled), y!.narrow(0, 0, filled));
            if (filled != x.shape[0])
            {
                x.Dispose();
                y!.Dispose();
            }
            x = y = null;
            produced += filled;
            filled = 0;
            try
            {
                queue.Add(batch, token);
            }
            catch
            {
                batch.Dispose();
                throw;
            }
        }

        Span<float> NextFeatureRow()
        {
            if (x is null)
            {
                long size = Math.Max(1, Math.Min(batchSize, rows - produced));
                x = empty([size, .. features.Shape]);
                y = empty([size, .. targets.Shape], targets.Type);
                xAddress = TensorMemory.Address(x);
                yAddress = TensorMemory.Address(y);
            }
            return TensorMemory.Row<float>(xAddress, filled, featureValues);
        }

        void Place(ReadOnlySpan<float> rowFeatures, ReadOnlySpan<byte> rowTarget)
        {
            var destination = NextFeatureRow();
            rowFeatures.CopyTo(destination);
            rowTarget.CopyTo(TensorMemory.RowBytes(yAddress, filled, targetBytes));
            if (++filled == x!.shape[0])
                Emit();
        }

        try
        {
            while (cursor.MoveNext())
            {
                token.ThrowIfCancellationRequested();
                long position = cursor.Position;
                if (bufferFeatures is null)
                {
                    var destination = NextFeatureRow();
                    writeFeatures(position, destination);
                    writeTarget(position, destination, TensorMemory.RowBytes(yAddress, filled, targetBytes));
                    if (++filled == x!.shape[0])
                        Emit();
                    continue;
                }
                // Fill the buffer; once full, a row drawn from it at random goes to the batch and the new row takes its slot.
                int slot;
                if (buffered < bufferRows)
                {
                    slot = buffered++;
                }
                else
                {
                    slot = pick.Next(bufferRows);
                    Place(bufferFeatures.AsSpan(slot * featureValues, featureValues), bufferTargets!.AsSpan(slot * targetBytes, targetBytes));
                }
                var slotFeatures = bufferFeatures.AsSpan(slot * featureValues, featureValues);
                writeFeatures(position, slotFeatures);
                writeTarget(position, slotFeatures, bufferTargets!.AsSpan(slot * targetBytes, targetBytes));
            }
            // The rows left in the buffer, in random order.
            if (bufferFeatures is not null)
            {
                var order = Enumerable.Range(0, buffered).OrderBy(_ => pick.Next()).ToArray();
                foreach (int slot in order)
                    Place(bufferFeatures.AsSpan(slot * featureValues, featureValues), bufferTargets!.AsSpan(slot * targetBytes, targetBytes));
            }
            if (filled > 0)
                Emit();
        }
        finally
        {
            x?.Dispose();
            y?.Dispose();
        }
    }

    public void Dispose()
    {
    }
}

/// <summary>
/// Chooses how a data set trains: in memory (every row read once into preallocated native tensors) when it fits under
/// <see cref="TrainingOptions.InMemoryLimitBytes"/>, else streamed; <see cref="TrainingOptions.DataLoading"/> forces either.
/// </summary>
internal static class DataLoading
{
    /// <summary>The rows of <paramref name="data"/>: its own count when it knows it, else one pass with no column read.</summary>
    public static long CountRows(IDataView data)
    {
        if (data.GetRowCount() is { } known)
            return known;
        long count = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext())
            count++;
        return count;
    }

    /// <summary>The default in-memory limit: a quarter of the memory this process may use.</summary>
    public static long DefaultLimitBytes => Math.Max(256L << 20, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4);

    public static IBatchSource Load(IDataView data, RowReader reader, long rows, TrainingOptions options, string role, Action<string>? log)
    {
        long bytes = rows * reader.RowBytes;
        long limit = options.InMemoryLimitBytes ?? DefaultLimitBytes;
        bool stream = options.DataLoading switch
        {
            DataLoadingMode.InMemory => false,
            DataLoadingMode.Streaming => true,
            _ => bytes > limit,
        };
        if (stream)
        {
            log?.Invoke($"Streaming the {role} data ({rows:N0} rows, {bytes / 1e9:F2} GB{(options.DataLoading == DataLoadingMode.Auto ? $", over the in-memory limit of {limit / 1e9:F2} GB" : "")}), " +
                $"prefetching {options.PrefetchBatches} batches, shuffle buffer {StreamingBatchSource.BufferRows(options, reader.RowBytes, rows):N0} rows.");
            return new StreamingBatchSource(data, reader, rows, options, role);
        }
        return ReadAll(data, reader, rows, role);
    }

    /// <summary>Reads every row into one preallocated native tensor per part, in place.</summary>
    public static InMemoryBatchSource ReadAll(IDataView data, RowReader reader, long rows, string role)
    {
        var features = reader.Features;
        var targets = reader.Targets;
        bool alias = targets is SameAsFeatures;
        var x = empty([rows, .. features.Shape]);
        var y = alias ? null : empty([rows, .. targets.Shape], targets.Type);
        try
        {
            long read = 0;
            if (rows > 0)
            {
                int featureValues = features.Values, targetBytes = (int)(reader.RowBytes - featureValues * 4L);
                IntPtr xAddress = TensorMemory.Address(x);
                IntPtr yAddress = y is null || y.numel() == 0 ? 0 : TensorMemory.Address(y);
                using var cursor = data.GetRowCursor(reader.Columns);
                var writeFeatures = features.Bind(cursor, role);
                var writeTarget = alias ? null : targets.Bind(cursor, role);
                while (cursor.MoveNext())
                {
                    if (read == rows)
                        throw new InvalidOperationException($"The {role} data gave more than the {rows} rows it was counted to have; a data view must give the same rows on every pass.");
                    var row = TensorMemory.Row<float>(xAddress, read, featureValues);
                    writeFeatures(read, row);
                    writeTarget?.Invoke(read, row, TensorMemory.RowBytes(yAddress, read, targetBytes));
                    read++;
                }
            }
            if (read < rows)
            {
                (x, y) = (Narrowed(x, read), y is null ? null : Narrowed(y, read));
            }
            return new InMemoryBatchSource(x, y ?? x.alias());
        }
        catch
        {
            x.Dispose();
            y?.Dispose();
            throw;
        }
    }

    private static Tensor Narrowed(Tensor tensor, long rows)
    {
        var view = tensor.narrow(0, 0, rows);
        tensor.Dispose();
        return view;
    }
}

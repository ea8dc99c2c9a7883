using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.DeepVariants.Backbones;

/// <summary>Options of <see cref="PretrainedFeaturizerEstimator"/>.</summary>
/// <example>
/// <code>
/// var options = new PretrainedFeaturizerOptions(PretrainedBackboneOptions.ResNet18()) { OutputColumnName = "Embedding", BatchSize = 32 };
/// </code>
/// </example>
public sealed class PretrainedFeaturizerOptions : PretrainedBackboneOptions
{
    /// <summary>Options with defaults.</summary>
    public PretrainedFeaturizerOptions() { }

    /// <summary>Options for <paramref name="backbone"/>'s file, cut and preprocessing.</summary>
    public PretrainedFeaturizerOptions(PretrainedBackboneOptions backbone)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        (Model, ModelPath, OutputNodeName, InputColumnName, ImageHeight, ImageWidth, Channels, ChannelOrder, ChannelMeans, Scale) =
            (backbone.Model, backbone.ModelPath, backbone.OutputNodeName, backbone.InputColumnName, backbone.ImageHeight, backbone.ImageWidth, backbone.Channels,
             backbone.ChannelOrder, backbone.ChannelMeans, backbone.Scale);
    }

    /// <summary>The embedding column. Default "Embedding".</summary>
    public string OutputColumnName { get; set; } = "Embedding";

    /// <summary>Images per ONNX Runtime call when a data view is transformed. Default 32.</summary>
    public int BatchSize { get; set; } = 32;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (string.IsNullOrWhiteSpace(OutputColumnName))
            throw new ArgumentException("OutputColumnName must name a column.", nameof(OutputColumnName));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize, nameof(BatchSize));
    }
}

/// <summary>
/// A frozen featurizer from any pretrained ONNX backbone, cut at a chosen value: pixels in, embedding out. Transforming
/// a data view runs the backbone with ONNX Runtime in batches; the saved model is ML.NET's own ONNX transformer
/// over the same cut graph (one row at a time), so it loads with plain ML.NET.
/// </summary>
/// <example>
/// <code>
/// var pipeline = mlContext.Transforms.LoadImages("Image", imageFolder, "Path")
///     .Append(mlContext.Transforms.ResizeImages("Image", 224, 224))
///     .Append(mlContext.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: false))
///     .Append(mlContext.Transforms.DeepVariants.PretrainedFeaturizer(new PretrainedFeaturizerOptions(PretrainedBackboneOptions.ResNet18())))
///     .Append(mlContext.MulticlassClassification.Trainers.LbfgsMaximumEntropy(featureColumnName: "Embedding"));
/// </code>
/// </example>
public sealed class PretrainedFeaturizerEstimator : IEstimator<ITransformer>
{
    private readonly ModelContext _context;

    internal PretrainedFeaturizerEstimator(ModelContext context, PretrainedFeaturizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        Options = options;
    }

    /// <summary>The options.</summary>
    public PretrainedFeaturizerOptions Options { get; }

    /// <summary>Checks the pixel column and builds the featurizer (nothing is trained).</summary>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        int size = Options.Channels * Options.ImageHeight * Options.ImageWidth;
        SchemaView.RequireFloatVector(input.Schema, Options.InputColumnName, size);
        byte[] backbone = Options.ReadModel();
        string cut = Options.OutputNodeName ?? global::Onnx.ModelProto.Parser.ParseFrom(backbone).Graph.Output[0].Name;
        var preprocessing = Options.Preprocessing();
        IReadOnlySet<string> globalPools;
        long width;
        using (var imported = OnnxImporter.Import(backbone, cut, Options.Source))
            (globalPools, width) = (imported.GlobalPoolNodes, imported.OutputWidth(Options.ImageHeight, Options.ImageWidth));
        byte[] single = OnnxGraphSurgery.Build(backbone, cut, preprocessing, Options.InputColumnName, Options.OutputColumnName, batched: false, globalPools, width);
        byte[] batched = OnnxGraphSurgery.Build(backbone, cut, preprocessing, Options.InputColumnName, Options.OutputColumnName, batched: true, globalPools, width);
        var serving = OnnxServing.Apply(_context, single, [Options.InputColumnName], [Options.OutputColumnName], input);
        return new BatchedOnnxTransformer(serving, batched, Options.InputColumnName, size, Options.OutputColumnName, Options.BatchSize);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.TryGetValue(Options.InputColumnName, out var pixels))
            throw SchemaView.MissingColumn(Options.InputColumnName);
        if (pixels.ItemType != NumberDataViewType.Single || pixels.Kind != SchemaShape.Column.VectorKind.Vector)
            throw new ArgumentOutOfRangeException(Options.InputColumnName,
                $"Schema mismatch for input column '{Options.InputColumnName}': expected Vector<Single, {Options.Channels * Options.ImageHeight * Options.ImageWidth}>, got {pixels.Kind} of {pixels.ItemType}.");
        columns[Options.OutputColumnName] = MLNetInternals.SchemaColumn(Options.OutputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }
}

/// <summary>
/// Transforms data views by running ONNX Runtime on batches of rows, and is everything else (schema, row mapping,
/// saving) the equivalent single-row ML.NET ONNX transformer, so a saved model loads as plain ML.NET.
/// </summary>
internal sealed class BatchedOnnxTransformer : ITransformer, IDisposable
{
    private readonly ITransformer _serving;
    private readonly InferenceSession _session;
    private readonly string _input, _output;
    private readonly int _size, _batchSize;

    public BatchedOnnxTransformer(ITransformer serving, byte[] batchedGraph, string input, int size, string output, int batchSize)
    {
        _serving = serving;
        using var sessionOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = Environment.ProcessorCount };
        _session = new InferenceSession(batchedGraph, sessionOptions);
        (_input, _size, _output, _batchSize) = (input, size, output, batchSize);
    }

    public bool IsRowToRowMapper => _serving.IsRowToRowMapper;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _serving.GetOutputSchema(inputSchema);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => _serving.GetRowToRowMapper(inputSchema);

    // Saved as its single-row equivalent: ML.NET's ONNX transformer, which plain ML.NET loads.
    void ICanSaveModel.Save(ModelSaveContext ctx) => _serving.Save(ctx);

    public IDataView Transform(IDataView input)
    {
        SchemaView.RequireFloatVector(input.Schema, _input, _size);
        var schema = _serving.GetOutputSchema(input.Schema);
        return new ColumnAppendedDataView(input, schema, _output, new Lazy<float[][]>(() => Featurize(input)));
    }

    public void Dispose() => _session.Dispose();

    // Streams the pixels batch by batch (all of them would not fit in memory for large sets) and keeps only the embeddings.
    private float[][] Featurize(IDataView input)
    {
        var results = new List<float[]>();
        var column = input.Schema[_input];
        var batch = new float[_batchSize * _size];
        int filled = 0;
        using (var cursor = input.GetRowCursor([column]))
        {
            var get = cursor.GetGetter<VBuffer<float>>(column);
            VBuffer<float> pixels = default;
            while (cursor.MoveNext())
            {
                get(ref pixels);
                pixels.CopyTo(batch, filled * _size);
                if (++filled == _batchSize)
                {
                    results.AddRange(Run(batch, filled));
                    filled = 0;
                }
            }
        }
        if (filled > 0)
            results.AddRange(Run(batch, filled));
        return results.ToArray();
    }

    private IEnumerable<float[]> Run(float[] batch, int rows)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, batch.AsMemory(0, rows * _size), [rows, (long)_size]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, new Dictionary<string, OrtValue> { [_input] = value }, [_output]);
        var data = outputs[0].GetTensorDataAsSpan<float>();
        int width = data.Length / rows;
        var embeddings = new float[rows][];
        for (int r = 0; r < rows; r++)
            embeddings[r] = data.Slice(r * width, width).ToArray();
        return embeddings;
    }
}

/// <summary>
/// The input data view with one more column whose values were computed up front, looked up by row position. The
/// schema is the input's (same column indices, hidden columns included) followed by the new column, as ML.NET's own
/// row-to-row transformers lay it out.
/// </summary>
internal sealed class ColumnAppendedDataView(IDataView input, DataViewSchema schema, string column, Lazy<float[][]> values) : IDataView
{
    private readonly int _added = schema[column].Index;
    private readonly Lazy<float[][]> _values = values;

    public bool CanShuffle => false;
    public DataViewSchema Schema => schema;
    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        var inputColumns = needed.Where(c => c.Index < input.Schema.Count).Select(c => input.Schema[c.Index]).ToList();
        return new Cursor(this, input.GetRowCursor(inputColumns), needed.Any(c => c.Index == _added));
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor(ColumnAppendedDataView parent, DataViewRowCursor inner, bool wantsColumn) : DataViewRowCursor
    {
        private readonly float[][]? _values = wantsColumn ? parent._values.Value : null;

        public override DataViewSchema Schema => parent.Schema;
        public override long Position => inner.Position;
        public override long Batch => inner.Batch;
        public override bool MoveNext() => inner.MoveNext();
        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index == parent._added ? _values is not null : column.Index < inner.Schema.Count && inner.IsColumnActive(inner.Schema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index != parent._added)
                return inner.GetGetter<TValue>(inner.Schema[column.Index]);
            ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> value) =>
            {
                float[] row = _values![inner.Position];
                var editor = VBufferEditor.Create(ref value, row.Length);
                row.CopyTo(editor.Values);
                value = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)getter;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                inner.Dispose();
            base.Dispose(disposing);
        }
    }
}

using Microsoft.ML.DeepVariants.Cnn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Distillation;

/// <summary>
/// Distillation of intermediate features, added to another objective's loss. The student's and the teacher's last
/// convolutional feature maps S [N, Cs, h, w] and T [N, Ct, h', w'] (the larger map average-pooled to the smaller grid)
/// are compared on every batch; the teacher's network runs on the batch's images without gradients.
/// <list type="bullet">
/// <item><see cref="FeatureLoss.Hint"/> (FitNets, Romero et al. 2015): weight · mean((A(S) − T)²), with A a learned 1×1
/// convolution from Cs to Ct channels that trains with the student and is dropped afterwards.</item>
/// <item><see cref="FeatureLoss.Attention"/> (attention transfer, Zagoruyko and Komodakis 2017): with q(F) the spatial map
/// mean over channels of F², flattened and scaled to unit length, weight / 2 · mean over rows and positions of (q(S) − q(T))²,
/// as the authors' code computes it (their β is 1,000).</item>
/// </list>
/// </summary>
internal sealed class FeatureDistillationObjective : ITrainingObjective, IDisposable
{
    private readonly ITrainingObjective _inner;
    private readonly CnnNetwork _teacher;
    private readonly FeatureLoss _kind;
    private readonly Scalar _weight;
    private static readonly Scalar Half = 0.5.ToScalar();
    private Conv2d? _adaptor;
    private Tensor? _input, _studentMap;

    public FeatureDistillationObjective(ITrainingObjective inner, CnnNetwork teacher, FeatureLoss kind, double weight)
    {
        _inner = inner;
        _teacher = teacher;
        _kind = kind;
        Weight = weight;
        // Held for the objective's life, so the loss never makes a temporary Scalar (see Scalars).
        _weight = weight.ToScalar();
        _teacher.eval();
        foreach (var p in _teacher.parameters())
            p.requires_grad_(false);
    }

    public double Weight { get; }

    public IEnumerable<Parameter> Parameters => _adaptor?.parameters() ?? [];

    public IDisposable? Attach(nn.Module<Tensor, Tensor> model)
    {
        var student = model as CnnNetwork ?? throw new NotSupportedException($"Feature distillation needs a CNN student; this one is a {model.GetType().Name}.");
        if ((student.Channels, student.Height, student.Width) != (_teacher.Channels, _teacher.Height, _teacher.Width))
            throw new ArgumentException(
                $"The teacher reads {_teacher.Channels}x{_teacher.Height}x{_teacher.Width} images and the student {student.Channels}x{student.Height}x{student.Width}; " +
                "feature distillation feeds both the same batch, so give the student the teacher's ImageHeight, ImageWidth and channels.", nameof(DistillationOptions.FeatureLoss));
        var device = student.parameters().First().device;
        _teacher.to(device);
        if (_kind == FeatureLoss.Hint)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            using var probe = zeros(1, student.Channels, student.Height, student.Width, device: device);
            long studentChannels = student.Convolutions.call(probe).shape[1], teacherChannels = _teacher.Convolutions.call(probe).shape[1];
            _adaptor?.Dispose();
            _adaptor = nn.Conv2d(studentChannels, teacherChannels, 1, device: device);
        }
        // The batch's images, and the student's last feature map, as the student's forward pass sees them.
        var input = student.register_forward_pre_hook((_, x) =>
        {
            _input = x;
            return x;
        });
        var map = student.Convolutions.register_forward_hook((_, _, y) =>
        {
            _studentMap = y;
            return y;
        });
        return new Hooks(() => { input.remove(); map.remove(); }, this);
    }

    public Tensor Loss(Tensor output, Tensor target)
    {
        var loss = _inner.Loss(output, target);
        if (_input is null || _studentMap is null)
            throw new InvalidOperationException("Feature distillation saw no forward pass of the student before its loss.");
        Tensor teacherMap;
        using (no_grad())
            teacherMap = _teacher.Convolutions.call(_input).detach();
        var studentMap = _studentMap;
        (studentMap, teacherMap) = SameGrid(studentMap, teacherMap);
        Tensor feature = _kind switch
        {
            FeatureLoss.Hint => nn.functional.mse_loss(_adaptor!.call(studentMap), teacherMap),
            _ => (Attention(studentMap) - Attention(teacherMap)).pow(2).mean().mul(Half),
        };
        return loss.Plus(feature.mul(_weight));
    }

    // q(F): the channel mean of F², flattened over positions and scaled to unit length.
    private static Tensor Attention(Tensor map) => nn.functional.normalize(map.pow(2).mean([1]).flatten(1), p: 2, dim: 1);

    // The finer map average-pooled to the coarser one's grid.
    private static (Tensor, Tensor) SameGrid(Tensor a, Tensor b)
    {
        long h = Math.Min(a.shape[2], b.shape[2]), w = Math.Min(a.shape[3], b.shape[3]);
        return (Pool(a, h, w), Pool(b, h, w));
        static Tensor Pool(Tensor x, long h, long w) =>
            x.shape[2] == h && x.shape[3] == w ? x : nn.functional.adaptive_avg_pool2d(x, [h, w]);
    }

    public double? MetricSum(Tensor output, Tensor target) => _inner.MetricSum(output, target);

    public long CountedRows(Tensor target) => _inner.CountedRows(target);

    public bool ClassifiesRows => _inner.ClassifiesRows;

    public void AddClasses(Tensor output, Tensor target, ClassesSeen seen) => _inner.AddClasses(output, target, seen);

    public void Dispose()
    {
        _adaptor?.Dispose();
        _teacher.Dispose();
    }

    private sealed class Hooks(Action remove, FeatureDistillationObjective owner) : IDisposable
    {
        public void Dispose()
        {
            remove();
            owner._input = owner._studentMap = null;
        }
    }
}

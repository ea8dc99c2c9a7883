using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants;

/// <summary>One group of parameters with its learning rate and weight decay.</summary>
internal sealed class ParameterGroup(IReadOnlyList<Parameter> parameters, double learningRate, double weightDecay)
{
    public IReadOnlyList<Parameter> Parameters { get; } = parameters;
    public double LearningRate { get; set; } = learningRate;
    public double WeightDecay { get; } = weightDecay;
}

/// <summary>
/// The optimizers the trainer uses: Adam, AdamW and SGD with momentum, with PyTorch's update rules and TorchSharp's
/// order of operations (so the numbers are those of <c>torch.optim</c>). They are written here, not taken from
/// TorchSharp, because TorchSharp 0.107's optimizers pass implicitly created Scalars (<c>alpha: 1 - beta1</c>) to native
/// code, which a garbage collection can free mid-call (see <see cref="Scalars"/>); every number here is a Scalar held
/// for the call. The state (steps, moments, momentum buffers) saves to and loads from a checkpoint.
/// </summary>
internal abstract class TrainingOptimizer : IDisposable
{
    protected TrainingOptimizer(IReadOnlyList<ParameterGroup> groups) => Groups = groups;

    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>Clears every gradient (to zero, as <c>zero_grad(set_to_none=False)</c>).</summary>
    public void ZeroGrad()
    {
        using var noGrad = no_grad();
        foreach (var group in Groups)
            foreach (var parameter in group.Parameters)
                parameter.grad?.zero_();
    }

    /// <summary>Updates every parameter that has a gradient, without recording the update in autograd.</summary>
    public void Step()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var group in Groups)
        {
            using Scalar weightDecay = group.WeightDecay.ToScalar();
            foreach (var parameter in group.Parameters)
                if (parameter.grad is { } grad)
                    Update(group, parameter, grad, weightDecay);
        }
    }

    protected abstract void Update(ParameterGroup group, Parameter parameter, Tensor grad, Scalar weightDecay);

    /// <summary>Writes the state, parameter by parameter in group order.</summary>
    public abstract void Save(BinaryWriter writer);

    /// <summary>Reads what <see cref="Save"/> wrote for the same parameters.</summary>
    public abstract void Load(BinaryReader reader);

    public abstract void Dispose();

    protected IEnumerable<Parameter> AllParameters => Groups.SelectMany(g => g.Parameters);

    protected static Tensor StateLike(Tensor parameter) => zeros_like(parameter).DetachFromDisposeScope();
}

/// <summary>
/// Adam (Kingma and Ba 2015), with L2 weight decay added to the gradient, or AdamW (decoupled weight decay); β₁ is 0.9
/// unless given (GANs train with 0.5).
/// </summary>
internal sealed class AdamOptimizer : TrainingOptimizer
{
    private const double Beta2 = 0.999, Epsilon = 1e-8;
    private static readonly Scalar Beta2Scalar = Scalars.Of(Beta2), OneMinusBeta2 = Scalars.Of(1 - Beta2), EpsilonScalar = Scalars.Of(Epsilon);

    private readonly bool _decoupled;
    private readonly double _beta1;
    private readonly Scalar _beta1Scalar, _oneMinusBeta1;
    private readonly Dictionary<Parameter, (long Step, Tensor Average, Tensor Squares)> _state = new(ReferenceEqualityComparer.Instance);

    public AdamOptimizer(IReadOnlyList<ParameterGroup> groups, bool decoupledWeightDecay, double beta1 = 0.9) : base(groups)
    {
        _decoupled = decoupledWeightDecay;
        _beta1 = beta1;
        (_beta1Scalar, _oneMinusBeta1) = (Scalars.Of(beta1), Scalars.Of(1 - beta1));
        foreach (var parameter in AllParameters)
            _state[parameter] = (0, StateLike(parameter), StateLike(parameter));
    }

    protected override void Update(ParameterGroup group, Parameter parameter, Tensor grad, Scalar weightDecay)
    {
        var (step, average, squares) = _state[parameter];
        _state[parameter] = (++step, average, squares);
        double lr = group.LearningRate;
        if (group.WeightDecay != 0)
        {
            if (_decoupled)
            {
                using Scalar shrink = (1 - lr * group.WeightDecay).ToScalar();
                parameter.mul_(shrink);
            }
            else
                grad = grad.add(parameter, weightDecay);
        }
        double correction1 = 1 - Math.Pow(_beta1, step), correction2 = 1 - Math.Pow(Beta2, step);
        average.mul_(_beta1Scalar).add_(grad, _oneMinusBeta1);
        squares.mul_(Beta2Scalar).addcmul_(grad, grad, OneMinusBeta2);
        using Scalar root = Math.Sqrt(correction2).ToScalar(), stepSize = (-lr / correction1).ToScalar();
        var denominator = squares.sqrt().div(root).add_(EpsilonScalar, Scalars.One);
        parameter.addcdiv_(average, denominator, stepSize);
    }

    public override void Save(BinaryWriter writer)
    {
        foreach (var parameter in AllParameters)
        {
            var (step, average, squares) = _state[parameter];
            writer.Write(step);
            average.Save(writer);
            squares.Save(writer);
        }
    }

    public override void Load(BinaryReader reader)
    {
        foreach (var parameter in AllParameters)
        {
            var (_, average, squares) = _state[parameter];
            long step = reader.ReadInt64();
            average.Load(reader);
            squares.Load(reader);
            _state[parameter] = (step, average, squares);
        }
    }

    public override void Dispose()
    {
        foreach (var (_, average, squares) in _state.Values)
        {
            average.Dispose();
            squares.Dispose();
        }
        _state.Clear();
    }
}

/// <summary>Stochastic gradient descent with momentum (no dampening, no Nesterov) and L2 weight decay, as <c>torch.optim.SGD</c>.</summary>
internal sealed class SgdOptimizer(IReadOnlyList<ParameterGroup> groups, double momentum) : TrainingOptimizer(groups)
{
    private readonly Scalar _momentum = momentum.ToScalar();
    private readonly Dictionary<Parameter, Tensor> _buffers = new(ReferenceEqualityComparer.Instance);

    protected override void Update(ParameterGroup group, Parameter parameter, Tensor grad, Scalar weightDecay)
    {
        if (group.WeightDecay != 0)
            grad = grad.add(parameter, weightDecay);
        if (momentum != 0)
        {
            if (_buffers.TryGetValue(parameter, out var buffer))
                buffer.mul_(_momentum).add_(grad, Scalars.One);
            else
                _buffers[parameter] = buffer = grad.clone().detach().DetachFromDisposeScope();
            grad = buffer;
        }
        using Scalar step = (-group.LearningRate).ToScalar();
        parameter.add_(grad, step);
    }

    public override void Save(BinaryWriter writer)
    {
        foreach (var parameter in AllParameters)
        {
            bool has = _buffers.TryGetValue(parameter, out var buffer);
            writer.Write(has);
            if (has)
                buffer!.Save(writer);
        }
    }

    public override void Load(BinaryReader reader)
    {
        foreach (var parameter in AllParameters)
        {
            if (!reader.ReadBoolean())
                continue;
            if (!_buffers.TryGetValue(parameter, out var buffer))
                _buffers[parameter] = buffer = StateLike(parameter);
            buffer.Load(reader);
        }
    }

    public override void Dispose()
    {
        foreach (var buffer in _buffers.Values)
            buffer.Dispose();
        _buffers.Clear();
        _momentum.Dispose();
    }
}

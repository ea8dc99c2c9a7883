using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// The trainer's own optimizers (written to hold every Scalar they pass to native code) against TorchSharp's
/// <c>torch.optim</c>, from the same weights on the same batches: the weights after each step must agree.
/// </summary>
[TestClass]
public sealed class OptimizerTests
{
    private static nn.Module<Tensor, Tensor> Network(int seed)
    {
        random.manual_seed(seed);
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3));
    }

    // Runs 25 steps of each optimizer on a copy of the same network and returns the largest weight difference.
    private static float Compare(Func<IReadOnlyList<ParameterGroup>, TrainingOptimizer> ours, Func<IEnumerable<Parameter>, optim.Optimizer> theirs, int seed)
    {
        using var a = Network(seed);
        using var b = Network(seed);
        var groups = new[] { new ParameterGroup(a.parameters().ToList(), 0.01, 0.05) };
        using var mine = ours(groups);
        using var reference = theirs(b.parameters());
        var generator = new Generator((ulong)seed);
        for (int step = 0; step < 25; step++)
        {
            using var scope = NewDisposeScope();
            var x = randn(16, 6, generator: generator);
            var y = randint(0, 3, [16], generator: generator);
            mine.ZeroGrad();
            nn.functional.cross_entropy(a.call(x), y).backward();
            mine.Step();
            reference.zero_grad();
            nn.functional.cross_entropy(b.call(x), y).backward();
            reference.step();
        }
        return a.parameters().Zip(b.parameters()).Max(p => (p.First - p.Second).abs().max().item<float>());
    }

    [TestMethod]
    public void AdamMatchesTorchOptimAdamWithL2WeightDecay() =>
        Assert.IsLessThan(1e-6f, Compare(g => new AdamOptimizer(g, decoupledWeightDecay: false), p => optim.Adam(p, lr: 0.01, weight_decay: 0.05), 1));

    [TestMethod]
    public void AdamWMatchesTorchOptimAdamW() =>
        Assert.IsLessThan(1e-6f, Compare(g => new AdamOptimizer(g, decoupledWeightDecay: true), p => optim.AdamW(p, lr: 0.01, weight_decay: 0.05), 2));

    [TestMethod]
    public void SgdWithMomentumMatchesTorchOptimSgd() =>
        Assert.IsLessThan(1e-6f, Compare(g => new SgdOptimizer(g, momentum: 0.9), p => optim.SGD(p, 0.01, momentum: 0.9, weight_decay: 0.05), 3));

    [TestMethod]
    public void TheStateSavedAndLoadedContinuesTheSameSteps()
    {
        // A checkpoint holds the optimizer's state: a copy loaded from it takes the same next step.
        using var a = Network(4);
        using var b = Network(4);
        using var first = new AdamOptimizer([new ParameterGroup(a.parameters().ToList(), 0.01, 0)], decoupledWeightDecay: false);
        var x = randn(8, 6);
        var y = randint(0, 3, [8]);
        void Step(nn.Module<Tensor, Tensor> network, TrainingOptimizer optimizer)
        {
            optimizer.ZeroGrad();
            nn.functional.cross_entropy(network.call(x), y).backward();
            optimizer.Step();
        }
        for (int i = 0; i < 3; i++)
            Step(a, first);
        using (no_grad())
            foreach (var (target, source) in b.parameters().Zip(a.parameters()))
                target.copy_(source);
        var saved = new MemoryStream();
        first.Save(new BinaryWriter(saved));
        using var second = new AdamOptimizer([new ParameterGroup(b.parameters().ToList(), 0.01, 0)], decoupledWeightDecay: false);
        saved.Position = 0;
        second.Load(new BinaryReader(saved));
        Step(a, first);
        Step(b, second);
        Assert.AreEqual(0f, a.parameters().Zip(b.parameters()).Max(p => (p.First - p.Second).abs().max().item<float>()));
    }
}

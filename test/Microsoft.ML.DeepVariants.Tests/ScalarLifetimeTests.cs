namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>
/// TorchSharp 0.107 frees an implicitly created Scalar in its finalizer while a native kernel may still read it (see
/// <c>Scalars</c> in the library). A bidirectional GRU on 427-step series makes thousands of such calls a batch; with a
/// thread forcing garbage collections, the process died before its first fit ended in 3 runs of 3 before the fix
/// ("Expected false to be true ... toFloat at c10/core/Scalar.h", then the same from Adam's step). It runs in a
/// process of its own, since the failure kills the process.
/// </summary>
[TestClass]
public sealed class ScalarLifetimeTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void ABidirectionalGruOn427StepsSurvivesGarbageCollectionsDuringItsKernels()
    {
        var (code, output) = Hosts.Run(Hosts.Training, ["gru-stress", "20"], TimeSpan.FromMinutes(5));
        TestContext.WriteLine(output.Length > 2000 ? output[^2000..] : output);
        Assert.AreEqual(0, code, output.Length > 4000 ? output[^4000..] : output);
        StringAssert.Contains(output, "DONE");
    }
}

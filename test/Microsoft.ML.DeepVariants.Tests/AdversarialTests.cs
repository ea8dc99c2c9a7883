using Microsoft.ML.DeepVariants.Adversarial;
using Microsoft.ML.DeepVariants.Cnn;

namespace Microsoft.ML.DeepVariants.Tests;

[TestClass]
public sealed class AdversarialTests
{
    public TestContext TestContext { get; set; } = null!;

    private static CnnClassifierOptions Options(AdversarialTraining? adversarial) => new()
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = 3, BatchSize = 64, Seed = 1, Device = TorchDeviceKind.Cpu, Adversarial = adversarial,
        Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Depth = 2, Width = 16, HiddenSize = 64 },
    };

    [TestMethod]
    public void AttacksLowerAccuracyPgdMoreThanFgsmAndAdversarialTrainingResistsThem()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 2000));
        var test = TestData.Keyed(ml, TestData.Test(ml, 500));
        float[] budgets = [0, 0.05f, 0.1f];

        var plain = ml.Transforms.DeepVariants.CnnClassifier(Options(null)).Train(train);
        var fgsm = AdversarialEvaluation.Evaluate(ml, plain, test, budgets, AdversarialAttack.Fgsm);
        var pgd = AdversarialEvaluation.Evaluate(ml, plain, test, budgets, AdversarialAttack.Pgd, steps: 10);
        double served = ml.MulticlassClassification.Evaluate(plain.Model.Transform(test)).MicroAccuracy;
        TestContext.WriteLine($"plain: served {served:P2}; FGSM {string.Join(", ", fgsm.Select(a => $"{a.Epsilon}: {a.Accuracy:P2}"))}; " +
            $"PGD {string.Join(", ", pgd.Select(a => $"{a.Epsilon}: {a.Accuracy:P2}"))}");
        Assert.AreEqual(served, fgsm[0].Accuracy, 0.005, "epsilon 0 is the clean accuracy the served model has");
        Assert.AreEqual(fgsm[0].Accuracy, pgd[0].Accuracy, 1e-9);
        Assert.IsLessThan(fgsm[0].Accuracy - 0.2, fgsm[2].Accuracy, "an undefended network loses much of its accuracy at epsilon 0.1");
        Assert.IsLessThan(fgsm[2].Accuracy, pgd[2].Accuracy, "PGD finds stronger examples than one FGSM step");
        Assert.IsLessThanOrEqualTo(fgsm[1].Accuracy, fgsm[2].Accuracy + 1e-9, "a larger budget does no better");

        var defended = ml.Transforms.DeepVariants.CnnClassifier(Options(new AdversarialTraining { Attack = AdversarialAttack.Fgsm, Epsilon = 0.1f })).Train(train);
        var defendedFgsm = AdversarialEvaluation.Evaluate(ml, defended, test, [0, 0.1f], AdversarialAttack.Fgsm);
        var defendedPgd = AdversarialEvaluation.Evaluate(ml, defended, test, [0.1f], AdversarialAttack.Pgd, steps: 10);
        TestContext.WriteLine($"FGSM-trained: clean {defendedFgsm[0].Accuracy:P2}, FGSM 0.1 {defendedFgsm[1].Accuracy:P2}, PGD 0.1 {defendedPgd[0].Accuracy:P2}");
        // Seed 1 gave 40.6 % and 20.4 % before, 56.0 % and 47.6 % after: the floors leave room for other seeds' noise.
        Assert.IsGreaterThan(fgsm[2].Accuracy + 0.08, defendedFgsm[1].Accuracy, "adversarial training resists the attack it trained against");
        Assert.IsGreaterThan(pgd[2].Accuracy + 0.15, defendedPgd[0].Accuracy, "and the stronger PGD too");
        Assert.IsGreaterThan(0.6, defendedFgsm[0].Accuracy, "while still classifying clean images");
    }

    [TestMethod]
    public void BadAdversarialSettingsAreRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.Keyed(ml, TestData.Train(ml, 64));
        foreach (var (adversarial, name) in new (AdversarialTraining, string)[]
        {
            (new() { Epsilon = -0.1f }, "Epsilon"),
            (new() { Steps = 0 }, "Steps"),
            (new() { Fraction = 0 }, "Fraction"),
            (new() { InputMinimum = 1, InputMaximum = 0 }, "InputMaximum"),
        })
        {
            var e = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.CnnClassifier(Options(adversarial)).Fit(train));
            StringAssert.Contains(e.Message, name);
        }
        var fit = ml.Transforms.DeepVariants.CnnClassifier(Options(null)).Train(train);
        var budget = Assert.Throws<ArgumentException>(() => AdversarialEvaluation.Evaluate(ml, fit, train, [float.NaN]));
        StringAssert.Contains(budget.Message, "Epsilon");
        var empty = Assert.Throws<ArgumentException>(() => AdversarialEvaluation.Evaluate(ml, fit, train, []));
        StringAssert.Contains(empty.Message, "epsilon");
    }
}

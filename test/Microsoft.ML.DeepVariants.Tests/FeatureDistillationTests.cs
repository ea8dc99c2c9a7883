using Microsoft.ML.Data;
using Microsoft.ML.DeepVariants.Cnn;
using Microsoft.ML.DeepVariants.Distillation;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepVariants.Tests;

/// <summary>Feature distillation (FitNets hints, attention transfer) against the same student trained alone.</summary>
[TestClass]
public sealed class FeatureDistillationTests
{
    public TestContext TestContext { get; set; } = null!;

    private static CnnClassifierOptions Student() => new()
    {
        ImageHeight = 28, ImageWidth = 28, Epochs = 6, BatchSize = 32, MinimumSteps = 0, Seed = 1, Device = TorchDeviceKind.Cpu,
        Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 4, HiddenSize = 16 },
    };

    // q(F) of the last feature maps of 200 test images: channel mean of squares, flattened, unit length.
    private static Tensor AttentionMaps(FitResult fitted, Tensor images)
    {
        var network = (CnnNetwork)fitted.Trained!.Restore();
        using var noGrad = no_grad();
        var map = network.Convolutions.call(images);
        return nn.functional.normalize(map.pow(2).mean([1]).flatten(1), p: 2, dim: 1);
    }

    [TestMethod]
    public void FeatureDistillationBringsTheStudentsAttentionMapsToTheTeachers()
    {
        var ml = new MLContext(seed: 1);
        var slice = TestData.Keyed(ml, TestData.Train(ml, 500));
        var test = TestData.Keyed(ml, TestData.Test(ml, 1000));
        var teacher = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 3, Device = TorchDeviceKind.Cpu, Seed = 1,
            Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 16, HiddenSize = 64 },
        }).Train(TestData.Keyed(ml, TestData.Train(ml, 3000)));
        double Accuracy(ITransformer model) => ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;

        var alone = ml.Transforms.DeepVariants.CnnClassifier(Student()).Train(slice);
        var attention = ml.Transforms.DeepVariants.Distill(teacher, new DistillationOptions { Student = Student(), Alpha = 0, FeatureLoss = FeatureLoss.Attention }).Train(slice);
        var hints = ml.Transforms.DeepVariants.Distill(teacher, new DistillationOptions { Student = Student(), Alpha = 0, FeatureLoss = FeatureLoss.Hint }).Train(slice);

        using var scope = NewDisposeScope();
        var images = tensor(TestData.Test(ml, 200).GetColumn<float[]>("Features").SelectMany(f => f).ToArray()).reshape(200, 1, 28, 28);
        var target = AttentionMaps(teacher, images);
        double Distance(FitResult student) => (AttentionMaps(student, images) - target).pow(2).sum(1).mean().item<float>();
        double aloneDistance = Distance(alone), attentionDistance = Distance(attention), hintDistance = Distance(hints);
        TestContext.WriteLine($"teacher {Accuracy(teacher.Model):P2}; student alone {Accuracy(alone.Model):P2}, attention transfer {Accuracy(attention.Model):P2}, " +
            $"hints {Accuracy(hints.Model):P2}; squared distance of attention maps to the teacher's: alone {aloneDistance:F4}, attention {attentionDistance:F4}, hints {hintDistance:F4}");
        Assert.IsLessThan(0.5 * aloneDistance, attentionDistance, "the attention term pulls the student's maps to the teacher's");
        Assert.IsLessThan(aloneDistance, hintDistance, "regressing the teacher's maps brings their spatial pattern too");
        // Both still learn the task; whether they beat the student alone is measured, not asserted: on this slice they did not
        // (the closing note of issue 19 gives the figures).
        Assert.IsGreaterThanOrEqualTo(Accuracy(alone.Model) - 0.10, Accuracy(hints.Model));
        Assert.IsGreaterThanOrEqualTo(Accuracy(alone.Model) - 0.10, Accuracy(attention.Model));
    }

    [TestMethod]
    public void FeatureDistillationNeedsTheTeachersNetworkAndTheSameImages()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Keyed(ml, TestData.Train(ml, 200));
        var teacher = ml.Transforms.DeepVariants.CnnClassifier(new CnnClassifierOptions
        {
            ImageHeight = 28, ImageWidth = 28, Epochs = 1, Device = TorchDeviceKind.Cpu,
            Architecture = new CnnArchitecture { Family = CnnFamily.LeNet, Width = 4, HiddenSize = 8 },
        }).Train(data);
        var withFeatures = new DistillationOptions { Student = Student(), FeatureLoss = FeatureLoss.Attention };
        var error = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.Distill(teacher.Model, withFeatures).Fit(data));
        StringAssert.Contains(error.Message, "FeatureLoss = Attention needs the teacher's network");
        var weight = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.DeepVariants.Distill(teacher,
            new DistillationOptions { Student = Student(), FeatureLoss = FeatureLoss.Hint, FeatureWeight = -1 }).Fit(data));
        Assert.AreEqual(nameof(DistillationOptions.FeatureWeight), weight.ParamName);
        var alone = Assert.Throws<ArgumentException>(() => ml.Transforms.DeepVariants.Distill(teacher,
            new DistillationOptions { Student = Student(), FeatureWeight = 2 }).Fit(data));
        StringAssert.Contains(alone.Message, "FeatureWeight applies only with a FeatureLoss");
    }
}

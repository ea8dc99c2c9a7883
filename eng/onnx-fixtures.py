#!/usr/bin/env python3
"""Writes the ONNX graphs the importer tests read, as PyTorch's own exporter writes them.

The torchvision families (ResNet-18/34/50, ResNeXt-50, Wide ResNet-50, VGG-11 with batch norm, DenseNet-121,
GoogLeNet, Inception v3, MobileNet V2, EfficientNet-B0, SqueezeNet 1.1) with random weights (fixed seed; random
batch-norm statistics too, so normalisation is really tested), 10 classes, a dynamic batch axis, at opsets 13 and 17;
and a small model that uses the operators the families do not (Pad, Transpose, Erf, LayerNormalization, Resize,
HardSigmoid, HardSwish, ReduceMean, shape arithmetic, Gemm with transposes). Each graph comes with PyTorch's output on
a fixed input at its export size and, where the graph allows, at a smaller one.

Debian's python3-torch 1.13 and python3-torchvision 0.14 (apt) are all it needs; nothing is downloaded.
    python3 eng/onnx-fixtures.py --out artifacts/onnx-fixtures            # test graphs (small inputs)
    python3 eng/onnx-fixtures.py --out artifacts/onnx-full --full         # 224x224 inputs, for the benchmark
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from torchvision import models


class OperatorZoo(torch.nn.Module):
    """Operators that the torchvision families above do not use, in one small network."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = torch.nn.Conv2d(8, 8, 1, groups=2)
        self.norm = torch.nn.LayerNorm(8)
        self.weight = torch.nn.Parameter(torch.randn(16, 8) * 0.3)
        self.bias = torch.nn.Parameter(torch.randn(16) * 0.1)
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu6(self.conv(x))                                   # Clip
        x = F.pad(x, (1, 2, 0, 1))                                  # Pad, asymmetric
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)                   # MaxPool, ceil_mode
        x = F.hardswish(self.depthwise(x))                          # HardSwish (opset 14+) or its decomposition
        x = F.hardsigmoid(self.grouped(x)) * x                      # HardSigmoid, grouped Conv
        x = F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)
        x = x * torch.sigmoid(x)                                    # SiLU
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")     # Resize, nearest
        x = F.interpolate(up, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)  # Resize, bilinear
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w).transpose(1, 2)                  # Shape/Gather/Unsqueeze/Concat, Transpose
        x = self.norm(x)                                            # LayerNormalization (opset 17) or its decomposition
        x = F.gelu(x)                                               # Erf
        x = x[:, 1:, :].mean(dim=1)                                 # Slice, ReduceMean
        x = torch.matmul(x, self.weight.t()) + self.bias            # MatMul / Gemm with a transpose
        return torch.softmax(self.head(x), dim=1)                   # Softmax


def vgg11_bn():
    net = models.vgg11_bn(num_classes=10)
    # The 4096-wide classifier (120 million weights) only repeats Gemm; a narrow one keeps the graph small.
    net.classifier = torch.nn.Sequential(torch.nn.Linear(512 * 7 * 7, 64), torch.nn.ReLU(True), torch.nn.Dropout(),
                                         torch.nn.Linear(64, 64), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(64, 10))
    return net


# name -> (constructor, export size, smaller size or None, export size for --full)
FAMILIES = {
    "resnet18": (lambda: models.resnet18(num_classes=10), 64, 48, 224),
    "resnet34": (lambda: models.resnet34(num_classes=10), 64, 48, 224),
    "resnet50": (lambda: models.resnet50(num_classes=10), 64, 48, 224),
    "resnext50_32x4d": (lambda: models.resnext50_32x4d(num_classes=10), 64, 48, 224),
    "wide_resnet50_2": (lambda: models.wide_resnet50_2(num_classes=10), 64, 48, 224),
    # VGG's adaptive pooling to 7x7 is exported as a pooling for the export size only.
    "vgg11_bn": (vgg11_bn, 224, None, 224),
    "densenet121": (lambda: models.densenet121(num_classes=10), 64, 48, 224),
    "googlenet": (lambda: models.googlenet(num_classes=10, aux_logits=False, init_weights=True, transform_input=False), 64, 48, 224),
    "inception_v3": (lambda: models.inception_v3(num_classes=10, aux_logits=False, init_weights=True, transform_input=False), 96, 80, 299),
    "mobilenet_v2": (lambda: models.mobilenet_v2(num_classes=10), 64, 48, 224),
    "efficientnet_b0": (lambda: models.efficientnet_b0(num_classes=10), 64, 48, 224),
    "squeezenet1_1": (lambda: models.squeezenet1_1(num_classes=10), 64, 48, 224),
    "operators": (OperatorZoo, 32, 24, 32),
}


def randomize(net):
    # Random batch-norm statistics and affine terms: with the defaults (mean 0, variance 1) normalisation would be the identity.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return net


def save(tensor, path):
    tensor.detach().contiguous().numpy().astype("<f4").tofile(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--full", action="store_true", help="export at the families' own input sizes, for the benchmark")
    parser.add_argument("--opsets", default="13,17")
    parser.add_argument("--only", default="", help="comma-separated family names")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    manifest = []
    only = [n for n in args.only.split(",") if n]
    for name, (make, size, smaller, full_size) in FAMILIES.items():
        if only and name not in only:
            continue
        if args.full:
            size, smaller = full_size, None
        torch.manual_seed(0)
        net = randomize(make()).eval()
        sizes = [s for s in (size, smaller) if s]
        references = []
        for s in sizes:
            torch.manual_seed(1)
            x = torch.rand(2, 3, s, s) * 2 - 1
            with torch.no_grad():
                y = net(x)
            stem = f"{name}-{s}"
            save(x, os.path.join(args.out, stem + ".input.bin"))
            save(y, os.path.join(args.out, stem + ".output.bin"))
            references.append({"size": s, "input": stem + ".input.bin", "output": stem + ".output.bin", "outputShape": list(y.shape)})
        for opset in [int(o) for o in args.opsets.split(",")]:
            file = f"{name}-opset{opset}.onnx"
            torch.manual_seed(1)
            example = torch.rand(1, 3, size, size)
            torch.onnx.export(net, example, os.path.join(args.out, file + ".tmp"), opset_version=opset,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, do_constant_folding=True)
            os.replace(os.path.join(args.out, file + ".tmp"), os.path.join(args.out, file))
            parameters = sum(p.numel() for p in net.parameters())
            manifest.append({"family": name, "opset": opset, "file": file, "size": size, "smaller": smaller,
                             "parameters": parameters, "references": references})
            print(f"{file}: {parameters:,} parameters, exported at {size}x{size}", flush=True)
    with open(os.path.join(args.out, "manifest.json.tmp"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "graphs": manifest}, f, indent=1)
    os.replace(os.path.join(args.out, "manifest.json.tmp"), os.path.join(args.out, "manifest.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

import torch
from torch import nn

from qdistill.quant import calibrate, convert, count_parameters, model_size, quantize


def test_float_model_size_counts_parameters_and_bn_statistics():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Linear(4, 2))
    size = model_size(model)
    # conv 36 + bn (4 weight + 4 bias + 4 mean + 4 var) + linear 8 + 2
    assert size.values == 36 + 16 + 10
    assert size.total_bytes == 4 * size.values
    assert count_parameters(model) == 36 + 8 + 10


def test_quantized_size_by_hand():
    model = nn.Sequential(nn.Linear(100, 10), nn.ReLU(), nn.Linear(10, 2))
    prepared = quantize(model, "w4a8")
    calibrate(prepared, [torch.randn(8, 100)])
    size = model_size(prepared)
    # layer 0: 1000 weights x 4 bit = 500 B, 10 bias x 4 B, 10 weight scales x 4 B,
    #          input scale + zero point (asymmetric) 8 B
    assert size.layers[0].bytes == 500 + 40 + 40 + 8
    # layer 1: 20 weights x 4 bit = 10 B, bias 8 B, 2 scales 8 B, input 8 B
    assert size.layers[1].bytes == 10 + 8 + 8 + 8
    assert size.total_bytes == model_size(convert(prepared)).total_bytes
    assert size.compression > 5
    assert count_parameters(prepared) == count_parameters(model)

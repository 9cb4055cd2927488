"""Chapter parameters are validated before any work, with one clear message each."""
import pytest
import torch

from recos_utils.core.params import Choice, Float, Int, ParameterError, validate

GOOD = dict(QUICK=True, DEVICE="cpu", SEED=0, DATA_DIR=None, RESULTS_DIR=None, EPOCHS=3,
            DATASET="mnist", Z=0.5)
SPECS = dict(EPOCHS=Int(min=1), DATASET=Choice("mnist", "fashion-mnist"), Z=Float(min=0, max=0.9))


def test_valid_parameters_pass_and_are_read_only():
    import math
    P = validate({**GOOD, "math": math, "F": torch.nn.functional, "_x": 1}, **SPECS)
    assert P.EPOCHS == 3 and P.DATASET == "mnist" and P.device == torch.device("cpu")
    with pytest.raises(AttributeError, match="read-only"):
        P.EPOCHS = 5


@pytest.mark.parametrize("name,value,match", [
    ("QUICK", "yes", "QUICK='yes'.*True or False"),
    ("QUICK", 1, "QUICK=1.*True or False"),
    ("EPOCHS", 0, "EPOCHS=0.*an integer >= 1"),
    ("EPOCHS", 2.5, "EPOCHS=2.5.*integer"),
    ("EPOCHS", True, "EPOCHS=True.*integer"),
    ("SEED", -1, "SEED=-1.*>= 0"),
    ("DATASET", "cifar10", "DATASET='cifar10'.*'mnist', 'fashion-mnist'"),
    ("DEVICE", "tpu", "DEVICE='tpu'.*'auto', 'cpu', 'cuda'"),
    ("Z", 0.95, "Z=0.95.*<= 0.9"),
    ("DATA_DIR", "", "DATA_DIR=''.*folder path"),
    ("RESULTS_DIR", 3, "RESULTS_DIR=3.*folder path"),
])
def test_bad_values_name_the_parameter_value_and_what_is_allowed(name, value, match):
    with pytest.raises(ParameterError, match=match):
        validate({**GOOD, name: value}, **SPECS)


def test_unknown_and_missing_parameters():
    with pytest.raises(ParameterError, match="unknown parameter EPOCS=3.*EPOCHS"):
        validate({**GOOD, "EPOCS": 3}, **SPECS)
    missing = dict(GOOD)
    del missing["SEED"]
    with pytest.raises(ParameterError, match="SEED is missing"):
        validate(missing, **SPECS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_says_so_plainly():
    with pytest.raises(ParameterError, match="DEVICE='cuda'.*no CUDA GPU.*DEVICE='cpu'"):
        validate({**GOOD, "DEVICE": "cuda"}, **SPECS)

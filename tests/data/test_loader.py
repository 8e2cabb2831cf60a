"""load_dataset builds every data set, and each matches the scenario layer's table of shapes (DATA_SHAPES),
which the scenario's rules read without loading anything."""
import pytest
import torch

from ibtui.data.loader import load_dataset
from ibtui.scenario import DATA_SHAPES, parse_scenario


@pytest.mark.parametrize("name", ["szt", "saturation", "boolean4"])
def test_small_sets_match_the_shape_table(name):
    sc = parse_scenario(f'[data]\ndataset = "{name}"\n')
    d = load_dataset(sc, [0, 1], torch.device("cpu"))
    shape, n_classes = DATA_SHAPES[name]
    assert tuple(d.x.shape[1:]) == shape and d.n_classes == n_classes
    assert d.train.shape == d.test.shape == (2, d.x.shape[0])


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_image_sets_match_the_shape_table(name, shared_data):
    sc = parse_scenario(f'[data]\ndataset = "{name}"\ndir = "{shared_data}"\n[measure]\nestimators = []\n')
    d = load_dataset(sc, [0], torch.device("cpu"))
    shape, n_classes = DATA_SHAPES[name]
    assert tuple(d.x.shape[1:]) == shape and d.n_classes == n_classes

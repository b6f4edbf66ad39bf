"Two CPU processes through fastai's `distrib_ctx` (gloo): one model trained together, the loss falls"
import json, os, subprocess, sys
import numpy as np, pytest
from imgcourse.distrib import launch, main

ARGS = ('--images', 512, 128, '--epochs', 2)

@pytest.fixture(scope='module')
def runs():
    return launch(1, *ARGS, '--bs', 64), launch(2, *ARGS, '--bs', 32)

def test_two_processes_train_one_model(runs):
    one, two = runs
    assert one['world_size'] == 1
    assert (two['world_size'], two['backend']) == (2, 'gloo')
    assert len(two['checksums']) == 2 and two['checksums'][0] == two['checksums'][1]  # DDP kept the copies equal
    assert two['out_shape'][1:] == one['out_shape'][1:] == [10]
    assert len(two['losses']) == len(one['losses'])  # same total batch, same number of steps
    assert one['images'] == two['images'] == [512, 128]  # the summary says how much data was used

def test_loss_falls(runs):
    for s in runs:
        k = len(s['losses']) // 3
        assert np.mean(s['losses'][-k:]) < np.mean(s['losses'][:k])

def test_bad_arguments_are_named(capsys):
    with pytest.raises(SystemExit): main(['--epochs', '0'])
    assert '--epochs' in capsys.readouterr().err

def test_failed_launch_says_why():
    with pytest.raises(RuntimeError, match='failed'): launch(2, '--bs', '0')

def test_without_accelerate_it_says_what_to_install(monkeypatch, capsys):
    "fastai's distrib_ctx needs `accelerate`; missing, the command and the function say so before any work (fastai itself fails with a NameError)"
    import importlib.util
    import imgcourse.distrib as D
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'accelerate' else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match='pip install accelerate'): D.train_distrib((64, 32), 1)
    with pytest.raises(SystemExit, match='pip install accelerate'): D.main(['--images', '64', '32', '--epochs', '1'])

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

def test_without_accelerate_it_says_what_to_install(tmp_path):
    "With `accelerate` missing, fastai.distributed cannot even be imported (NameError); the module still imports, and the command says what to install"
    block = ("import sys, importlib.abc\n"
             "class NoAccelerate(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name == 'accelerate' or name.startswith('accelerate.'): raise ModuleNotFoundError(f'No module named {name!r}')\n"
             "sys.meta_path.insert(0, NoAccelerate())\n")
    code = block + ("import imgcourse.distrib as D\n"
                    "try: D.train_distrib((64, 32), 1)\n"
                    "except ModuleNotFoundError as e: print('function:', e)\n"
                    "D.main(['--images', '64', '32', '--epochs', '1'])\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode != 0 and 'NameError' not in r.stderr, r.stderr[-2000:]
    assert 'function:' in r.stdout and 'pip install accelerate' in r.stdout, r.stdout
    assert 'python -m imgcourse.distrib: ' in r.stderr and 'pip install accelerate' in r.stderr, r.stderr[-2000:]

"Two CPU processes through fastai's `distrib_ctx` (gloo): one model trained together, the loss falls"
import json, os, re, subprocess, sys, time
import numpy as np, pytest
from pathlib import Path
from imgcourse.distrib import launch, main, mnist_dls

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

def test_in_memory_data_needs_no_worker_processes():
    "Workers forked beside the process group's threads can hang in `fork`: the in-memory tensors are loaded without them"
    dls = mnist_dls((64, 32), bs=16)
    assert dls.train.fake_l.num_workers == 0 and dls.valid.fake_l.num_workers == 0  # (fastai counts the main process as 1 in `num_workers`)

def _running_with(text:str) -> list:
    "Pids of live processes whose command line holds `text`"
    out = []
    for d in Path('/proc').iterdir():
        try:
            if d.name.isdigit() and text in (d/'cmdline').read_bytes().decode(errors='replace'): out.append(int(d.name))
        except OSError: pass
    return out

@pytest.mark.skipif(not Path('/proc').is_dir(), reason='reads the process table from /proc')
def test_a_launch_past_its_timeout_stops_every_process():
    "On timeout `launch` stops torchrun and the training processes it started, instead of leaving them running"
    with pytest.raises(RuntimeError, match='did not finish in 20 s') as e:
        launch(2, '--images', 4096, 1024, '--epochs', 50, timeout=20)
    out = re.search(r'--out (\S+summary\.json)', str(e.value)).group(1)
    time.sleep(1)
    assert _running_with(out) == []

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

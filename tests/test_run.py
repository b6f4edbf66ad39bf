"Tests of `imgcourse.run`: the lesson runner never loses work, and says truthfully where it is."
import os, signal, subprocess, sys, time
from pathlib import Path
import nbformat, pytest
from nbformat.v4 import new_notebook, new_code_cell
import imgcourse.run as R
from imgcourse.run import *

def _nb(d:Path, *cells, name='probe.ipynb') -> Path:
    d.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), d/name)
    return d/name

CLI = str(Path(sys.executable).parent/'imgcourse-lesson')  # the installed command

def _cli(*args, timeout=180, **kw):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)

def test_help_prints_no_warning():
    r = _cli('--help', env={**os.environ, 'PYTHONWARNINGS': 'default'})
    assert r.returncode == 0 and 'usage' in r.stdout
    assert 'Warning' not in r.stderr and 'deprecated' not in r.stderr, r.stderr

@pytest.mark.parametrize('name', ['', '  '])
def test_an_empty_lesson_name_is_an_error(tmp_path, name, monkeypatch):
    ran = []; monkeypatch.setattr(R, 'run_notebook', lambda *a, **k: ran.append(a))
    with pytest.raises(SystemExit) as e: lesson(name, out=str(tmp_path/'o'))
    assert e.value.code != 0 and not ran
    r = _cli(name, '--out', str(tmp_path/'o'))
    assert r.returncode != 0 and not (tmp_path/'o').exists()

def test_unwritable_out_fails_before_running(tmp_path, monkeypatch):
    f = tmp_path/'a-file'; f.write_text('x')
    ran = []; monkeypatch.setattr(R, 'run_notebook', lambda *a, **k: ran.append(a))
    for out in (f, f/'sub'):
        with pytest.raises(SystemExit) as e: lesson('90_run', out=str(out))
        assert 'cannot write' in str(e.value.code) and str(out) in str(e.value.code)
    (tmp_path/'o'/'90_run.ipynb').mkdir(parents=True)  # the destination is a folder
    with pytest.raises(SystemExit, match='cannot write'): lesson('90_run', out=str(tmp_path/'o'))
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o500)
        with pytest.raises(SystemExit, match='cannot write'): lesson('90_run', out=str(ro))
    assert not ran, 'nothing runs when the result could not be kept'
    src = _nb(tmp_path/'nb', 'x = 1')
    with pytest.raises(OSError, match='cannot write'): run_notebook(src, f/'out.ipynb')

def test_written_whole_or_not_at_all(tmp_path, monkeypatch, caplog):
    import logging, fastcore.nbio
    src = _nb(tmp_path/'nb', 'print("hello")')
    dest = tmp_path/'out'/'probe.ipynb'; dest.parent.mkdir(); dest.write_text('the previous run')
    def _half(nb, path): Path(path).write_text('{"cells": ['); raise OSError(28, 'No space left on device')
    monkeypatch.setattr(fastcore.nbio, 'write_nb', _half)
    with caplog.at_level(logging.INFO, logger='imgcourse'), pytest.raises(OSError, match='could not be saved'): run_notebook(src, dest)
    assert dest.read_text() == 'the previous run' and [f.name for f in dest.parent.iterdir()] == ['probe.ipynb']
    assert 'No space left' in caplog.text
    monkeypatch.undo()
    assert run_notebook(src, dest) == dest and 'hello' in dest.read_text()

def test_a_failing_cell_keeps_the_notebook_and_a_failed_save_is_not_claimed(tmp_path, monkeypatch, caplog):
    import logging
    src = _nb(tmp_path/'nb', 'print("first")', '1/0', 'print("never")')
    with caplog.at_level(logging.INFO, logger='imgcourse'), pytest.raises(ZeroDivisionError): run_notebook(src, tmp_path/'o.ipynb')
    nb = nbformat.read(tmp_path/'o.ipynb', 4)
    assert nb.cells[0].outputs[0]['text'] == 'first\n' and not nb.cells[2].outputs
    assert f'is in {tmp_path/"o.ipynb"}' in caplog.text
    caplog.clear(); monkeypatch.setattr(R, '_save', lambda nb, dest: False)
    with caplog.at_level(logging.INFO, logger='imgcourse'), pytest.raises(ZeroDivisionError): run_notebook(src, tmp_path/'p.ipynb')
    assert 'could not be saved' in caplog.text and 'is in' not in caplog.text and not (tmp_path/'p.ipynb').exists()

def test_a_stopped_run_shows_none_of_the_source_files_old_outputs(tmp_path):
    src = _nb(tmp_path/'nb', 'print("first")', '1/0', 'print("never")')
    nb = nbformat.read(src, 4)  # the source carries outputs of an earlier run, as committed lessons do
    nb.cells[2].outputs = [nbformat.v4.new_output('stream', name='stdout', text='an old run\n')]; nb.cells[2].execution_count = 7
    nbformat.write(nb, src)
    with pytest.raises(ZeroDivisionError): run_notebook(src, tmp_path/'o.ipynb')
    out = nbformat.read(tmp_path/'o.ipynb', 4)
    assert out.cells[0].outputs[0]['text'] == 'first\n'
    assert not out.cells[2].outputs and out.cells[2].execution_count is None, 'below the stop, nothing from another run'

@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_saves_the_partial_notebook(tmp_path, sig):
    marker = tmp_path/'second-cell-started'
    src = _nb(tmp_path/'nb', 'print("first")', f'open({str(marker)!r}, "w").close()\nimport time\ntime.sleep(120)', 'print("never")')
    p = subprocess.Popen([CLI, str(src), '--out', str(tmp_path/'out')], stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.2)
    assert marker.exists(), p.communicate()[1]
    p.send_signal(sig)
    err = p.communicate(timeout=60)[1]
    dest = tmp_path/'out'/'probe.ipynb'
    assert p.returncode != 0 and dest.exists(), err
    assert f'is in {dest}' in err
    nb = nbformat.read(dest, 4)
    assert nb.cells[0].outputs[0]['text'] == 'first\n' and not nb.cells[2].outputs
    assert not [f for f in dest.parent.iterdir() if f.name != 'probe.ipynb'], 'no temporary files left'

@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_stops_its_running_cell_and_exits_cleanly(tmp_path, sig):
    "The cell that was running is interrupted too (its `finally` runs, nothing after it), and the process exits with 130, not a C++ abort"
    marker, cleaned, after = tmp_path/'started', tmp_path/'cleaned-up', tmp_path/'ran-on'
    src = _nb(tmp_path/'nb', 'print("first")',
              f'import time, torch\nopen({str(marker)!r}, "w").close()\nx = torch.randn(200, 200)\n'
              f'try:\n    t = time.time()\n    while time.time() - t < 120: y = (x @ x).relu().sum()\n'
              f'finally:\n    open({str(cleaned)!r}, "w").close()\nopen({str(after)!r}, "w").close()', 'print("never")')
    p = subprocess.Popen([CLI, str(src), '--out', str(tmp_path/'out')], stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.2)
    assert marker.exists(), p.communicate()[1]
    time.sleep(1); p.send_signal(sig)
    try: err = p.communicate(timeout=60)[1]
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == 130, (p.returncode, err)
    assert 'terminate called' not in err and 'Exception in thread' not in err, err
    assert cleaned.exists() and not after.exists()  # the cell was stopped where it was, and cleaned up after itself
    assert nbformat.read(tmp_path/'out'/'probe.ipynb', 4).cells[0].outputs[0]['text'] == 'first\n'

def test_an_interrupted_run_in_process_gives_stderr_back(tmp_path):
    "Ctrl-C in a process that called `run_notebook` itself (Jupyter, a script): once the cell is stopped, `sys.stderr` is the caller's again"
    import threading, signal as S
    marker, after = tmp_path/'started', tmp_path/'ran-on'
    src = _nb(tmp_path/'nb', 'print("first")', f'import time\nopen({str(marker)!r}, "w").close()\nt = time.time()\n'
              f'while time.time() - t < 60: pass\nopen({str(after)!r}, "w").close()', 'print("never")')
    def poke():
        t0 = time.time()
        while not marker.exists() and time.time() - t0 < 60: time.sleep(0.05)
        time.sleep(0.5); os.kill(os.getpid(), S.SIGINT)
    before = sys.stderr
    threading.Thread(target=poke, daemon=True).start()
    with pytest.raises(KeyboardInterrupt): run_notebook(src, tmp_path/'o.ipynb')
    assert sys.stderr is before and not after.exists()
    assert nbformat.read(tmp_path/'o.ipynb', 4).cells[0].outputs[0]['text'] == 'first\n'

def test_a_killed_run_keeps_the_cells_saved_as_it_went(tmp_path):
    marker = tmp_path/'third-cell-started'
    src = _nb(tmp_path/'nb', 'import time; time.sleep(1); print("first")', 'print("second")', f'open({str(marker)!r}, "w").close()\nimport time\ntime.sleep(120)')
    dest = tmp_path/'out'/'probe.ipynb'
    code = f'from imgcourse.run import run_notebook; run_notebook({str(src)!r}, {str(dest)!r})'  # the default: saved before each next cell
    p = subprocess.Popen([sys.executable, '-c', code], stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.2)
    assert marker.exists(), p.communicate()[1]
    p.kill(); p.communicate(timeout=60)  # SIGKILL: nothing can run on the way out
    nb = nbformat.read(dest, 4)
    assert [c.outputs[0]['text'] for c in nb.cells[:2]] == ['first\n', 'second\n'] and not nb.cells[2].outputs
    assert not [f for f in dest.parent.iterdir() if f.name != 'probe.ipynb'], 'no temporary files left'

def test_saving_as_the_run_goes_can_be_spaced_or_off_and_a_failed_save_does_not_stop_the_run(tmp_path, monkeypatch, caplog):
    import logging
    src = _nb(tmp_path/'nb', 'print(1)', 'print(2)', 'print(3)')
    saves = []; real = R._save
    monkeypatch.setattr(R, '_save', lambda nb, dest: saves.append(1) or real(nb, dest))
    run_notebook(src, tmp_path/'a.ipynb'); assert len(saves) == 3            # before cells 2 and 3, and at the end
    saves.clear(); run_notebook(src, tmp_path/'b.ipynb', save_every=None); assert len(saves) == 1   # only at the end
    saves.clear(); run_notebook(src, tmp_path/'c.ipynb', save_every=3600); assert len(saves) == 2  # the first chance, then the end
    fails = []
    monkeypatch.setattr(R, '_save', lambda nb, dest: fails.append(1) or (len(fails) > 1 and real(nb, dest)))
    with caplog.at_level(logging.WARNING, logger='imgcourse'): out = run_notebook(src, tmp_path/'d.ipynb')
    assert len(fails) == 2 and '3' in out.read_text()  # one failed save stops the saving as it goes, not the run

def test_executed_notebooks_have_no_console_progress_bars(tmp_path):
    src = _nb(tmp_path/'nb', 'from fastprogress.fastprogress import progress_bar\nfor i in progress_bar(range(5)): pass\nprint("done")',
              'from fastai.vision.all import *\nfrom imgcourse.data import get_mnist\n'
              'dls = ImageDataLoaders.from_folder(get_mnist(online=False), train="training", valid="testing", bs=64, num_workers=0)\n'
              'learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3*28*28, 10)), metrics=accuracy)\n'
              'learn.fit(1, 1e-3) if False else learn.validate()')
    nb = nbformat.read(run_notebook(src, tmp_path/'o.ipynb'), 4)
    text = ''.join(o.get('text', '') for c in nb.cells for o in c.outputs if o['output_type'] == 'stream')
    assert 'done' in text and '\r' not in text and '█' not in text, repr(text)

def test_find_notebook_accepts_a_path(tmp_path):
    src = _nb(tmp_path/'nb', 'x = 1', name='mine.ipynb')
    assert find_notebook(str(src)) == src
    assert find_notebook('nbs/90_run.ipynb').name == '90_run.ipynb'

@pytest.mark.parametrize('name', ['00_data', '80_train', '81_metrics', '90_run'])
def test_kit_notebooks_run_in_cpu_mode(tmp_path, name, monkeypatch):
    "CPU mode is the default without a GPU, and `nbdev-test` only runs quick mode: each kit notebook must also run top to bottom in it"
    monkeypatch.setenv('IMGCOURSE_CACHE', str(tmp_path/'cache'))
    out = run_notebook(find_notebook(name), tmp_path/f'{name}.ipynb', mode='cpu')
    nb = nbformat.read(out, 4)
    assert not [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs if o['output_type'] == 'error']

def test_run_record_names_the_data_and_the_missing_weights():
    "The first cell's run record lists each data source once, then the networks that started from random weights"
    import importlib.util
    spec = importlib.util.spec_from_file_location('run_lessons', Path(__file__).parents[1]/'scripts'/'run_lessons.py')
    rl = importlib.util.module_from_spec(spec); spec.loader.exec_module(rl)
    out = lambda t: {'output_type': 'stream', 'name': 'stderr', 'text': t}
    nb = {'cells': [{'cell_type': 'code', 'outputs': [out(
        'imgcourse: photos: offline, 47 tiles from ../data/photos (the lesson uses Pets)\n'
        'imgcourse: resnet34: ImageNet weights are not in ~/.cache/torch/hub/checkpoints and could not be downloaded (x). USING RANDOM\n')]},
        {'cell_type': 'code', 'outputs': [out(
        'imgcourse: held-out photos: 10 from ../data/sr_photos, split from its 33 training photos by source photo\n'
        'imgcourse: photos: offline, 47 tiles from ../data/photos (the lesson uses Pets)\n'
        'imgcourse: alexnet: ImageNet weights are not in ~/.cache/torch/hub/checkpoints and could not be downloaded (x).\n'
        'imgcourse: resnet34: ImageNet weights are not in ~/.cache/torch/hub/checkpoints and could not be downloaded (x).\n')]}]}
    assert rl.data_lines(nb) == ['photos: offline, 47 tiles from ../data/photos',
                                 'held-out photos: 10 from ../data/sr_photos, split from its 33 training photos by source photo',
                                 'ImageNet weights could not be had for resnet34, alexnet: randomly initialised']
    nb['cells'][0]['outputs'] = nb['cells'][1]['outputs'] = []
    assert rl.data_lines(nb) == []

def test_lesson_mode_comes_from_the_flag_then_the_variable(tmp_path, monkeypatch):
    "`imgcourse-lesson NAME` runs in IMGCOURSE_MODE's mode when it is set (quick when nothing is), --mode wins, a junk value is refused"
    ran = []; monkeypatch.setattr(R, 'run_notebook', lambda src, dest, mode, verbose: ran.append(mode))
    for v in ('IMGCOURSE_MODE', 'IMGCOURSE_QUICK'): monkeypatch.delenv(v, raising=False)
    lesson('90_run', out=str(tmp_path))
    monkeypatch.setenv('IMGCOURSE_MODE', 'cpu'); lesson('90_run', out=str(tmp_path))
    lesson('90_run', mode='quick', out=str(tmp_path))
    assert ran == ['quick', 'cpu', 'quick']
    monkeypatch.delenv('IMGCOURSE_MODE'); monkeypatch.setenv('IMGCOURSE_QUICK', '0')  # the older switch: 0 means full
    lesson('90_run', out=str(tmp_path))
    monkeypatch.setenv('IMGCOURSE_MODE', 'banana')
    with pytest.raises(SystemExit, match="IMGCOURSE_MODE='banana' is not a mode"): lesson('90_run', out=str(tmp_path))
    assert ran == ['quick', 'cpu', 'quick', 'full']

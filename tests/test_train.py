"The training kit's speed switches: a compiled Learner trains like an eager one, and every switch undoes."
import logging, types, re
import numpy as np
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from pathlib import Path
from fastai.vision.all import Learner, CrossEntropyLossFlat, set_seed, Callback, CancelFitException
from imgcourse.train import *
from imgcourse.data import get_mnist

def tiny_dls(n=256, bs=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 12, 12), dtype=torch.uint8, generator=g)
    y = (x.float().mean((1, 2, 3)) > 127.5).long()  # a learnable label: bright or dark
    return fast_dls(x[:192], y[:192], x[192:], y[192:], bs=bs, device='cpu')

def tiny_model():
    return nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 3, 2, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())

def train(learn, epochs=4):
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, 1e-2)
    return learn

@pytest.mark.parametrize('backend', ['eager', pytest.param('inductor', marks=pytest.mark.slow)])  # inductor: minutes of C++ compilation
def test_compiled_learner_trains(backend):
    "Compiled training (dynamo + `backend`) gives predictions of the same shape, a falling loss, metrics, and is undone by `to_eager`"
    if backend == 'inductor' and not has_compiler(): pytest.skip('no C++ compiler')
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32').to_compiled(backend=backend)
    assert hasattr(learn, 'compiled_train')
    train(learn)
    losses = [float(o) for o in learn.recorder.losses]
    assert losses[-1] < losses[0], losses
    assert len(learn.recorder.values) == 4 and len(learn.recorder.values[-1]) == 3  # train loss, valid loss, accuracy
    preds, targs = learn.get_preds()
    assert preds.shape == (64, 2)
    assert learn.model._compiled_call_impl is None  # eager outside training
    learn.to_eager()
    assert not hasattr(learn, 'compiled_train')
    assert learn.model(torch.zeros(3, 1, 12, 12)).shape == (3, 2)

def test_compiled_matches_eager():
    "One compiled epoch ends at (nearly) the same weights as one eager epoch from the same start"
    res = []
    for comp in (False, True):
        set_seed(0); torch.manual_seed(0)
        dls = tiny_dls(); learn = fast_learner(dls, tiny_model(), precision='fp32')
        if comp: learn.to_compiled(backend='eager')
        dls.train.shuffle = False
        res.append(train(learn, 1).model[0].weight.detach().clone())
    torch.testing.assert_close(res[0], res[1], rtol=1e-4, atol=1e-5)

def test_compiling_on_a_cpu_asks_inductor_for_its_cpp_wrapper():
    "About 5% more steps/s for lesson 01's ResNet (bench/bench_compile_options.py); left alone when the caller chose a mode or options"
    assert compile_options('cpu') == dict(options={'cpp_wrapper': True})
    assert compile_options('cpu', backend='eager') == dict(backend='eager')
    assert compile_options('cpu', mode='max-autotune') == dict(mode='max-autotune')
    assert compile_options('cpu', options={'max_autotune': True}) == dict(options={'max_autotune': True})
    assert compile_options('cuda', dynamic=False) == dict(dynamic=False)
    if has_compiler():
        learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32').to_compiled()
        assert learn.compiled_train.kwargs == dict(dynamic=False, options={'cpp_wrapper': True})

def test_a_model_that_cannot_be_compiled_trains_eagerly_and_says_so(caplog):
    "torch 2.14 cannot compile fastai's DynamicUnet (RecursionError): the fit goes on eagerly, with a warning, instead of crashing"
    def broken(gm, example_inputs): raise RecursionError('maximum recursion depth exceeded')
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32').to_compiled(backend=broken)
    with caplog.at_level(logging.WARNING, logger='imgcourse'): train(learn)
    losses = [float(o) for o in learn.recorder.losses]
    assert losses[-1] < losses[0] and len(learn.recorder.values) == 4
    assert caplog.text.count('could not compile this model') == 1 and 'RecursionError' in caplog.text and 'stays eager' in caplog.text

def test_compiled_train_falls_back_only_when_eager_works_and_only_before_a_compiled_call_has(caplog):
    import pickle
    m = tiny_model(); x = torch.randn(2, 1, 12, 12)
    def fails(*a, **k): raise RuntimeError('inductor: something deep inside')
    def cb_with(fn, worked=False):
        cb = CompiledTrain(); cb.fn, cb.fn_model, cb.worked, cb.failed = fn, m, worked, False
        return cb
    cb = cb_with(fails, worked=True)  # compiled and ran before: a later error is raised as it is
    with pytest.raises(RuntimeError, match='deep inside'): cb._call(x)
    assert not cb.failed
    cb = cb_with(fails)
    with pytest.raises(RuntimeError) as e: cb._call(torch.randn(2, 3, 12, 12))  # wrong channels: the data's own error, from the eager model
    assert 'channels' in str(e.value) and e.value.__context__ is None and not cb.failed   # not chained to the compiler's, compiling stays on
    with caplog.at_level(logging.WARNING, logger='imgcourse'): out = cb._call(x)
    torch.testing.assert_close(out, m(x)); assert cb.failed and 'deep inside' in caplog.text
    cb.fn = torch.compile(m._call_impl, backend='eager')
    assert pickle.loads(pickle.dumps(cb)).fn is None  # `learn.export()` can pickle it: compiled again when trained

def test_no_compiler_falls_back_loudly(monkeypatch, caplog):
    monkeypatch.setenv('PATH', '')
    monkeypatch.delenv('CXX', raising=False)
    assert not has_compiler()
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32')
    with caplog.at_level(logging.WARNING, logger='imgcourse'):
        learn.to_compiled()
    assert not hasattr(learn, 'compiled_train')
    assert 'C++ compiler' in caplog.text

def test_fast_path_says_what_it_chose(caplog):
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32')
    with caplog.at_level(logging.INFO, logger='imgcourse'):
        fast_path(learn, compile=False, channels_last=True, bf16=True)
    assert 'channels_last' in caplog.text and 'bf16' in caplog.text and 'eager' in caplog.text
    assert hasattr(learn, 'channels_last') and hasattr(learn, 'bf16')
    train(learn, 2)
    assert learn.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    learn.to_contiguous()
    assert not hasattr(learn, 'channels_last')

def test_repeat_dls_and_timers():
    b = (torch.randn(4, 1, 12, 12), torch.randint(0, 2, (4,)))
    dls = repeat_dls(b, 6)
    assert len(dls.train) == 6 and len(dls.valid) == 0
    learn = Learner(dls, tiny_model(), loss_func=CrossEntropyLossFlat())
    assert time_learner(learn, steps=3, warmup=2) > 0
    assert learn.train_timer.warm_secs > 0 and learn.train_timer.n == 12
    assert time_loop(tiny_model(), RepeatDL(b, 6), steps=3, warmup=2, channels_last=True) > 0

def test_time_loop_compiles_when_asked(monkeypatch):
    "`time_loop(compile=...)` times the model through `torch.compile`, with the arguments given"
    calls, real = [], torch.compile
    def spy(m, **kw): calls.append(kw); return real(m, **kw)
    monkeypatch.setattr(torch, 'compile', spy)
    b = (torch.randn(4, 1, 12, 12), torch.randint(0, 2, (4,)))
    m = tiny_model()
    assert time_loop(m, RepeatDL(b, 6), steps=3, warmup=2) > 0 and calls == []
    w0 = m[0].weight.detach().clone()
    assert time_loop(m, RepeatDL(b, 6), steps=3, warmup=2, compile=dict(backend='eager')) > 0
    assert calls == [dict(backend='eager')] and not torch.equal(m[0].weight, w0)  # compiled once, and it trained

def test_loop_step_trains_and_undo_puts_the_model_back():
    "`loop_step` gives a step that trains (the loss on its batch falls) and an `undo` that restores the memory format and forwards"
    torch.manual_seed(0)
    b = (torch.randn(8, 1, 12, 12), torch.randint(0, 2, (8,)))
    m = tiny_model()
    loss = lambda: F.cross_entropy(m(b[0]), b[1]).item()
    before = loss()
    step, undo = loop_step(m, 'cpu', lr=1e-2, precision='bf16', channels_last=True)
    assert isinstance(m[0].forward, InFP32) and m[0].weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(20): step(b)
    undo(); undo()  # twice: nothing more to undo, no error
    assert 'forward' not in m[0].__dict__ and m[0].weight.is_contiguous()
    assert loss() < before

# checkpoints: never half-written, a damaged one named and passed over
class _StopAfterFirstEpoch(Callback):
    order = 70  # after `EpochCheckpoint` has saved the epoch
    def after_epoch(self): raise CancelFitException()

def test_fit_resumable_passes_over_a_damaged_checkpoint(tmp_path, caplog):
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with learn.no_bar(), learn.no_logging(): fit_resumable(learn, 3, 1e-2, fname='t', cbs=_StopAfterFirstEpoch())
    good = checkpoints(learn, 't')[0]
    bad = good.with_name('t_1.pth'); bad.write_bytes(good.read_bytes()[:100])  # a newer checkpoint, damaged on disk
    bad.with_suffix('.json').write_text(good.with_suffix('.json').read_text().replace('"epoch": 0', '"epoch": 1'))  # with its record
    assert list(checkpoints(learn, 't')) == [0, 1]
    with caplog.at_level(logging.WARNING, logger='imgcourse'), learn.no_bar(), learn.no_logging():
        fit_resumable(learn, 3, 1e-2, fname='t')
    assert 't_1.pth' in caplog.text and 'not a readable checkpoint' in caplog.text   # named
    assert (tmp_path/'models'/'t_1.corrupt').exists()                                   # set aside, not deleted
    assert list(checkpoints(learn, 't')) == [2]                                          # resumed from epoch 0's, finished
    assert not list((tmp_path/'models').glob('.*.part'))                                 # no temporary files left

def test_a_finished_stage_run_again_loads_its_weights_and_its_record(tmp_path, caplog):
    "Running a notebook a second time: each finished stage trains nothing, and code reading `learn.recorder` still works"
    import json
    set_seed(0)
    first = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with caplog.at_level(logging.WARNING, logger='imgcourse'), first.no_bar(), first.no_logging(): fit_resumable(first, 2, 1e-2, fname='t')
    assert not caplog.text, caplog.text  # every epoch's record kept, the first one (before models/ existed) too
    rows, losses = [list(map(float, v)) for v in first.recorder.values], [float(v) for v in first.recorder.losses]
    assert len(rows) == 2 and losses
    assert sorted(f.name for f in (tmp_path/'models').iterdir()) == ['t_1.json', 't_1.pth']  # the old epoch's record went with its weights
    again = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)  # a fresh kernel, the same notebook
    with caplog.at_level(logging.INFO, logger='imgcourse'), again.no_bar(), again.no_logging(): fit_resumable(again, 2, 1e-2, fname='t')
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))
    assert again.recorder.values == rows and again.recorder.losses == pytest.approx(losses)
    assert 'trained to the end by an earlier run' in caplog.text and 'back in `learn.recorder`' in caplog.text
    import matplotlib; matplotlib.use('Agg')
    again.recorder.plot_loss()  # what lessons 02 and 04 do next: needs the metric names too
    rec = json.loads((tmp_path/'models'/'t_1.json').read_text())
    assert rec['epoch'] == 1 and all(isinstance(i, int) for i in rec['iters'])
    (tmp_path/'models'/'t_1.json').write_text(json.dumps(rec | {'epoch': 0}))  # a record of another checkpoint: not used
    other = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with other.no_bar(), other.no_logging(): fit_resumable(other, 2, 1e-2, fname='t')
    assert other.recorder.values == []
    (tmp_path/'models'/'t_1.json').unlink()  # a checkpoint from before records were kept: what it was trained on is unknown
    caplog.clear(); old = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with caplog.at_level(logging.INFO, logger='imgcourse'), old.no_bar(), old.no_logging(): fit_resumable(old, 2, 1e-2, fname='t')
    aside = list((tmp_path/'models').glob('t_1.unchecked-*.pth'))
    assert 'cannot be checked' in caplog.text and len(aside) == 1 and aside[0].name in caplog.text
    assert len(old.recorder.values) == 2  # trained afresh; the old one kept aside

def finished_run(tmp_path) -> list:
    "A 2-epoch `fit_resumable` run 't' (lr 1e-2) in `tmp_path`; its final weights"
    set_seed(0)
    first = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with first.no_bar(), first.no_logging(): fit_resumable(first, 2, 1e-2, fname='t')
    return [v.clone() for v in first.model.state_dict().values()]

def test_a_checkpoint_trained_otherwise_is_set_aside_not_resumed(tmp_path, caplog):
    "A cached checkpoint of the same name from another run (other photos, other epochs, another model) would be resumed as if it were this run's"
    w_first = finished_run(tmp_path)
    x2 = tiny_dls(); x2.train.x = x2.train.x.flip(0)  # the same shapes and sizes, other images in another order
    for dls, n_epoch, model, says in ((x2, 2, tiny_model(), 'on other training data (192 items; this fit: 192 items)'),
                                      (tiny_dls(), 3, tiny_model(), 'for 2 epochs (this fit: 3)'),
                                      (tiny_dls(bs=16), 2, tiny_model(), 'with batch size 32 (this fit: 16)'),
                                      (tiny_dls(), 2, nn.Sequential(*tiny_model()[:3], nn.Conv2d(8, 2, 1), *tiny_model()[4:]), 'with another model')):
        caplog.clear()
        other = fast_learner(dls, model, precision='fp32', path=tmp_path)
        with caplog.at_level(logging.INFO, logger='imgcourse'), other.no_bar(), other.no_logging(): fit_resumable(other, n_epoch, 1e-2, fname='t')
        assert says in caplog.text and 'not resumed' in caplog.text, caplog.text
        assert 'resuming' not in caplog.text and len(other.recorder.values) == n_epoch  # trained from the start
        assert list(checkpoints(other, 't')) == [n_epoch - 1]  # the new run's checkpoint is the only one resumable
    models = tmp_path/'models'
    assert len(list(models.glob('t_*.*.pth'))) == 4 and len(list(models.glob('t_*.*.json'))) == 4  # each run's set aside, with its record
    # the same setting again: the latest checkpoint is resumed as it always was
    caplog.clear(); again = fast_learner(tiny_dls(), nn.Sequential(*tiny_model()[:3], nn.Conv2d(8, 2, 1), *tiny_model()[4:]), precision='fp32', path=tmp_path)
    with caplog.at_level(logging.INFO, logger='imgcourse'), again.no_bar(), again.no_logging(): fit_resumable(again, 2, 1e-2, fname='t')
    assert 'trained to the end by an earlier run' in caplog.text and 'not resumed' not in caplog.text
    # nothing was lost: the first run's setting again takes its own checkpoint back, finished, with its weights and record
    caplog.clear(); back = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with caplog.at_level(logging.INFO, logger='imgcourse'), back.no_bar(), back.no_logging(): fit_resumable(back, 2, 1e-2, fname='t')
    assert 'set aside' in caplog.text and 'it is back as t_1.pth' in caplog.text and 'trained to the end by an earlier run' in caplog.text, caplog.text
    assert all(torch.equal(a, b) for a, b in zip(w_first, back.model.state_dict().values())) and len(back.recorder.values) == 2
    assert len(list(models.glob('t_*.*.pth'))) == 4  # the last run's went aside in its place
    # its weights can still be loaded by hand under the name the warning gives
    name = re.search(r"learn\.load\('([^']+)'\)", caplog.text).group(1)
    other = fast_learner(tiny_dls(), nn.Sequential(*tiny_model()[:3], nn.Conv2d(8, 2, 1), *tiny_model()[4:]), precision='fp32', path=tmp_path)
    other.load(name)  # the last run's, with its 1x1 convolution
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), other.model.state_dict().values()))

def test_set_aside_checkpoints_are_never_overwritten_or_deleted(tmp_path):
    "Two checkpoints without a record, and a fresh start (`resume=False`) of another setting: every earlier file survives"
    set_seed(0)
    models = tmp_path/'models'
    def fit(resume=True, bs=32):
        l = fast_learner(tiny_dls(bs=bs), tiny_model(), precision='fp32', path=tmp_path)
        with l.no_bar(), l.no_logging(): fit_resumable(l, 2, 1e-2, fname='t', resume=resume)
        return torch.load(models/'t_1.pth', weights_only=False)['model']['0.weight']
    w = [fit()]; (models/'t_1.json').unlink()           # a record lost
    w.append(fit()); (models/'t_1.json').write_text('{')  # a record damaged
    w.append(fit())
    kept = [torch.load(f, weights_only=False)['model']['0.weight'] for f in models.glob('t_1.unchecked-*.pth')]
    assert len(kept) == 2 and all(any(torch.equal(a, b) for b in kept) for a in w[:2])
    w.append(fit(resume=False, bs=16))                    # another setting, started afresh on purpose: the last one is set aside
    assert any(torch.equal(torch.load(f, weights_only=False)['model']['0.weight'], w[2]) for f in models.glob('t_1.*.pth'))
    w.append(fit(resume=False, bs=16))                    # the same setting afresh: its own checkpoint is replaced, as asked
    assert len(list(models.glob('t_1.*.pth'))) == 3

def test_checkpoint_names_with_glob_characters_and_numpy_sizes(tmp_path):
    "A stage named `run[1]` resumes like any other, and numpy integers for the epochs or the batch size are fine"
    set_seed(0)
    first = fast_learner(tiny_dls(bs=np.int64(32)), tiny_model(), precision='fp32', path=tmp_path)
    with first.no_bar(), first.no_logging(): fit_resumable(first, np.int64(2), 1e-2, fname='run[1]')
    assert list(checkpoints(first, 'run[1]')) == [1]
    again = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with again.no_bar(), again.no_logging(): fit_resumable(again, 2, 1e-2, fname='run[1]')  # plain ints: the same setting
    assert again.recorder.values == first.recorder.values and again.recorder.values

def test_a_put_back_cut_short_is_finished_by_the_next_run(tmp_path):
    "Killed between moving a set-aside checkpoint's record back and its weights: the next run with that setting still takes it back"
    set_seed(0)
    models = tmp_path/'models'
    a = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with a.no_bar(), a.no_logging(): fit_resumable(a, 2, 1e-2, fname='t')
    b = fast_learner(tiny_dls(bs=16), tiny_model(), precision='fp32', path=tmp_path)
    with b.no_bar(), b.no_logging(): fit_resumable(b, 2, 1e-2, fname='t')  # sets a's aside
    (models/'t_1.pth').unlink(); (models/'t_1.json').unlink()               # b's gone (by hand): a's may come back
    mine = next(p for p in models.glob('t_1.*.pth'))
    mine.with_suffix('.json').rename(models/'t_1.json')                     # the kill: the record moved, the weights not yet
    c = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with c.no_bar(), c.no_logging(): fit_resumable(c, 2, 1e-2, fname='t')
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values()))

def test_fit_setting_tells_runs_apart():
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32')
    s = fit_setting(learn, 3)
    assert s == fit_setting(fast_learner(tiny_dls(), tiny_model(), precision='fp32'), 3)  # the same run in another process: the same
    assert s['n_train'] == 192 and s['bs'] == 32 and s['epochs'] == 3
    items = lambda names: types.SimpleNamespace(dls=types.SimpleNamespace(train=types.SimpleNamespace(items=names, bs=8)), model=tiny_model())
    a, b = fit_setting(items(['p/a.jpg', 'p/b.jpg']), 1), fit_setting(items(['p/b.jpg', 'p/a.jpg']), 1)
    assert a == b and a['n_train'] == 2  # a folder's photos, in any order
    assert fit_setting(items(['q/a.jpg', 'q/b.jpg']), 1)['data'] != a['data']  # another folder's

def test_another_learning_rate_schedule_or_loss_trains_afresh_and_the_first_comes_back(tmp_path, caplog):
    "A stage run again with another learning rate (or one-cycle argument, or loss) trains with it: the finished checkpoint is set aside, not loaded"
    w_first = finished_run(tmp_path)
    for lr, kw, loss, says in ((1e-3, {}, None, 'with learning rate 0.01 (this fit: 0.001)'),  # each against the run before it
                               (slice(1e-4, 1e-2), {}, None, 'with learning rate 0.001 (this fit: slice(0.0001, 0.01))'),
                               (1e-2, {'pct_start': 0.5}, None, "slice(0.0001, 0.01) (this fit: 0.01), with pct_start 0.25 (this fit: 0.5)"),
                               (1e-2, {}, nn.CrossEntropyLoss(label_smoothing=0.1), "with pct_start 0.5 (this fit: 0.25), with the loss FastCE (this fit: CrossEntropyLoss)")):
        caplog.clear()
        other = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path, loss_func=loss)
        with caplog.at_level(logging.INFO, logger='imgcourse'), other.no_bar(), other.no_logging(): fit_resumable(other, 2, lr, fname='t', **kw)
        assert says in caplog.text and 'not resumed' in caplog.text, caplog.text
        assert 'trained to the end by an earlier run' not in caplog.text and len(other.recorder.values) == 2  # trained, with the new setting
    caplog.clear(); back = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with caplog.at_level(logging.INFO, logger='imgcourse'), back.no_bar(), back.no_logging(): fit_resumable(back, 2, 1e-2, fname='t')
    assert 'it is back as t_1.pth' in caplog.text and 'trained to the end by an earlier run' in caplog.text, caplog.text
    assert all(torch.equal(a, b) for a, b in zip(w_first, back.model.state_dict().values()))
    s = fit_setting(back, 2, None, pct_start=0.3, moms=(0.9, 0.8, 0.9), cbs=[])
    assert s['lr'] == back.lr and s['loss'] == 'FastCE'
    assert s['schedule'] == {'pct_start': 0.3, 'div': 25., 'div_final': 1e5, 'wd': None, 'moms': [0.9, 0.8, 0.9]}
    assert fit_setting(back, 2, 1e-2, pct_start=0.25, moms=None) == fit_setting(back, 2, 1e-2)  # a default given by name: the same fit
    back.moms, back.wd = (0.9, 0.8, 0.9), 0.1  # what `fit_one_cycle` uses when not given
    assert fit_setting(back, 2, 1e-2)['schedule'] | {'pct_start': 0.3} == s['schedule'] | {'wd': 0.1}

def test_a_checkpoint_from_before_the_learning_rate_was_recorded_is_set_aside(tmp_path, caplog):
    import json
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with learn.no_bar(), learn.no_logging(): fit_resumable(learn, 2, 1e-2, fname='t')
    rec = tmp_path/'models'/'t_1.json'
    d = json.loads(rec.read_text())
    for k in ('lr', 'schedule', 'loss'): del d['setting'][k]
    rec.write_text(json.dumps(d))
    again = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with caplog.at_level(logging.INFO, logger='imgcourse'), again.no_bar(), again.no_logging(): fit_resumable(again, 2, 1e-2, fname='t')
    assert 'without its learning rate, schedule and loss on record' in caplog.text and len(again.recorder.values) == 2, caplog.text
    assert 'takes back' not in caplog.text  # no run has its setting any more: the warning promises nothing

def test_a_metric_of_several_numbers_does_not_stop_a_checkpointed_fit(tmp_path):
    "fastai keeps a metric that is not one number as it is; its record is `None`, and the fit and its checkpoints go on"
    import json
    from fastai.metrics import AvgMetric
    pair = AvgMetric(lambda p, y: torch.stack([p.float().mean(), p.float().std()]))
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path, metrics=pair)
    with learn.no_bar(), learn.no_logging(): fit_resumable(learn, 2, 1e-2, fname='m')
    rec = json.loads((tmp_path/'models'/'m_1.json').read_text())
    assert list(checkpoints(learn, 'm')) == [1] and len(rec['values']) == 2 and rec['values'][-1][-1] is None

def test_a_damaged_checkpoints_record_is_set_aside_with_it(tmp_path):
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with learn.no_bar(), learn.no_logging(): fit_resumable(learn, 2, 1e-2, fname='t')
    f = checkpoints(learn, 't')[1]; f.write_bytes(f.read_bytes()[:100])
    fresh = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with fresh.no_bar(), fresh.no_logging(): fit_resumable(fresh, 2, 1e-2, fname='t')  # nothing readable: trains both epochs again
    names = sorted(p.name for p in (tmp_path/'models').iterdir())
    assert names == ['t_1.corrupt', 't_1.json', 't_1.json.corrupt', 't_1.pth'], names

def test_save_atomic_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    f = save_atomic(learn, 'm', with_opt=False); before = f.read_bytes()
    import imgcourse.train as T
    def boom(fn, *a, **k): Path(fn).write_bytes(b'half'); raise KeyboardInterrupt
    monkeypatch.setattr(T, 'save_model', boom)
    with pytest.raises(KeyboardInterrupt): save_atomic(learn, 'm', with_opt=False)
    assert f.read_bytes() == before and not list(f.parent.glob('.*.part'))

def test_cpu_mode_takes_the_fast_path(monkeypatch):
    "In the CPU mode on a CPU, `fast_learner` times both memory formats at its first batch (bf16 only where the CPU has AMX and precision was left to the policy)"
    monkeypatch.setenv('IMGCOURSE_MODE', 'cpu')
    learn = fast_learner(tiny_dls(), tiny_model())
    assert hasattr(learn, 'layout_probe') and not hasattr(learn, 'compiled_train')
    assert hasattr(learn, 'bf16') == cpu_bf16()
    probe = learn.layout_probe
    train(learn, 2)
    assert not hasattr(learn, 'layout_probe') and probe.result is not None  # it ran once, then left
    assert hasattr(learn, 'channels_last') == (memory_format(learn) == 'channels_last')  # the format it chose is the one it trains in
    assert (memory_format(learn) == 'NCHW') == (probe.result['contiguous'] < probe.result['channels_last'] * 0.95)  # NCHW only when clearly faster
    assert not hasattr(fast_learner(tiny_dls(), tiny_model(), precision='fp32'), 'bf16')  # an explicit precision wins
    learn = fast_learner(tiny_dls(), tiny_model(), fast=False)
    assert not hasattr(learn, 'channels_last') and not hasattr(learn, 'layout_probe')
    monkeypatch.setenv('IMGCOURSE_MODE', 'quick')
    learn = fast_learner(tiny_dls(), tiny_model())
    assert not hasattr(learn, 'channels_last') and not hasattr(learn, 'layout_probe')

def dropout_model():
    return nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.3), nn.Conv2d(8, 2, 3, 2, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())

@pytest.mark.parametrize('cl_ms,chosen', [(2.0, 'channels_last'), (3.0, 'NCHW'), (2.6, 'channels_last')])
def test_layout_probe_keeps_the_faster_format_and_changes_nothing_else(monkeypatch, caplog, cl_ms, chosen):
    "The probe trains in whichever format its timings favour (NCHW only by more than 5%), says both timings, and leaves the run exactly as the same format chosen by hand would"
    import imgcourse.train as T
    real = T._step_secs
    monkeypatch.setattr(T, '_step_secs', lambda m, xb, fmt, dev: real(m, xb, fmt, dev) * 0 + (cl_ms if fmt == torch.channels_last else 2.5) / 1e3)
    set_seed(0)
    learn = fast_path(fast_learner(tiny_dls(), dropout_model(), precision='fp32'), compile=False)
    with caplog.at_level(logging.INFO, logger='imgcourse'): train(learn, 2)
    cl = chosen == 'channels_last'
    assert hasattr(learn, 'channels_last') == cl and memory_format(learn) == chosen and not hasattr(learn, 'layout_probe')
    assert learn.model[4].weight.is_contiguous(memory_format=torch.channels_last) == cl  # [0] has one input channel: both at once
    line = f"memory format: {chosen}: a forward and backward pass of the first batch took 2.5 ms in NCHW, {cl_ms:.1f} ms in channels_last"
    assert line + (' (within 5%: the usual choice)' if cl_ms == 2.6 else ';') in caplog.text, caplog.text
    set_seed(0)  # the same run with the format chosen by hand: the probe's copy drew no random numbers and moved no statistics
    ref = train(fast_path(fast_learner(tiny_dls(), dropout_model(), precision='fp32'), compile=False, channels_last=cl), 2)
    for a, b in zip(learn.model.state_dict().values(), ref.model.state_dict().values()): torch.testing.assert_close(a, b)
    fast_path(learn, compile=False)  # asked again, e.g. before compiling: the choice stands, nothing is timed again
    train(learn, 1)
    assert learn.model[4].weight.is_contiguous(memory_format=torch.channels_last) == cl and caplog.text.count('memory format:') == 1

def wide_model():  # 8 input channels: a channels_last weight is told apart from a contiguous one
    return nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 2, 3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

def layouts(learn):
    "The memory formats of the 4-D weights and of the optimizer's moments, (weights, moments)"
    import imgcourse.train as T
    ps = [p for p in learn.model.parameters() if p.ndim == 4 and p.shape[1] > 1]
    return {T._fmt(p) for p in ps}, {T._fmt(v) for p, v in T._opt_tensors(learn) if p.ndim == 4 and p.shape[1] > 1}

def test_a_resumed_run_trains_in_the_format_of_its_saved_moments(tmp_path, caplog):
    "Fused AdamW reads weights and moments as flat memory: after a resume they must be laid out alike, in the format of the first run"
    learn = train(fast_path(fast_learner(tiny_dls(), wide_model(), precision='fp32', fast=False), compile=False, channels_last=True), 1)
    assert layouts(learn) == ({torch.channels_last}, {torch.channels_last})
    learn.path = tmp_path; learn.save('m', with_opt=True)
    new = fast_path(fast_learner(tiny_dls(), wide_model(), precision='fp32', fast=False), compile=False)  # a fresh NCHW model, probe pending
    new.path = tmp_path; new.load('m', with_opt=True)
    with caplog.at_level(logging.INFO, logger='imgcourse'): train(new, 1)
    assert "memory format: channels_last, as the optimizer's saved moments are" in caplog.text
    assert layouts(new) == ({torch.channels_last}, {torch.channels_last}) and hasattr(new, 'channels_last')

def test_a_format_changed_by_hand_takes_the_moments_along():
    "`to_contiguous` between fits, or `fast_path(channels_last=...)` after one: the moments follow the weights at the next fit"
    learn = train(fast_path(fast_learner(tiny_dls(), wide_model(), precision='fp32', fast=False), compile=False, channels_last=True), 1)
    learn.to_contiguous(); train(learn, 1)
    assert layouts(learn) == ({torch.contiguous_format}, {torch.contiguous_format})
    fast_path(learn, compile=False, channels_last=True); train(learn, 1)
    assert layouts(learn) == ({torch.channels_last}, {torch.channels_last})

def test_to_contiguous_by_hand_cancels_the_probe():
    learn = fast_path(fast_learner(tiny_dls(), wide_model(), precision='fp32', fast=False), compile=False)
    learn.to_contiguous()
    assert not hasattr(learn, 'layout_probe')
    train(learn, 1)
    assert memory_format(learn) == 'NCHW' and layouts(learn)[0] == {torch.contiguous_format}

def test_layout_probe_copies_the_model_without_callbacks_hooks(caplog):
    "A hook a callback put on the model (here one holding an object that cannot be copied) is neither copied nor called by the probe"
    import threading, imgcourse.train as T
    learn = fast_path(fast_learner(tiny_dls(), tiny_model(), precision='fp32'), compile=False)
    calls, lock = [], threading.Lock()  # deepcopy refuses a lock
    learn.model[0].register_forward_hook(lambda m, i, o: calls.append((lock, o.shape)))
    with caplog.at_level(logging.INFO, logger='imgcourse'): train(learn, 1)
    assert 'a forward and backward pass of the first batch took' in caplog.text, caplog.text
    assert len(calls) == len(learn.dls.train) + len(learn.dls.valid)  # the run's own batches only
    sn = nn.utils.spectral_norm(nn.Conv2d(8, 8, 3, padding=1))  # PyTorch's own hooks go with a copy, which then still works
    with T._hooks_of_the_model_only(sn): assert len(sn._forward_pre_hooks) == 1

def test_layout_probe_times_models_whose_hooks_or_weights_are_their_own(caplog):
    "A model that keeps hooks of its own (a U-Net's skips read what they store) and an old-style weight-normalised conv (its weight is computed) are timed"
    from torch.nn.utils import weight_norm
    class Skip(nn.Module):  # stores an activation with a hook it holds, as fastai's DynamicUnet does
        def __init__(self):
            super().__init__(); self.a, self.b = nn.Conv2d(1, 8, 3, 1, 1), weight_norm(nn.Conv2d(8, 8, 3, 1, 1))
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
            self.hook = Hook(self.a, lambda m, i, o: o, detach=False)
        def forward(self, x): return self.head(self.b(self.a(x)) + self.hook.stored)
    from fastai.callback.hook import Hook
    m = Skip(); m(torch.randn(2, 1, 12, 12))  # as fastai's `dummy_eval` does: the weight-normalised conv's weight is now computed (non-leaf)
    assert m.b.weight.grad_fn is not None
    learn = fast_path(fast_learner(tiny_dls(), m, precision='fp32'), compile=False)
    with caplog.at_level(logging.INFO, logger='imgcourse'): train(learn, 1)
    assert 'a forward and backward pass of the first batch took' in caplog.text, caplog.text

class DictOut(nn.Module):
    def __init__(self): super().__init__(); self.m = tiny_model()
    def forward(self, x): return {'logits': self.m(x)}

def test_layout_probe_leaves_odd_models_as_they_are(caplog):
    "Nothing to lay out (no 4-D weights), or nothing it can time (a dict output): the weights stay as they are, with the reason"
    dls = tiny_dls()
    learn = fast_path(fast_learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(144, 2)), precision='fp32'), compile=False)
    with caplog.at_level(logging.INFO, logger='imgcourse'): train(learn, 1)
    assert memory_format(learn) == 'NCHW' and 'memory format:' not in caplog.text
    learn = fast_path(Learner(dls, DictOut(), loss_func=lambda out, y: nn.functional.cross_entropy(out['logits'], y)), compile=False)
    with caplog.at_level(logging.INFO, logger='imgcourse'): train(learn, 1)
    assert memory_format(learn) == 'NCHW' and not hasattr(learn, 'channels_last')
    assert 'memory format: NCHW, as it was: could not time both (TypeError: the model returned no floating-point tensor' in caplog.text
    assert not learn.model.m[3].weight.is_contiguous(memory_format=torch.channels_last)

def test_compiled_fast_path_is_channels_last_without_timing():
    if not has_compiler(): pytest.skip('no C++ compiler: fast_path does not compile')
    learn = fast_path(fast_learner(tiny_dls(), tiny_model(), precision='fp32'), backend='eager')
    assert hasattr(learn, 'channels_last') and not hasattr(learn, 'layout_probe')

def test_layout_probe_refuses_junk_settings():
    for bad in (dict(rounds=1), dict(rounds=2.5), dict(margin=1), dict(margin=-0.1)):
        with pytest.raises(ValueError, match='rounds|margin'): LayoutProbe(**bad)

def test_time_steps_counts_images_and_needs_a_warmup():
    calls = []
    dl = [(torch.zeros(4, 2), torch.zeros(4))] * 3
    ips = time_steps(calls.append, dl, steps=5, warmup=2, device='cpu')
    assert len(calls) == 7 and ips > 0                       # warm-up + timed steps, the loader repeated as needed
    with pytest.raises(ValueError, match='warmup'): time_steps(calls.append, dl, steps=1, warmup=0, device='cpu')

def _bars(learn):
    from fastai.callback.progress import ProgressCallback
    return [c for c in learn.cbs if isinstance(c, ProgressCallback)]

def _same(a, b): return len(a) == len(b) and all(x is y for x, y in zip(a, b))

@pytest.mark.parametrize('kind', ['fast_learner', 'Learner'])
def test_epoch_lines_names_every_value(kind, capsys):
    "Without a progress bar, each epoch prints as named values, not a bare list; the logger and the very same bar come back"
    from fastai.vision.all import accuracy
    learn = (fast_learner(tiny_dls(), tiny_model(), precision='fp32') if kind == 'fast_learner' else
             Learner(tiny_dls(), tiny_model(), loss_func=CrossEntropyLossFlat(), metrics=accuracy))
    before = _bars(learn)
    assert before  # both kinds come with a progress callback
    with epoch_lines(learn):
        assert _bars(learn) == []
        learn.fit(2, 1e-2)
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[::2] for l in lines] == [['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']] * 2, lines
    assert [l.split()[1] for l in lines] == ['0', '1']
    assert [float(l.split()[5]) for l in lines] == pytest.approx([float(v[1]) for v in learn.recorder.values], abs=1e-6)
    assert learn.logger is print and _same(_bars(learn), before)

class _Boom(Callback):
    def after_epoch(self): raise RuntimeError('boom')

class _Silenced(Callback):
    order = 11  # where fastai's `DistributedTrainer` silences every process but the first
    def before_fit(self):
        from fastcore.basics import noop
        self.learn.logger = noop

def test_epoch_lines_restores_after_an_error_and_stays_silent_where_told(capsys):
    "An error in the fit puts back the logger and the bar; `no_logging` and a silenced process print nothing"
    learn = Learner(tiny_dls(), tiny_model(), loss_func=CrossEntropyLossFlat())
    before = _bars(learn)
    with pytest.raises(RuntimeError, match='boom'), epoch_lines(learn): learn.fit(1, 1e-2, cbs=_Boom())
    assert learn.logger is print and _same(_bars(learn), before)
    capsys.readouterr()
    with epoch_lines(learn): learn.fit(1, 1e-2, cbs=_Silenced())
    with learn.no_logging(), epoch_lines(learn): learn.fit(1, 1e-2)
    assert capsys.readouterr().out == ''
    assert learn.logger is print

def test_resumed_fit_logs_no_row_for_skipped_epochs(tmp_path, capsys):
    "A resumed fit prints rows for the epochs it trains only (fastai's `Recorder` alone would print `0 00:00` for a skipped one)"
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with epoch_lines(learn): fit_resumable(learn, 3, 1e-2, fname='t', cbs=_StopAfterFirstEpoch())
    capsys.readouterr()
    with epoch_lines(learn): fit_resumable(learn, 3, 1e-2, fname='t')
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[:2] for r in rows] == [['epoch', '1'], ['epoch', '2']], rows
    assert learn.logger is print                                  # the logger is put back
    assert [bool(v) for v in learn.recorder.values] == [False, True, True]  # fastai's record of the skipped epoch is kept, empty

def test_fast_dls_and_mnist_files_refuse_sizes_that_train_nothing():
    "A batch larger than the training set trained zero batches without a word (drop_last); bs 0, labels that do not match, n=0 or -1 are named too"
    x, y = torch.zeros(256, 1, 28, 28, dtype=torch.uint8), torch.zeros(256, dtype=torch.long)
    for kw, says in ((dict(bs=1000), 'Use bs=256 or less'), (dict(bs=0), 'bs=0'), (dict(bs=-1), 'bs=-1')):
        with pytest.raises(ValueError, match=says): fast_dls(x, y, x, y, stats=(0., 1.), **kw)
    with pytest.raises(ValueError, match='256 training images but 5 labels'): fast_dls(x, y[:5], x, y, bs=8, stats=(0., 1.))
    assert len(fast_dls(x, y, x, y, bs=256, stats=(0., 1.)).train) == 1
    for n in (0, -1, (10, 0)):
        with pytest.raises(ValueError, match='at least 1'): mnist_files(get_mnist(online=False), n=n)
    from imgcourse.resnet import pad_crop
    with pytest.raises(ValueError, match='pad=-2'): pad_crop(x[:2], pad=-2)

def test_fast_learner_trains_on_fastai_folder_loaders():
    "`fast_learner` on the lesson's folder DataBlock (typed `TensorImageBW`/`TensorCategory` batches): FastCE raised a TypeError there"
    from imgcourse.resnet import folder_dls, plain_cnn
    fs = mnist_files(get_mnist(online=False), n=(128, 64))
    learn = fast_learner(folder_dls(fs, bs=64, num_workers=0), plain_cnn())
    with learn.no_logging(): learn.fit(1, 1e-2)
    loss, acc = learn.recorder.values[-1][1:3]
    assert torch.isfinite(torch.tensor(loss)) and 0 <= acc <= 1

def test_size_checks_accept_numpy_integers():
    "The size checks take numpy integers as whole numbers (they did before the checks existed)"
    import numpy as np
    from imgcourse.resnet import pad_crop, resnet_mnist
    x, y = torch.zeros(64, 1, 28, 28, dtype=torch.uint8), torch.zeros(64, dtype=torch.long)
    assert len(fast_dls(x, y, x, y, bs=np.int64(32), stats=(0., 1.)).train) == 2
    assert len(mnist_files(get_mnist(online=False), n=np.int64(10))) == 20
    assert pad_crop(x[:2], pad=np.int64(2)).shape == x[:2].shape
    assert resnet_mnist(widths=np.array([8, 16, 32, 16])) is not None and resnet_mnist(widths=range(8, 12)) is not None

def test_resumed_fit_stopped_in_a_skipped_epoch_gives_the_logger_back(tmp_path):
    "Ctrl-C (or SIGTERM, turned into KeyboardInterrupt) while a resumed fit skips its first epochs: the logger is not left silenced"
    class _Interrupt(Callback):
        order = 60  # after _QuietSkip has silenced the logger for the skipped epoch
        def before_epoch(self): raise KeyboardInterrupt
    set_seed(0)
    learn = fast_learner(tiny_dls(), tiny_model(), precision='fp32', path=tmp_path)
    with learn.no_logging(): fit_resumable(learn, 3, 1e-2, fname='t', cbs=_StopAfterFirstEpoch())
    with pytest.raises(KeyboardInterrupt): fit_resumable(learn, 3, 1e-2, fname='t', cbs=_Interrupt())
    import imgcourse.train as TR
    assert learn.logger is not TR.noop  # what fastai's progress callback set at before_fit (an interrupt skips its after_fit)

class Interrupt(Callback):
    order = 20  # after `BF16` has entered autocast
    def after_pred(self): raise KeyboardInterrupt

def test_an_interrupted_bf16_fit_leaves_no_autocast_behind(monkeypatch):
    "Ctrl-C mid-batch skips fastai's `after_*` events: the next fit closes the autocast `BF16` left open; the probe closes it at once"
    learn = fast_learner(tiny_dls(), wide_model(), precision='bf16', fast=False, cbs=Interrupt())
    with pytest.raises(KeyboardInterrupt): train(learn, 1)
    assert torch.is_autocast_enabled('cpu')  # fastai's own behaviour: nothing ran after the interruption
    learn.remove_cb(learn.interrupt); train(learn, 1)
    assert not torch.is_autocast_enabled('cpu')
    import imgcourse.train as T
    def ctrl_c(*a): raise KeyboardInterrupt
    monkeypatch.setattr(T, '_step_secs', ctrl_c)
    learn = fast_path(fast_learner(tiny_dls(), wide_model(), precision='bf16', fast=False), compile=False)
    with pytest.raises(KeyboardInterrupt): train(learn, 1)
    assert not torch.is_autocast_enabled('cpu') and hasattr(learn, 'layout_probe')  # it will time again at the next fit
    monkeypatch.undo(); train(learn, 1)
    assert not hasattr(learn, 'layout_probe') and not torch.is_autocast_enabled('cpu')

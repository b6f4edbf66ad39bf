"Tests of `imgcourse.resnet`: augmentation, models, the on-device data path and the lean Learner."
import re
import numpy as np, pytest, torch, torch.nn as nn
from fastai.vision.all import Learner, Callback, CrossEntropyLossFlat, ProgressCallback, AvgSmoothLoss, OptimWrapper, CancelBatchException
from imgcourse.data import get_mnist, FASHION_SRC
from imgcourse.resnet import *
from imgcourse.train import *

@pytest.fixture(scope='module')
def files(): return mnist_files(get_mnist(online=False), n=(96, 48))

@pytest.fixture(scope='module')
def tensors(files): return split_tensors(files)

# augmentation
def test_pad_crop_is_pad_and_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8, generator=g)
    out = pad_crop(x, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert is_pad_crop(x, out)
    assert not torch.equal(out, x)  # 32 images: some offset is not the centre
    assert torch.equal(pad_crop(x, pad=0), x)
    xf = torch.randn(4, 3, 10, 12)
    assert is_pad_crop(xf, pad_crop(xf, pad=2), pad=2)

def test_pad_crop_offsets_cover_range():
    "A single bright pixel moves by -3..3 in both directions, and nowhere else."
    x = torch.zeros(2000, 1, 28, 28); x[:, 0, 14, 14] = 1
    out = pad_crop(x)
    ys, xs = torch.nonzero(out[:, 0] > 0, as_tuple=True)[1:]
    assert len(ys) == 2000
    assert set((ys - 14).tolist()) == set(range(-3, 4)) == set((xs - 14).tolist())

def test_is_pad_crop_rejects():
    x = torch.arange(2*28*28, dtype=torch.float).view(2, 1, 28, 28)
    assert not is_pad_crop(x, x.flip(-1))
    assert not is_pad_crop(x, x[:, :, :27])

def test_rand_hflip():
    x = torch.randn(64, 1, 5, 5)
    out = rand_hflip(x)
    same = [torch.equal(a, b) for a, b in zip(out, x)]
    flipped = [torch.equal(a, b.flip(-1)) for a, b in zip(out, x)]
    assert all(s or f for s, f in zip(same, flipped)) and any(same) and any(flipped)
    assert fashion_aug(x).shape == x.shape

# models
def test_param_counts_and_shapes():
    x = torch.randn(3, 1, 28, 28)
    assert n_params(plain_cnn()) == 12_044 and plain_cnn()(x).shape == (3, 10)
    assert n_params(resnet_mnist()) == 41_132 and resnet_mnist()(x).shape == (3, 10)
    assert n_params(resnet_mnist(skip=False)) == 41_132  # same layers without the shortcuts
    assert resnet_mnist(n_res=3)(x).shape == (3, 10)
    w = wide_resnet()
    assert 300_000 < n_params(w) < 1_500_000 and w(x).shape == (3, 10)
    assert wide_resnet(8, c_in=3, n_out=5)(torch.randn(2, 3, 28, 28)).shape == (2, 5)

@pytest.mark.parametrize('train', [True, False])
def test_residual_zero_init_is_identity(train):
    blk = Residual(16).train(train)
    x = torch.randn(4, 16, 7, 7)
    assert torch.equal(blk(x), x)

def test_residual_variants():
    x = torch.randn(2, 8, 7, 7)
    assert Residual(8, dense=True)(x).shape == (2, 16, 7, 7)
    assert not torch.equal(Residual(8, zero_init=False)(x), x)
    plain = Residual(8, skip=False)
    assert torch.equal(plain(x), plain.f(x))
    assert conv2(4, 8)(torch.randn(1, 4, 28, 28)).shape == (1, 8, 14, 14)
    assert conv_and_res(4, 8, n_res=2)(torch.randn(1, 4, 28, 28)).shape == (1, 8, 14, 14)

def test_residual_gradient_reaches_input():
    "With the shortcut, the input gets gradient 1 through the block even when f is zero."
    blk = Residual(4)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    blk(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))

# data
def test_mnist_files_subset(files):
    assert len(files) == 144
    assert files == mnist_files(get_mnist(online=False), n=(96, 48))
    assert sum(f.parent.parent.name == 'training' for f in files) == 96

def test_folder_tensors(tensors):
    xt, yt, xv, yv, vocab = tensors
    assert xt.shape == (96, 1, 28, 28) and xt.dtype == torch.uint8 and yt.dtype == torch.int64
    assert xv.shape == (48, 1, 28, 28) and list(vocab) == [str(i) for i in range(10)]
    m, s = pixel_stats(xt)
    assert 0.05 < m < 0.25 and 0.2 < s < 0.45

def _counts(dl): return torch.bincount(torch.cat([y.cpu() for _, y in dl]), minlength=10)

def test_fast_path_matches_folder_path(files, tensors):
    xt, yt, xv, yv, vocab = tensors
    stats = pixel_stats(xt)
    fdls = folder_dls(files, bs=16, stats=stats, num_workers=0)
    tdls = fast_dls(xt, yt, xv, yv, bs=16, stats=stats, vocab=vocab)
    (a, b), (c, d) = fdls.one_batch(), tdls.one_batch()
    assert a.shape == c.shape and b.shape == d.shape and a.dtype == c.dtype and b.dtype == d.dtype
    assert len(tdls.train) == len(fdls.train) and len(tdls.valid) * 2 >= len(fdls.valid)
    # the same label distribution, over whole epochs
    assert torch.equal(_counts(tdls.valid), _counts(fdls.valid))
    assert torch.equal(_counts(tdls.train.new(shuffle=False, drop_last=False)),
                       _counts(fdls.train.new(shuffle=False, drop_last=False)))
    # validation: no augmentation, the same pixels after normalisation
    vx, vy = next(iter(tdls.valid)); fx, fy = next(iter(fdls.valid))
    k = min(len(vx), len(fx))
    assert torch.allclose(vx[:k], torch.as_tensor(fx[:k]), atol=1e-4) and torch.equal(vy[:k], torch.as_tensor(fy[:k]))
    assert list(tdls.vocab) == list(fdls.vocab)

def test_tensor_dl_epochs(tensors):
    xt, yt, *_ = tensors
    dl = TensorDL(xt, yt, bs=10, shuffle=True, drop_last=True, aug=pad_crop, stats=(0.13, 0.31))
    assert len(dl) == 9
    ys = torch.cat([y for _, y in dl])
    assert len(ys) == 90 and len(set(ys.tolist())) > 3
    dl2 = dl.new(shuffle=False, drop_last=False, aug=None)
    assert dl2.x is dl.x and len(dl2) == 10 and dl.shuffle
    xb, yb = next(iter(dl2))
    assert torch.allclose(dl2.decode(xb) * 255, xt[:10].float(), atol=1e-3) and torch.equal(yb, yt[:10])
    with pytest.raises(TypeError): dl.new(bogus=1)
    with pytest.raises(ValueError): TensorDL(xt, yt[:5])

def test_tensor_dl_shuffled_batches_keep_each_image_with_its_label():
    "Shuffled batches are gathered rows (`index_select`): every image still comes with its own label, each once an epoch"
    n = 200
    x = (torch.arange(n) % 251).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()  # image i is filled with i % 251
    dl = TensorDL(x, torch.arange(n), bs=16, shuffle=True, drop_last=True)
    seen = []
    for xb, yb in dl:
        assert torch.equal((xb[:, 0] * 255).round().long(), (yb % 251).view(-1, 1, 1).expand(-1, 4, 4)), yb
        seen += yb.tolist()
    assert len(seen) == len(set(seen)) == 192 and seen != sorted(seen)

# the lean Learner
class Count(Callback):
    "Counts the events it sees."
    def __init__(self): self.n = {}
    def _c(self, e): self.n[e] = self.n.get(e, 0) + 1
    def before_batch(self): self._c('before_batch')
    def after_loss(self): self._c('after_loss')
    def after_step(self): self._c('after_step')
    def after_batch(self): self._c('after_batch')
    def after_epoch(self): self._c('after_epoch')

def test_fast_learner_trains_and_dispatches(tensors):
    xt, yt, xv, yv, vocab = tensors
    dls = fast_dls(xt, yt, xv, yv, bs=16, vocab=vocab)
    cf, cs = Count(), Count()
    fl = fast_learner(dls, resnet_mnist((4, 4, 4, 4)), cbs=cf, precision='fp32')
    sl = Learner(dls, resnet_mnist((4, 4, 4, 4)), loss_func=CrossEntropyLossFlat(), cbs=cs)
    for l in (fl, sl):
        with l.no_logging(): l.fit_one_cycle(2, 1e-2)
    assert cf.n == cs.n and cf.n['after_step'] == 2 * len(dls.train)
    assert isinstance(fl, FastLearner) and isinstance(fl.opt, OptimWrapper)
    assert isinstance(fl.recorder, LeanRecorder) and isinstance(fl.progress, LeanProgress)
    assert len(fl.recorder.losses) == len(fl.recorder.lrs) == 2 * len(dls.train)
    assert all(torch.isfinite(torch.stack(fl.recorder.losses)))
    # the one-cycle schedule reached the torch optimizer (momentum goes back up to 0.95 at the end)
    assert 0.85 <= fl.opt.opt.param_groups[0]['betas'][0] <= 0.95
    assert max(fl.recorder.lrs) > 5 * min(fl.recorder.lrs)
    prog = fl.progress
    with fl.no_bar(): assert not hasattr(fl, 'progress')
    assert fl.progress is prog  # the same callback put back
    fl.remove_cb(cf)
    with fl.no_logging(): fl.fit(1, 1e-3)
    assert cf.n['after_step'] == 2 * len(dls.train)  # a removed callback is no longer called
    p, t = fl.get_preds()
    assert p.shape == (len(xv), 10) and torch.allclose(p.sum(1), torch.ones(len(xv)), atol=1e-4)

def test_bf16_and_precision(tensors):
    xt, yt, xv, yv, vocab = tensors
    dls = fast_dls(xt[:32], yt[:32], xv[:16], yv[:16], bs=16)
    assert default_precision('cpu', resnet_mnist()) == 'fp32'
    with pytest.raises(ValueError): fast_learner(dls, resnet_mnist(), precision='fp8')
    class Peek(Callback):
        order = 20  # after `BF16`
        def after_pred(self): self.seen = (torch.is_autocast_enabled('cpu'), self.pred.dtype)
    fl = fast_learner(dls, resnet_mnist((4, 4, 4, 4)), precision='bf16', cbs=Peek())
    with fl.no_logging(): fl.fit(1, 1e-3)
    assert fl.peek.seen == (True, torch.float32)  # the forward ran under autocast; the logits come back as fp32
    assert not torch.is_autocast_enabled('cpu')  # and autocast was closed after each batch

def test_bf16_on_a_cpu_keeps_one_channel_convolutions_in_fp32(tensors):
    "Under `BF16` on a CPU a convolution of one input channel (the image) runs in float32, the rest in bf16; compiled too"
    import pickle
    xt, yt, xv, yv, vocab = tensors
    dls = fast_dls(xt[:32], yt[:32], xv[:16], yv[:16], bs=16, vocab=vocab)
    for compiled in (False, True):
        m = resnet_mnist((4, 4, 4, 4)); seen = {}
        convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
        hooks = [c.register_forward_hook(lambda mod, i, o: seen.setdefault(mod.in_channels == 1, set()).add(o.dtype)) for c in convs]
        fl = fast_learner(dls, m, precision='bf16', fast=False)
        if compiled: fl.to_compiled(backend='eager')  # traced by dynamo through the float32 forward, no kernels built
        with fl.no_logging(), fl.no_bar(): fl.fit(1, 1e-3)
        assert seen == {True: {torch.float32}, False: {torch.bfloat16}}, seen
        assert 'forward' in convs[0].__dict__ and all('forward' not in c.__dict__ for c in convs[1:])
        assert set(m.state_dict()) == set(resnet_mnist((4, 4, 4, 4)).state_dict())  # the weights' names are untouched
    fl.to_eager()
    with fl.no_logging(), fl.no_bar(): fl.fit(1, 1e-3)  # a second fit does not wrap it twice
    assert isinstance(convs[0].forward, InFP32) and convs[0].forward.m is convs[0]
    for h in hooks: h.remove()
    c2 = next(c for c in pickle.loads(pickle.dumps(fl.model)).modules() if isinstance(c, nn.Conv2d))  # `learn.export()` still works
    assert isinstance(c2.forward, InFP32) and c2.forward.m is c2

def test_device_smooth_loss():
    "The one-operation bias-corrected average is fastai's, batch after batch (vector and scalar losses)"
    class L_: pass
    a, b = AvgSmoothLoss(), DeviceSmoothLoss()
    for v in [3., 2., 1.5, 1.]:
        l = L_(); l.loss = torch.tensor([v, v + 1])
        a.accumulate(l); b.accumulate(l)
        assert torch.allclose(a.value, b.value)
    g = torch.Generator().manual_seed(0)
    for i in range(400):
        l = L_(); l.loss = torch.rand((), generator=g) * 3 + i % 7
        a.accumulate(l); b.accumulate(l)
        assert torch.allclose(a.value, b.value, rtol=1e-5), i
    b.reset(); l.loss = torch.tensor(5.)
    b.accumulate(l); assert b.value == 5.  # the first batch's average is its loss

def test_fast_learner_calls_per_batch_events_as_fastai_does(tensors):
    "Per-batch events go straight to the callbacks' methods: `run`, `run_train`, `run_valid`, cancels and errors as in fastai"
    xt, yt, xv, yv, vocab = tensors
    dls = fast_dls(xt[:64], yt[:64], xv[:32], yv[:32], bs=16, vocab=vocab)
    class Seen(Callback):
        def __init__(self, **kw): self.n = {'train': 0, 'valid': 0}; [setattr(self, k, v) for k, v in kw.items()]
        def after_batch(self): self.n['train' if self.learn.training else 'valid'] += 1
    class SkipSecond(Callback):
        def before_batch(self):
            if self.learn.training and self.learn.iter == 1: raise CancelBatchException()
    class Off(Seen):
        def before_fit(self): self.run = False  # a callback may switch itself off for one fit
    class Boom(Callback):
        def after_loss(self): raise RuntimeError('boom')
    class Preds(Callback):
        def __init__(self): self.n = 0
        def after_pred(self): self.n += 1
    seen = []
    for make in (lambda cbs: fast_learner(dls, resnet_mnist((4, 4, 4, 4)), cbs=cbs, precision='fp32', fast=False),
                 lambda cbs: Learner(dls, resnet_mnist((4, 4, 4, 4)), loss_func=CrossEntropyLossFlat(), cbs=cbs)):
        cbs = every, train_only, valid_only, off, preds = Seen(), Seen(run_valid=False), Seen(run_train=False), Off(), Preds()
        l = make(list(cbs) + [SkipSecond()])
        with l.no_logging(), l.no_bar(): l.fit(1, 1e-3)
        assert train_only.n['valid'] == 0 and valid_only.n['train'] == 0 and every.n['valid'] == 1  # validation batches are twice as big
        assert off.n == {'train': 0, 'valid': 0} and off.run  # off for that fit, on again after it
        assert preds.n == 3 + 1  # the cancelled training batch never reached the model
        seen.append([c.n for c in cbs] + [len(l.recorder.losses)])
        l.add_cb(Boom())
        with pytest.raises(RuntimeError, match='Boom.*after_loss'), l.no_logging(), l.no_bar(): l.fit(1, 1e-3)
    assert seen[0] == seen[1]  # everything else as fastai's `Learner` does it

def test_timers_run(tensors):
    xt, yt, xv, yv, _ = tensors
    dls = fast_dls(xt, yt, xv, yv, bs=16)
    assert time_loop(resnet_mnist((2, 2, 2, 2)), dls.train, steps=3, warmup=1) > 0
    l = fast_learner(dls, resnet_mnist((2, 2, 2, 2)))
    assert time_learner(l, steps=8, warmup=2) > 0  # more steps than one epoch: spans epochs
    assert isinstance(l.progress, LeanProgress)

@pytest.mark.skipif(not (FASHION_SRC/'t10k-labels-idx1-ubyte.gz').exists(), reason='Fashion-MNIST IDX files not installed')
def test_fashion_tensors():
    xt, yt, xv, yv, vocab = fashion_tensors(n=(50, 20))
    assert xt.shape == (50, 1, 28, 28) and xv.shape == (20, 1, 28, 28) and xt.dtype == torch.uint8
    assert len(vocab) == 10 and yt.max() <= 9
    assert torch.equal(fashion_tensors(n=(50, 20))[1], yt)

# the dense (concatenating) variant, and the blocks of section 3
def test_dense_resnet_shapes():
    x = torch.randn(3, 1, 28, 28)
    assert conv_and_res(4, 8, dense=True)(torch.randn(1, 4, 28, 28)).shape == (1, 16, 14, 14)
    assert conv_and_res(4, 8, n_res=2, dense=True)(torch.randn(1, 4, 28, 28)).shape == (1, 32, 14, 14)
    for n_res in (1, 2):
        m = resnet_mnist(dense=True, n_res=n_res)
        assert m(x).shape == (3, 10)
        assert n_params(m) > n_params(resnet_mnist(n_res=n_res))  # each conv after a dense block reads 2**n_res x the channels

def test_dense_resnet_trains(tensors):
    "A few steps of the dense variant: no channel mismatch, and the loss falls."
    xt, yt, xv, yv, vocab = tensors
    torch.manual_seed(0)
    dls = fast_dls(xt, yt, xv, yv, bs=32, stats=pixel_stats(xt), vocab=vocab)
    l = fast_learner(dls, resnet_mnist(dense=True), precision='fp32')
    with l.no_logging(), l.no_bar(): l.fit(6, 1e-2)
    losses = torch.stack(l.recorder.losses).float()
    assert torch.isfinite(losses).all() and losses[-3:].mean() < losses[:3].mean()

def test_hand_block_adds_only():
    "Our blocks' f ends in a ReLU, so x + f(x) >= x; fastai's ResBlock puts the ReLU after the sum."
    from fastai.layers import ResBlock
    x = torch.randn(2, 8, 14, 14)
    blk = Residual(8, zero_init=False)
    assert (blk(x) - x).min() >= 0
    rb = ResBlock(1, 8, 8); nn.init.ones_(rb.convpath[-1][1].weight)
    assert rb.convpath(x).min() < 0 < rb.convpath(x).max() and rb(x).min() >= 0
    assert ResBlock(1, 8, 16, stride=2)(x).shape == (2, 16, 7, 7)

def test_wide_resnet_stride():
    x = torch.randn(2, 1, 28, 28)
    a, b = wide_resnet(16), wide_resnet(16, stride=2)
    assert a(x).shape == b(x).shape == (2, 10) and n_params(a) == n_params(b)

def test_mnist_sample_stats(tensors):
    "Moved from the notebook: the sample's statistics are MNIST's (mean about 0.13, std about 0.31)."
    xt, *_ = tensors
    m, s = pixel_stats(xt)
    assert 0.1 < m < 0.16 and 0.28 < s < 0.34

def test_fashion_aug_pad0_is_flip_only():
    x = torch.randn(32, 1, 6, 6)
    out = fashion_aug(x, pad=0)
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(out, x))

def test_models_refuse_sizes_that_build_nothing():
    "Zero, negative or empty sizes were built without a word (wide_resnet(0), resnet_mnist(widths=())); now a ValueError names them"
    import numpy as np
    for f, says in ((lambda: wide_resnet(0), 'width=0'), (lambda: resnet_mnist(widths=()), 'widths=()'), (lambda: plain_cnn((8, -1)), 'widths=(8, -1)'),
                    (lambda: resnet_mnist(n_res=-1), 'n_res=-1'), (lambda: resnet_mnist(n_out=0), 'n_out=0'), (lambda: wide_resnet(stride=3), 'stride=3')):
        with pytest.raises(ValueError, match=re.escape(says)): f()
    assert resnet_mnist(widths=tuple(np.array([8, 16, 32, 16]))) is not None  # numpy integers are whole numbers too

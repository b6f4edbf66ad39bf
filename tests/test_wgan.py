"Tests of `imgcourse.wgan`: data, models, gradient penalty, a training step."
import math, logging
import numpy as np, pytest, torch, torch.nn as nn
from PIL import Image
from imgcourse.wgan import *
from fastai.layers import NormType

@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6): Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(tmp_path/f'{i}.png')
    return tmp_path

@pytest.mark.parametrize('min_scale', [1.0, 0.2])
def test_gan_dls_shapes_and_range(folder, min_scale):
    dls = gan_dls(folder, size=16, bs=4, min_scale=min_scale, repeat=2, num_workers=0)
    noise, real = dls.one_batch()
    assert noise.shape == (4, 100) and real.shape == (4, 3, 16, 16)
    assert real.min() >= -1.0001 and real.max() <= 1.0001
    assert len(dls.train_ds) == 12 and len(dls.valid_ds) == 0

def test_models_shapes():
    g, c = wgan_models(32)
    x = g(torch.randn(5, 100))
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert c(x).shape == (5, 1)

def test_gradient_penalty_known_values():
    lin = nn.Linear(10, 1, bias=False)
    r, f = torch.randn(6, 10), torch.randn(6, 10)
    with torch.no_grad(): lin.weight.copy_(torch.ones(1, 10) * 3 / 10 ** 0.5)  # gradient norm 3 everywhere
    gp = gradient_penalty(lin, r, f)
    assert math.isclose(gp.item(), 4.0, rel_tol=1e-5)  # (3-1)^2
    gp.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0, 'the penalty trains the critic'

@pytest.mark.parametrize('gp', [None, 10.])
def test_one_epoch_trains_and_records(folder, gp):
    torch.manual_seed(0)
    dls = gan_dls(folder, size=16, bs=4, repeat=4, num_workers=0)
    grid = SampleGrid(n=3)
    learn = wgan_learner(dls, gp=gp, cbs=grid)
    c0 = [p.detach().clone() for p in learn.model.critic.parameters()]
    learn.fit(1, 1e-4, wd=0)
    gt = learn.gan_trainer
    assert len(gt.crit_losses) >= 4 and all(math.isfinite(l) for l in gt.crit_losses + gt.gen_losses)
    assert any(not torch.equal(a, b) for a, b in zip(c0, learn.model.critic.parameters())), 'the critic was updated'
    assert len(grid.samples) == 1 and grid.samples[0].shape == (3, 3, 16, 16)
    if gp is None:  # weights clipped before every critic step
        assert max(p.abs().max().item() for p in learn.model.critic.parameters()) <= 0.01 + 5e-3

def test_models_greyscale_small():
    g, c = wgan_models(32, n_channels=1, n_features=8, n_extra_layers=0)
    x = g(torch.randn(3, 100))
    assert x.shape == (3, 1, 32, 32) and c(x).shape == (3, 1)

def test_tensor_gan_dls_pairs():
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    dls = tensor_gan_dls(pad32(x), bs=8, device='cpu')
    noise, real = dls.one_batch()
    assert noise.shape == (8, 100) and real.shape == (8, 1, 32, 32)
    assert real.min() >= -1 and real.max() <= 1 and (real[..., :2, :] == -1).all(), 'padding is black'
    assert len(dls.train) == 5 and len(dls.valid) == 0

def test_frechet_distance_known_values():
    torch.manual_seed(0)
    a, b = torch.randn(4000, 3), torch.randn(4000, 3)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) < 0.02
    assert frechet_distance(a, b + 2) == pytest.approx(12, rel=0.02)  # |mu|^2 = 3 * 2^2
    assert frechet_distance(a, 3 * b) == pytest.approx(3 * (3 - 1) ** 2, rel=0.05)  # tr(1 + 9 - 2*3) per dim

def test_frechet_distance_names_too_few_images():
    "An empty or one-image set (a test split smaller than asked for) is named, not a linear-algebra failure"
    a = torch.randn(50, 3)
    for bad in (a[:0], a[:1], torch.randn(50, 4), a[0]):
        with pytest.raises(ValueError, match='at least 2 images'): frechet_distance(a, bad)
    assert frechet_distance(a, a[:2]) >= 0  # two images: a (poor) score, not an error

def test_frechet_matches_torchmetrics_formula():
    tm = pytest.importorskip('torchmetrics.image.fid')
    torch.manual_seed(1)
    a, b = torch.randn(500, 5), torch.randn(500, 5) * 1.5 + 0.3
    ref = tm._compute_fid(a.double().mean(0), torch.cov(a.double().T), b.double().mean(0), torch.cov(b.double().T))
    assert frechet_distance(a, b) == pytest.approx(float(ref), rel=1e-4)

def test_fid_score_real_vs_real_small_and_noise_large():
    from imgcourse.resnet import resnet_mnist
    torch.manual_seed(0)
    clf = resnet_mnist().eval()
    real = torch.randint(0, 256, (64, 1, 32, 32), dtype=torch.uint8)
    fid = FIDScore(clf, (0.3, 0.35), real, bs=16)
    assert fid.features(real.float() / 127.5 - 1).shape == (64, 64)
    assert fid(real.float() / 127.5 - 1) == pytest.approx(0, abs=1e-3)
    assert fid(torch.full((64, 1, 32, 32), -1.)) > 0
    assert fid.classes(real.float() / 127.5 - 1).shape == (64,)

def test_shipped_fid_classifier_loads():
    clf, info = fid_classifier()
    if clf is None: pytest.skip('no data/weights/fid_fashion_resnet.pth')
    assert info['test_accuracy'] > 0.85 and len(info['stats']) == 2
    assert clf(torch.zeros(2, 1, 28, 28)).shape == (2, 10)

def _has_bn(m): return any(isinstance(o, nn.modules.batchnorm._BatchNorm) for o in m.modules())

def test_wgan_gp_critic_has_no_batch_norm(caplog):
    "The penalty is per image: a batch-norm critic mixes the images of a batch, so WGAN-GP builds its critic without it, and warns when given one"
    x = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    dls = tensor_gan_dls(x, bs=8, device='cpu')
    assert _has_bn(wgan_learner(dls).model.critic)  # the lesson's clipped critic keeps its batch norm
    with caplog.at_level(logging.INFO, logger='imgcourse'): learn = wgan_learner(dls, gp=10.)
    assert not _has_bn(learn.model.critic) and not caplog.records
    with caplog.at_level(logging.INFO, logger='imgcourse'): wgan_learner(dls, *wgan_models(16, n_channels=1, n_features=8, n_extra_layers=0), gp=10.)
    assert any('critic_norm=None' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    xb = torch.randn(4, 1, 16, 16, requires_grad=True)
    for norm, mixes in ((NormType.Batch, True), (None, False)):
        c = wgan_models(16, n_channels=1, n_features=8, n_extra_layers=0, critic_norm=norm)[1].train()
        g, = torch.autograd.grad(c(xb)[0].sum(), xb)
        assert (g[1:].abs().sum() > 0) == mixes  # does image 0's score depend on the other images?

def test_no_none_columns_and_fids_recorded():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (48, 1, 28, 28), dtype=torch.uint8)
    dls = tensor_gan_dls(pad32(x), bs=8, device='cpu')
    from imgcourse.resnet import resnet_mnist
    fid = FIDScore(resnet_mnist().eval(), (0.3, 0.35), pad32(x[:16]))
    grid = SampleGrid(n=2, fid=fid, n_fid=16)
    g, c = wgan_models(32, n_channels=1, n_features=8, n_extra_layers=0, critic_norm=None)
    learn = wgan_learner(dls, g, c, gp=10., cbs=grid)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, wd=0)
    assert 'valid_loss' not in learn.recorder.metric_names
    assert all(v is not None for v in learn.recorder.values[0])
    assert len(grid.fids) == 1 and math.isfinite(grid.fids[0])

def test_wgan_on_the_fast_path_logs_float_losses():
    "bf16 autocast on a GAN: the critic's losses come out in bf16, and the `BF16` callback hands float32 ones to fastai"
    from imgcourse.train import fast_path
    x = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8)  # 8 batches: 5 critic, 1 generator, 2 critic
    learn = fast_path(wgan_learner(tensor_gan_dls(x, bs=8), *wgan_models(16, n_channels=1, n_features=8, n_extra_layers=0)),
                      compile=False, bf16=True)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)
    gl, cl = learn.gan_trainer.gen_loss.value, learn.gan_trainer.crit_loss.value
    assert gl.dtype == cl.dtype == torch.float32 and math.isfinite(float(gl)) and math.isfinite(float(cl))

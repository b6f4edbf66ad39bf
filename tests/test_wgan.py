"Tests of `imgcourse.wgan`: data, models, gradient penalty, a training step."
import math
import numpy as np, pytest, torch, torch.nn as nn
from PIL import Image
from imgcourse.wgan import *

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

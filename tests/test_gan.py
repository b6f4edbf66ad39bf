"Tests of `imgcourse.gan`: saving generated images (no colour inversion), the critic's data and learner, GAN snapshots, the GAN learner."
import math
from pathlib import Path
import numpy as np, pytest, torch, torch.nn as nn
from PIL import Image
from fastai.vision.all import Learner, MSELossFlat, Callback
from imgcourse.data import crappified_name, load_rgb
from imgcourse.superres import sr_dls, crappy_dir, TinyUnet
from imgcourse.losses import FeatDist
from imgcourse.gan import *
from conftest import write_photos

@pytest.fixture
def photos(tmp_path):
    "Eight smooth, dark random photos: an inverted copy would be bright."
    return write_photos(tmp_path/'photos', top=70)

def identity():
    "A generator that is the identity: a 1x1 convolution with identity weights"
    m = nn.Conv2d(3, 3, 1)
    with torch.no_grad(): m.weight.copy_(torch.eye(3)[..., None, None]); m.bias.zero_()
    return m

def small_dist():
    "A cheap perceptual distance for tests"
    return FeatDist(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), layers=[1], min_size=16)

def _mean(f): return np.asarray(load_rgb(f), dtype=float).mean((0, 1))

# step 2: save_generated
def test_save_generated_identity_round_trip(photos, tmp_path):
    files = sorted(photos.glob('*.png'))
    out = save_generated(identity(), files, tmp_path/'image_gen', src=photos, size=24, lr_size=24)
    assert [o.name for o in out] == [f.name for f in files] and all(o.parent == tmp_path/'image_gen' for o in out)
    lr = crappy_dir(photos, 24)
    for f, g in zip(files, out):
        a = np.asarray(load_rgb(crappified_name(f, photos, lr)), dtype=int)   # the input, not resized at its own size
        b = np.asarray(Image.open(g), dtype=int)
        assert Image.open(g).mode == 'RGB' and a.shape == b.shape == (24, 30, 3)
        assert np.abs(a - b).max() <= 1                                      # the same pixels, within 1/255

def test_save_generated_keeps_colours(photos, tmp_path):
    files = sorted(photos.glob('*.png'))
    out = save_generated(identity(), files, tmp_path/'gen', src=photos, size=None, lr_size=24)
    for f, g in zip(files, out):
        assert Image.open(g).size == Image.open(f).size                       # size=None: the original's size
        m_orig, m_gen = _mean(f), _mean(g)
        assert np.abs(m_gen - m_orig).max() < 12                              # close to the original's colour ...
        assert np.abs((255 - m_gen) - m_orig).max() > 100                     # ... and far from its negative

def test_save_generated_sizes_and_subfolders(tmp_path):
    src = tmp_path/'src'; (src/'a').mkdir(parents=True)
    Image.new('RGB', (90, 60), (10, 200, 30)).save(src/'a'/'wide.jpg')
    Image.new('RGB', (40, 100), (200, 10, 30)).save(src/'tall.png')
    out = save_generated(identity(), [src/'a'/'wide.jpg', src/'tall.png'], tmp_path/'gen', src=src, size=32, lr_size=48)
    assert out == [tmp_path/'gen'/'a'/'wide.png', tmp_path/'gen'/'tall.png']
    assert Image.open(out[0]).size == (48, 32) and Image.open(out[1]).size == (32, 80)
    assert not list((tmp_path/'gen').rglob('.*.part'))                       # no half-written files left

def test_save_generated_bad_input(photos, tmp_path):
    with pytest.raises(ValueError, match='no files'): save_generated(identity(), [], tmp_path/'g', src=photos)
    with pytest.raises(ValueError, match='inside the originals folder'):
        save_generated(identity(), sorted(photos.glob('*.png')), photos/'image_gen', src=photos)
    assert not (photos/'image_gen').exists()

# step 3: the critic
@pytest.fixture
def gen_folder(photos, tmp_path):
    return photos, save_generated(identity(), sorted(photos.glob('*.png')), tmp_path/'image_gen', src=photos, size=32, lr_size=24)

def test_crit_dls_labels_and_shapes(gen_folder):
    photos, gens = gen_folder
    dls = crit_dls(photos, gens[0].parent, size=32, bs=4, valid_pct=0.25, num_workers=0)
    assert list(dls.vocab) == ['generated', 'original'] == CRIT_VOCAB
    x, y = dls.one_batch()
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    assert len(items) == 16 and set(items) == set(photos.glob('*.png')) | set(gens)
    for ds in (dls.train_ds, dls.valid_ds):                                  # generated=0, original=1 (real=1 in fastai's GAN loss)
        assert [int(t) for t in ds.tls[1]] == [int(f not in set(gens)) for f in ds.items]
    d3 = crit_dls(sorted(photos.glob('*.png')), gens[0].parent, size=32, bs=4, valid_pct=0.25, repeat=3, num_workers=0)
    assert len(d3.train_ds) == 3*len(dls.train_ds) and list(d3.valid_ds.items) == list(dls.valid_ds.items)

def test_crit_dls_clear_errors(gen_folder, tmp_path):
    photos, gens = gen_folder
    with pytest.raises(FileNotFoundError, match='run step 2'): crit_dls(photos, tmp_path/'missing')
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='run step 2'): crit_dls(photos, tmp_path/'empty')
    inside = photos/'image_gen'; inside.mkdir()
    Image.new('RGB', (32, 32)).save(inside/'x.png')
    with pytest.raises(ValueError, match='inside the originals folder'): crit_dls(photos, inside)
    with pytest.raises(ValueError, match='no original images'): crit_dls([], gens[0].parent)

def test_crit_learner(gen_folder):
    photos, gens = gen_folder
    dls = crit_dls(photos, gens[0].parent, size=32, bs=4, valid_pct=0.25, num_workers=0)
    crit = crit_learner(dls, nf=8, n_blocks=2, path=photos.parent/'work')
    x, _ = dls.one_batch()
    assert crit.model.eval()(x).shape == (4, 1)
    with pytest.raises(ValueError, match='at least 64 px'): crit_learner(dls, n_blocks=3)
    with crit.no_bar(), crit.no_logging(): crit.fit(1, 1e-3)
    loss, acc = crit.recorder.values[-1][1:3]
    assert math.isfinite(loss) and 0 <= acc <= 1
    dls._device = torch.device('meta')  # as if the batches went to a GPU: another device than models are built on (the loaders stay)
    assert {p.device.type for p in crit_learner(dls, nf=8, n_blocks=2, path=photos.parent/'work').model.parameters()} == {'meta'}

# snapshots
@pytest.fixture
def sr_pairs(photos):
    return sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)

def tiny_gen(dls, path):
    return Learner(dls, TinyUnet(nfs=(8, 16), y_range=(-3., 3.)), loss_func=MSELossFlat(), path=path)

def test_snapshots_one_per_epoch_and_best_loads_exactly(sr_pairs, tmp_path):
    torch.manual_seed(0)
    learn = tiny_gen(sr_pairs, tmp_path)
    snaps = GenSnapshots(sr_pairs.valid, tmp_path/'snaps', dist=small_dist(), n_show=2)
    before, shown = snaps.score(learn)
    assert set(before) == {'PSNR (dB)', 'SSIM', 'FeatDist'} and shown.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match='no snapshots yet'): best_snapshot(snaps)
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 1e-3, cbs=snaps)
        learn.fit(1, 1e-3, cbs=snaps)                                         # epochs keep counting over fits
    assert sorted(p.name for p in (tmp_path/'snaps').glob('*.pth')) == ['gan_0.pth', 'gan_1.pth', 'gan_2.pth']
    t = snaps.table
    assert list(t.index) == [0, 1, 2] and np.isfinite(t[['PSNR (dB)', 'SSIM', 'FeatDist']].values).all()
    assert len(snaps.samples) == 3 and snaps.samples[0].shape == (2, 3, 32, 32)
    # the table's score is the score of the saved weights
    m = TinyUnet(nfs=(8, 16), y_range=(-3., 3.))
    load_snapshot(m, t.loc[1, 'file'])
    assert snaps.score(m)[0]['FeatDist'] == pytest.approx(t.loc[1, 'FeatDist'], rel=1e-5)
    assert snaps.metric == 'FeatDist' and best_snapshot(snaps).name == t['FeatDist'].idxmin()   # offline: no LPIPS
    for metric, pick in (('FeatDist', t['FeatDist'].idxmin()), ('PSNR (dB)', t['PSNR (dB)'].idxmax()), ('SSIM', t['SSIM'].idxmax())):
        assert best_snapshot(snaps, metric).name == pick
        ep = load_best(learn, snaps, metric)
        saved = torch.load(t.loc[ep, 'file'], weights_only=True)
        assert ep == pick and all(torch.equal(v, saved[k]) for k, v in learn.model.state_dict().items())
    with pytest.raises(KeyError, match='not a score'): best_snapshot(snaps, 'LPIPS')
    with pytest.raises(ValueError, match='metric must be'): GenSnapshots(sr_pairs.valid, tmp_path, metric='accuracy')

def test_snapshots_keep_best(sr_pairs, tmp_path):
    learn = tiny_gen(sr_pairs, tmp_path)
    snaps = GenSnapshots(sr_pairs.valid, tmp_path/'snaps', dist=small_dist(), keep_best=2, metric='PSNR (dB)')
    with learn.no_bar(), learn.no_logging(): learn.fit(4, 1e-3, cbs=snaps)
    t = snaps.table
    assert len(t) == 4 and t['file'].notna().sum() == 2 and len(list((tmp_path/'snaps').glob('*.pth'))) == 2
    assert set(t[t['file'].notna()].index) == set(t['PSNR (dB)'].nlargest(2).index)
    assert best_snapshot(snaps, 'PSNR (dB)').name == t['PSNR (dB)'].idxmax()

# step 4: the GAN
class _Watch(Callback):
    "Record the learning rate after each training batch and the generator's mode during validation"
    order = 99
    def before_fit(self): self.lrs, self.gen_modes, self.valid_train = [], [], []
    def after_batch(self):
        if self.training: self.lrs.append(self.opt.hypers[0]['lr']); self.gen_modes.append(self.learn.gan_trainer.gen_mode)
        else: self.valid_train.append(self.learn.model.generator.training)

def test_gan_learner_trains_one_step(sr_pairs, gen_folder, tmp_path):
    torch.manual_seed(0)
    photos, gens = gen_folder
    gen = tiny_gen(sr_pairs, tmp_path)
    crit = crit_learner(crit_dls(photos, gens[0].parent, size=32, bs=2, valid_pct=0.25, num_workers=0), nf=8, n_blocks=2, path=tmp_path)
    for p in list(gen.model.parameters())[:4]: p.requires_grad_(False)      # a partly frozen generator, as after `freeze()`
    watch = _Watch()
    learn = gan_learner(gen, crit, critic_thresh=10., cbs=watch)            # threshold 10: switch after every critic batch
    assert learn.model.generator is gen.model and learn.model.critic is crit.model
    assert all(p.requires_grad for p in learn.model.parameters())
    learn.create_opt()
    assert sum(p.numel() for p in learn.opt.all_params(with_grad=False).itemgot(0)) == sum(p.numel() for p in learn.model.parameters())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4)
    gt = learn.gan_trainer
    assert gt.crit_losses and gt.gen_losses, 'both networks trained'
    assert all(map(math.isfinite, gt.crit_losses + gt.gen_losses))
    assert all(math.isfinite(float(v)) for v in learn.recorder.values[-1])
    assert True in watch.gen_modes and False in watch.gen_modes
    assert all(lr == pytest.approx(1e-4) for lr in watch.lrs), 'the critic\'s 5x rate is undone after each of its batches'
    assert watch.valid_train and not any(watch.valid_train), 'validation runs the generator in eval mode'

def test_gan_learner_needs_learners(sr_pairs, tmp_path):
    gen = tiny_gen(sr_pairs, tmp_path)
    with pytest.raises(TypeError, match='crit'): gan_learner(gen, nn.Linear(2, 2))
    with pytest.raises(TypeError, match='gen'): gan_learner(gen.model, gen)

def test_snapshot_errors_name_the_file(sr_pairs, tmp_path):
    learn = tiny_gen(sr_pairs, tmp_path)
    snaps = GenSnapshots(sr_pairs.valid, tmp_path/'snaps', dist=small_dist(), keep_best=1, metric='PSNR (dB)')
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3, cbs=snaps)
    assert not list((tmp_path/'snaps').glob('*.tmp'))                     # written atomically, no temp left
    m = TinyUnet(nfs=(8, 16), y_range=(-3., 3.))
    bad = tmp_path/'bad.pth'; bad.write_bytes(b'\x80\x02 not a checkpoint')
    with pytest.raises(RuntimeError, match='bad.pth is corrupt'): load_snapshot(m, bad)
    empty = tmp_path/'empty.pth'; empty.write_bytes(b'')
    with pytest.raises(RuntimeError, match='empty.pth is corrupt'): load_snapshot(m, empty)
    with pytest.raises(FileNotFoundError, match='missing.pth'): load_snapshot(m, tmp_path/'missing.pth')
    for r in snaps.rows:
        if r['file']: Path(r['file']).unlink(); r['file'] = None
    with pytest.raises(FileNotFoundError, match='pruned'): load_best(learn, snaps)

def test_critic_accuracy_counts_patches():
    class Const(nn.Module):
        def __init__(self, v): super().__init__(); self.v, self.w = v, nn.Parameter(torch.zeros(1))
        def forward(self, x): return torch.full((len(x), 4), self.v)
    b = [(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))]
    assert critic_accuracy(Const(1.), nn.Identity(), b) == 0.5          # calls everything original
    class Split(Const):
        def forward(self, x): return torch.where(x.mean((1, 2, 3)) > 0, 1., -1.)[:, None].expand(-1, 4)
    assert critic_accuracy(Split(0.), nn.Sequential(nn.Identity()), [(-torch.ones(2, 3, 8, 8), torch.ones(2, 3, 8, 8))]) == 1.

def test_imagenet_io_wraps_a_unit_range_model(tmp_path):
    "`ImageNetIO(SRNet)` upscales exactly as the bare model does, and saves only the model's weights"
    from imgcourse.superres import load_upscaler, upscale
    m = load_upscaler(); w = ImageNetIO(m)
    img = Image.fromarray((np.random.default_rng(0).random((20, 24, 3))*255).astype(np.uint8))
    a, b = np.asarray(upscale(m, img), dtype=int), np.asarray(upscale(w, img), dtype=int)
    assert a.shape == b.shape == (40, 48, 3) and np.abs(a - b).max() <= 1
    assert set(w.state_dict()) == {'m.' + k for k in m.state_dict()}
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(ImageNetIO(nn.Identity())(x), x, atol=1e-5)

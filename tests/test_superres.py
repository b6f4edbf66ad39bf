"Tests of `imgcourse.superres`: the hand-written U-Net, the metrics against known values, the paired data, `upscale` on any image mode, checkpoint/resume."
import math, os, re
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
from PIL import Image
from fastai.vision.all import Learner, MSELossFlat, OptimWrapper, CancelFitException, Callback, resnet18, imagenet_stats
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from imgcourse.superres import *
from imgcourse.train import *
from imgcourse.metrics import *

# the hand-written U-Net
@pytest.mark.parametrize('shape', [(2, 3, 64, 64), (1, 3, 50, 70), (1, 3, 32, 48)])
def test_tiny_unet_keeps_size(shape):
    m = TinyUnet()
    assert m(torch.randn(shape)).shape == shape

def test_tiny_unet_skips():
    m = TinyUnet(nfs=(8, 16, 32))
    m(torch.randn(2, 3, 32, 32))
    assert [s[1:] for s in m.skip_shapes] == [(8, 32, 32), (16, 16, 16)]   # each encoder resolution, kept for the decoder
    assert [mg[0][0].in_channels for mg in m.merges] == [32, 16]            # concatenated: skip + upsampled
    # with the path through the bottom cut, the output still depends on the input: through the skips
    for up in m.ups: up.forward = lambda x: torch.zeros(x.shape[0], x.shape[1]//2, x.shape[2]*2, x.shape[3]*2)
    m.eval()
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    assert not torch.allclose(m(a), m(b))

def test_tiny_unet_y_range():
    out = TinyUnet(y_range=(-3., 3.))(torch.randn(2, 3, 32, 32)*100)
    assert out.min() >= -3 and out.max() <= 3

# metrics
def test_psnr_identical_is_capped():
    a = torch.rand(2, 3, 16, 16)
    assert float(psnr(a, a, stats=None)) == pytest.approx(100.)
    assert float(psnr(a, a, stats=None, max_db=60.)) == pytest.approx(60.)

@pytest.mark.parametrize('amp', [0.01, 0.05, 0.2])
def test_psnr_known_noise(amp):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4, 3, 64, 64, generator=g)*(1 - 2*amp) + amp        # noise stays inside [0, 1]: no clamping
    noisy = a + (torch.rand(a.shape, generator=g)*2 - 1)*amp            # uniform on [-amp, amp]: MSE = amp^2/3
    assert float(psnr(noisy, a, stats=None)) == pytest.approx(10*math.log10(3/amp**2), abs=0.05)
    ref = tm_psnr(noisy, a, data_range=1.0, reduction='none', dim=(1, 2, 3)).mean()
    assert float(psnr(noisy, a, stats=None)) == pytest.approx(float(ref), abs=1e-3)

def test_psnr_undoes_normalisation():
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    m, s = (torch.tensor(v).view(1, -1, 1, 1) for v in imagenet_stats)
    assert float(psnr((a - m)/s, (b - m)/s)) == pytest.approx(float(psnr(a, b, stats=None)), abs=1e-4)

def test_ssim_values():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 32, 32, generator=g)
    assert float(ssim(a, a, stats=None)) == pytest.approx(1., abs=1e-5)
    s1 = float(ssim(a + 0.05*torch.randn(a.shape, generator=g), a, stats=None))
    s2 = float(ssim(a + 0.3*torch.randn(a.shape, generator=g), a, stats=None))
    assert 1 > s1 > s2

# data
def test_sr_dls_pairs(photos):
    dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    x, y = dls.one_batch()
    assert x.shape == y.shape == (2, 3, 32, 32)
    assert len(dls.valid_ds) == 2 and len(dls.train_ds) == 6
    assert len(list((crappy_dir(photos, 24)).glob('*.jpg'))) == 8          # crappified copies, in the cache
    base = bicubic_metrics(dls)
    assert all(map(math.isfinite, base.values())) and base == bicubic_metrics(dls)
    d3 = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, repeat=3, num_workers=0)
    assert len(d3.train_ds) == 18 and list(d3.valid_ds.items) == list(dls.valid_ds.items)

def test_sr_dls_bad_folders(photos, tmp_path, caplog):
    empty = tmp_path/'empty'; empty.mkdir()
    with pytest.raises(FileNotFoundError, match='no image files'): sr_dls(empty)
    (photos/'broken.jpg').write_bytes(b'not a jpeg')
    with caplog.at_level('WARNING', logger='imgcourse'):
        dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    assert 'broken.jpg' in caplog.text
    assert len(dls.train_ds) + len(dls.valid_ds) == 8
    with pytest.raises(ValueError, match='at least one'): sr_dls(photos, n_items=3, valid_pct=0.1)

# upscale
@pytest.mark.parametrize('mode,out_mode', [('L', 'L'), ('RGB', 'RGB'), ('RGBA', 'RGBA'), ('I;16', 'L'), ('P', 'RGB'), ('LA', 'RGBA')])
def test_upscale_modes(mode, out_mode):
    m = TinyUnet(nfs=(8, 16))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 45, 3), dtype=np.uint8)).convert(mode)
    out = upscale(m, img, scale=2)
    assert out.size == (90, 60) and out.mode == out_mode
    assert upscale(m, img, size=(50, 33)).size == (50, 33)
    assert upscale(m, img, scale=2, keep_mode=False).mode == 'RGB'

def test_upscale_path_and_alpha(tmp_path):
    m = TinyUnet(nfs=(8, 16))
    a = np.zeros((20, 24, 4), np.uint8); a[..., 3] = 255; a[:10, :, 3] = 0
    f = tmp_path/'t.png'; Image.fromarray(a, 'RGBA').save(f)
    out = upscale(m, f, scale=3)
    assert out.size == (72, 60) and out.mode == 'RGBA'
    alpha = np.asarray(out.getchannel('A'))
    assert alpha[:20].mean() < 30 and alpha[40:].mean() > 225      # the transparent half stays transparent
    with pytest.raises(TypeError): upscale(m, 3)
    (tmp_path/'bad.png').write_bytes(b'nope')
    with pytest.raises(ValueError, match='bad.png'): upscale(m, tmp_path/'bad.png')

def test_upscale_weightless_model_is_bicubic():
    "A model with no weights (the identity) works, and gives back the bicubic upsampling itself"
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 45, 3), dtype=np.uint8))
    out = np.asarray(upscale(nn.Identity(), img, size=(64, 48)), dtype=int)
    ref = np.asarray(img.resize((64, 48), Image.BICUBIC), dtype=int)
    assert np.abs(out - ref).max() <= 1

# learner, training, checkpoints
def test_sr_learner_builds(photos):
    dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    learn = sr_learner(dls, arch=resnet18, path=photos.parent/'work')
    assert learn.precision == 'fp32' and learn.wd == 1e-3
    x, _ = dls.one_batch()
    with torch.no_grad(): out = learn.model.eval()(x)
    assert out.shape == x.shape and out.min() >= -3 and out.max() <= 3

def test_sr_learner_puts_the_model_on_the_datas_device(photos):
    "fastai moves a model to the data's device only when a fit starts; a batch must go through it before that (on a GPU too)"
    dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    dls._device = torch.device('meta')  # as if the batches went to a GPU: another device than models are built on (the loaders stay)
    learn = sr_learner(dls, arch=resnet18, path=photos.parent/'work')
    assert {p.device.type for p in learn.model.parameters()} == {'meta'}

def test_zero_last_conv_kinds():
    "Plain, old-style weight-normalised and parametrised weight-normalised convolutions all end up computing zero"
    from torch.nn.utils import weight_norm
    from torch.nn.utils.parametrizations import weight_norm as pweight_norm
    x = torch.randn(2, 3, 8, 8)
    for last in (nn.Conv2d(4, 3, 1), weight_norm(nn.Conv2d(4, 3, 1)), pweight_norm(nn.Conv2d(4, 3, 1))):
        m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), last)
        assert m(x).abs().max() > 0
        zero_last_conv(m)
        assert m(x).abs().max() == 0
        assert m[0].weight.abs().max() > 0                                    # only the last one
    with pytest.raises(ValueError, match='no Conv2d'): zero_last_conv(nn.Linear(2, 2))

def test_make_residual_starts_at_bicubic(photos):
    dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    learn = sr_learner(dls, arch=resnet18, pretrained=False, path=photos.parent/'work')
    n_groups = len(learn.splitter(learn.model))
    r = make_residual(learn)
    assert isinstance(r.model, GlobalResidual) and r.arch_name == 'resnet18, residual'
    x, _ = dls.valid.one_batch()
    with torch.no_grad(): assert torch.equal(r.model.eval()(x), x)          # the identity at first
    assert len(r.splitter(r.model)) == n_groups                                # freezing still works
    r.freeze()                                                                 # the encoder's convolutions are frozen
    assert not any(p.requires_grad for p in r.splitter(r.model)[0] if p.ndim == 4)
    assert abs(r.validate()[1] - bicubic_metrics(dls)['psnr']) < 1e-3         # bicubic's PSNR
    r.unfreeze(); r.fit(1, 1e-3)                                               # and it trains: no longer the identity
    with torch.no_grad(): assert not torch.equal(r.model.eval()(x), x)
    with pytest.raises(ValueError, match='residual already'): make_residual(r)
    asym = sr_learner(dls, arch=resnet18, pretrained=False, y_range=(0., 1.), path=photos.parent/'work')
    with pytest.raises(ValueError, match='centred on 0'): make_residual(asym)

class _Stop(Callback):
    order = 70
    def after_epoch(self):
        if self.epoch == 0: raise CancelFitException()

def test_fit_resumable_resumes(photos, tmp_path):
    dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    mk = lambda: Learner(dls, TinyUnet(nfs=(8, 16), y_range=(-3., 3.)), loss_func=MSELossFlat(), path=tmp_path/'w')
    learn = mk()
    with learn.no_bar(), learn.no_logging(): fit_resumable(learn, 2, 1e-3, fname='t', cbs=_Stop())
    assert list(checkpoints(learn, 't')) == [0]
    learn = mk()
    with learn.no_bar(), learn.no_logging(): fit_resumable(learn, 2, 1e-3, fname='t')
    assert list(checkpoints(learn, 't')) == [1]                      # only the latest is kept
    assert len([v for v in learn.recorder.values if v]) == 1           # epoch 0 was not trained again

def test_speed_up_trains(photos):
    dls = sr_dls(photos, size=32, bs=2, valid_pct=0.25, lr_size=24, num_workers=0)
    learn = speed_up(Learner(dls, TinyUnet(nfs=(8, 16), y_range=(-3., 3.)), loss_func=MSELossFlat(), metrics=[psnr, ssim]))
    with learn.no_logging(): learn.fit(2, 1e-3)
    assert isinstance(learn.opt, OptimWrapper)
    assert all(l.device.type == 'cpu' and math.isfinite(float(l)) for l in learn.recorder.losses)
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])

# the shipped upscaler, tiling, bad input
def test_srnet_identity_at_init_and_sizes():
    m = SRNet(nf=8, nb=2)
    for shape in [(1, 3, 33, 47), (2, 3, 16, 16)]:
        x = torch.rand(shape); assert torch.equal(m(x), x)

def test_tiled_equals_untiled():
    torch.manual_seed(0)
    m = SRNet(nf=8, nb=3)
    nn.init.normal_(m.tail.weight, std=0.05)                       # a model that does something
    x = torch.rand(1, 3, 150, 230)
    whole = upscale_fn(m, tile=512)(x)
    tiled = upscale_fn(m, tile=112, overlap=24)(x)
    assert not torch.equal(whole, x)
    assert (whole - tiled).abs().max() < 1e-4

def test_upscale_bad_args_and_models():
    m = SRNet(nf=8, nb=1)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    for s in (0, -1., float('nan')):
        with pytest.raises(ValueError, match='scale'): upscale(m, img, scale=s)
    with pytest.raises(ValueError, match='size'): upscale(m, img, size=(0, 10))
    with pytest.raises(ValueError, match='multiple'): upscale(m, img, multiple=0)
    clf = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match='image-to-image'): upscale(clf, img)
    assert upscale(m, img, scale=2.5).size == (75, 50)

def test_upscale_exif(tmp_path):
    "A photo stored sideways with an EXIF orientation tag comes out upright"
    a = np.zeros((20, 40, 3), np.uint8); a[:, :20] = 255           # 40 wide, 20 high, left half white
    im = Image.fromarray(a); ex = im.getexif(); ex[0x0112] = 6       # orientation 6: rotate 90 degrees clockwise to view
    im.save(tmp_path/'r.jpg', exif=ex, quality=95)
    out = upscale(SRNet(nf=8, nb=1), tmp_path/'r.jpg', scale=2)
    assert out.size == (40, 80)                                      # upright: 20 wide, 40 high, times 2
    out2 = upscale(SRNet(nf=8, nb=1), Image.open(tmp_path/'r.jpg'), scale=2)
    assert out2.size == (40, 80)

def test_load_upscaler_shipped_and_errors(tmp_path):
    m = load_upscaler()
    assert isinstance(m, SRNet) and not m.training
    with pytest.raises(FileNotFoundError, match='train_upscaler.py'): load_upscaler(tmp_path/'none.pth')
    (tmp_path/'bad.pth').write_bytes(b'not weights')
    with pytest.raises(ValueError, match='bad.pth'): load_upscaler(tmp_path/'bad.pth')
    save_upscaler(SRNet(nf=8, nb=2), tmp_path/'s.pth', steps=0)
    m2 = load_upscaler(tmp_path/'s.pth')
    assert m2.head.out_channels == 8 and len(m2.body) == 2

def test_cli_and_train_script(tmp_path):
    import runpy, sys
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)); img.save(tmp_path/'in.png')
    upscale_cli([str(tmp_path/'in.png'), str(tmp_path/'out.png'), '--scale', '2'])
    assert Image.open(tmp_path/'out.png').size == (60, 40)
    sys.path.insert(0, str(Path(__file__).parents[1]/'scripts'))
    import train_upscaler as tu
    out = tu.main(['--epochs', '1', '--steps', '2', '--bs', '2', '--size', '48', '--nf', '8', '--nb', '1', '--threads', '1',
                   '--no-eval', '--out', str(tmp_path/'u.pth')])
    meta = __import__('json').loads((tmp_path/'u.json').read_text())
    assert meta['steps'] == 2 and meta['arch'] == dict(nf=8, nb=1, down=2) and 'wall_s' in meta
    assert isinstance(load_upscaler(out), SRNet)

def test_residual_tiny_unet_starts_at_bicubic():
    "The skip comparison's models: `GlobalResidual(TinyUnet(skips=...))` is the identity at init, with or without skips"
    for skips in (True, False):
        m = GlobalResidual(TinyUnet(skips=skips)).eval(); m.stats, m.multiple = None, 8
        x = torch.rand(1, 3, 40, 56)
        assert torch.equal(upscale_fn(m)(x), x)

def test_bench_sr_quality_smoke():
    "bench/sr_quality.py: heldout_eval for bicubic, the shipped upscaler and a freshly trained one, in seconds"
    import subprocess, sys
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(root)}
    r = subprocess.run([sys.executable, str(root/'bench'/'sr_quality.py'), '--epochs', '1', '--steps', '2', '--bs', '2',
                        '--size', '48', '--n-photos', '1', '--max-side', '64', '--threads', '1'],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for s in ('PSNR-Y', 'bicubic', 'shipped', 'trained here', 'python scripts/train_upscaler.py --epochs 1 --steps 2', 'lesson+number'):
        assert s in r.stdout, (s, r.stdout)

def test_upscale_crops_soft_targets_are_softer():
    "`soft=1` blurs every training target a little (photos whose detail is soft to begin with); the pairs stay aligned"
    from imgcourse.losses import lap_energy
    files = sr_split()[0][:3]
    sharp, soft = (UpscaleCrops(files, 16, 64, fixed=True, soft=s) for s in (0., 1.))
    e = lambda ds: sum(lap_energy(ds[i][1][None]).item() for i in range(len(ds)))
    assert e(soft) < 0.8*e(sharp)
    x, y = soft[0]
    assert x.shape == y.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1

def test_train_script_keeps_what_exists_and_refuses_nonsense(tmp_path, capsys):
    "scripts/train_upscaler.py: an existing --out (the shipped weights by default) is replaced only with --force; sizes must be positive"
    import sys
    sys.path.insert(0, str(Path(__file__).parents[1]/'scripts'))
    import train_upscaler as tu
    shipped = Path(tu.data_dir())/'weights'/'upscaler.pth'
    before = shipped.read_bytes()
    tiny = ['--epochs', '1', '--steps', '1', '--bs', '2', '--size', '48', '--nf', '8', '--nb', '1', '--threads', '1', '--no-eval']
    for args, says in ((tiny, '--force'), (tiny + ['--out', str(tmp_path/'u.pth'), '--epochs', '0'], '--epochs 0'),
                       (tiny + ['--out', str(tmp_path/'u.pth'), '--bs', '-1', '--steps', '0'], '--steps 0, --bs -1'),
                       (tiny + ['--out', str(tmp_path/'u.pth'), '--photos', str(tmp_path)], 'no split.json')):
        with pytest.raises(SystemExit): tu.main(args)
        assert says in capsys.readouterr().err
    assert shipped.read_bytes() == before and not (tmp_path/'u.pth').exists()
    (tmp_path/'u.pth').write_bytes(b'mine')
    with pytest.raises(SystemExit): tu.main(tiny + ['--out', str(tmp_path/'u.pth')])
    assert (tmp_path/'u.pth').read_bytes() == b'mine'
    tu.main(tiny + ['--out', str(tmp_path/'u.pth'), '--force'])
    assert isinstance(load_upscaler(tmp_path/'u.pth'), SRNet)

def test_cli_never_loses_the_input_and_checks_the_output_first(tmp_path, capsys):
    "`python -m imgcourse.superres`: the input as output is refused (it overwrote the photo), a bad output path fails before any work, JPEG drops alpha"
    src = tmp_path/'a.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 4), dtype=np.uint8), 'RGBA').save(src)
    before = src.read_bytes()
    (tmp_path/'bad.png').write_bytes(b'not an image')
    for args, says in (([src, src], 'is the input'), ([src, tmp_path/'o.xyz'], 'cannot tell the format'), ([src, tmp_path/'no'/'o.png'], 'no such folder'),
                       ([tmp_path/'none.png', tmp_path/'o.png'], 'no such file'), ([src, tmp_path/'o.png', '--scale', '0'], 'positive factor')):
        with pytest.raises(SystemExit): upscale_cli([str(a) for a in args])
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit, match='not an image'): upscale_cli([str(tmp_path/'bad.png'), str(tmp_path/'o.png')])
    assert src.read_bytes() == before and not (tmp_path/'o.png').exists()
    upscale_cli([str(src), str(tmp_path/'o.jpg')])
    assert Image.open(tmp_path/'o.jpg').mode == 'RGB' and Image.open(tmp_path/'o.jpg').size == (60, 40)
    assert [f.name for f in tmp_path.iterdir() if '.part' in f.name] == []

def test_sr_dls_names_bad_sizes_before_any_work(tmp_path):
    "size=0 gave 'Could not do one pass in your dataloader' and bs=0 failed only at the first batch; now one error names each, and nothing is crappified"
    for kw, says in ((dict(size=0), 'size=0'), (dict(size=-3), 'size=-3'), (dict(bs=0), 'bs=0'), (dict(valid_pct=1.5), 'valid_pct=1.5'),
                     (dict(lr_size=0, repeat=0), 'lr_size=0, repeat=0')):
        with pytest.raises(ValueError, match=re.escape(says)): sr_dls(dest=tmp_path/'crappy', **kw)
    assert not (tmp_path/'crappy').exists()

def test_sr_dls_takes_a_rectangle_and_numpy_sizes(tmp_path):
    "`size=(h, w)` gives rectangular batches, and numpy integers are sizes too"
    d = sr_dls(size=(32, 48), bs=np.int64(2), n_items=4, valid_pct=0.25, dest=tmp_path/'crappy', num_workers=0)
    x, y = d.one_batch()
    assert x.shape[-2:] == (32, 48) and y.shape == x.shape

# a big photo folder (Pets online, your own): CPU mode takes a fixed subset, and opens only it
def _folder(d, n):
    d.mkdir()
    for i in range(n): Image.new('RGB', (40, 30), (i*8 % 256, 0, 0)).save(d/f'{i:02d}.png')
    return d

def test_sr_files_subset_of_a_big_folder(tmp_path):
    src, fs = sr_files(_folder(tmp_path/'big', 30), n_items=7)
    assert src == tmp_path/'big' and len(fs) == 7
    assert sr_files(src, n_items=7)[1] == fs                    # the same photos every run
    assert len(sr_files(src)[1]) == 30                          # None: all of them

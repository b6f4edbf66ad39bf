"Tests of the held-out evaluation in `imgcourse.metrics`: degradations, PSNR-Y with shave, RGB PSNR, SSIM, colour shift."
import math
import numpy as np, pytest, torch
from PIL import Image
from imgcourse.metrics import *

def _photo(w=96, h=72, seed=0):
    a = np.random.default_rng(seed).integers(0, 255, (h//8, w//8, 3), dtype=np.uint8)
    return Image.fromarray(a).resize((w, h), Image.BICUBIC)

def test_y_constants():
    "BT.601: black is 16, white 235, and the three weights in 0..255 units"
    assert float(rgb_to_y(torch.zeros(3, 1, 1))) == pytest.approx(16)
    assert float(rgb_to_y(torch.ones(3, 1, 1))) == pytest.approx(235, abs=1e-3)
    for i, w in enumerate((65.481, 128.553, 24.966)):
        e = torch.zeros(3, 1, 1); e[i] = 1
        assert float(rgb_to_y(e)) - 16 == pytest.approx(w, abs=1e-4)

@pytest.mark.parametrize('k', [2, 5, 10])
def test_psnr_known_error(k):
    "A constant error of k/255 on every pixel: RGB PSNR = 20 log10(255/k); on Y the error is k * (sum of weights)/255"
    a = torch.full((3, 32, 32), 100/255)
    b = a + k/255
    assert psnr_rgb(b, a) == pytest.approx(20*math.log10(255/k), abs=1e-3)
    dy = k/255*(65.481 + 128.553 + 24.966)
    assert psnr_y(b, a) == pytest.approx(20*math.log10(255/dy), abs=1e-3)

def test_shave():
    a, b = torch.rand(3, 40, 40), torch.rand(3, 40, 40)
    assert shave(a, 4).shape == (3, 32, 32) and shave(a, 0) is a
    b2 = b.clone(); b2[:, :3] = 1 - b[:, :3]                 # damage only the border
    assert psnr_y(b2, a, 3) == pytest.approx(psnr_y(b, a, 3))
    assert psnr_y(b2, a) != pytest.approx(psnr_y(b, a))

def test_identical_and_ssim():
    a = torch.rand(3, 32, 32)
    assert psnr_y(a, a) == pytest.approx(100, abs=1e-3)      # capped, not infinite
    assert ssim_rgb(a, a) == pytest.approx(1, abs=1e-5)
    assert ssim_rgb(a, (a + 0.05*torch.randn_like(a)).clamp(0, 1)) > ssim_rgb(a, (a + 0.3*torch.randn_like(a)).clamp(0, 1))

def test_channel_shift():
    a = torch.full((3, 8, 8), 0.5)
    b = a.clone(); b[2] += 10/255
    assert channel_shift(b, a) == pytest.approx([0, 0, 10], abs=1e-3)

def test_degrade_kinds_deterministic():
    im = _photo()
    for kind in ('x2', 'x3', 'x4', 'lesson', 'lesson+number'):
        i1, t1 = degrade(im, kind, seed=3); i2, t2 = degrade(im, kind, seed=3)
        assert i1.shape == t1.shape and torch.equal(i1, i2) and torch.equal(t1, t2)
    i, t = degrade(_photo(99, 70), 'x4')
    assert t.shape == (3, 68, 96)                             # cropped to a multiple of the scale
    assert not torch.equal(degrade(im, 'lesson', seed=1)[0], degrade(im, 'lesson+number', seed=1)[0])
    for bad in ('x1', 'x0', 'y2', 'lesson2', ''):
        with pytest.raises(ValueError, match='kind'): degrade(im, bad)

def test_heldout_eval(tmp_path):
    fs = []
    for i in range(2):
        f = tmp_path/f'p{i}.jpg'; _photo(seed=i).save(f, quality=95); fs.append(f)
    t = heldout_eval(lambda x: x, fs)
    assert list(t.index) == list(KINDS) and (t.n == 2).all()
    assert float(t.d_psnr_y.abs().max()) == 0 and float(t.d_ssim.abs().max()) == 0
    t2 = heldout_eval(lambda x: x, fs)
    assert t.equals(t2)                                        # deterministic
    with pytest.raises(ValueError, match='shape'): heldout_eval(lambda x: x.mean((2, 3)), fs, kinds=('x2',))
    assert file_seed(fs[0]) == file_seed(tmp_path/'other'/'p0.jpg')

def test_sr_split_disjoint():
    tr, held = sr_split()
    assert tr and held and not {f.stem for f in tr} & {f.stem for f in held}
    assert all(f.exists() for f in tr + held)

def test_heldout_metrics_refuse_what_they_cannot_score():
    "psnr_y, psnr_rgb and ssim_rgb name the problem: a border that eats the image (was nan), an image smaller than SSIM's window, sizes that differ"
    from imgcourse.metrics import psnr_y, psnr_rgb, ssim_rgb
    a = torch.rand(3, 32, 32)
    assert psnr_y(a, a.clone(), 4) == 100. and abs(ssim_rgb(a, a, 4) - 1) < 1e-6
    for f in (psnr_y, psnr_rgb):
        with pytest.raises(ValueError, match='border=16 leave 0x0 px'): f(a, a, 16)
        with pytest.raises(ValueError, match='same size'): f(a, a[:, :, :31])
        with pytest.raises(ValueError, match='0 or more'): f(a, a, -1)
    with pytest.raises(ValueError, match='fewer than 11'): ssim_rgb(a[:, :8, :8], a[:, :8, :8])

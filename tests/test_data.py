"Tests of `imgcourse.data`: quick mode, crappify, layouts, fallbacks and bad input."
import gzip, logging, os, struct
from pathlib import Path
import numpy as np, pytest
from PIL import Image
import imgcourse.data as D
from imgcourse.data import *

@pytest.fixture
def rgb_file(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    f = tmp_path/'src'/'photo.png'; f.parent.mkdir()
    Image.fromarray(a).save(f)
    return f

# modes
@pytest.mark.parametrize('env,in_test,gpu,expect', [
    ({}, False, False, 'cpu'), ({}, False, True, 'full'), ({}, True, True, 'quick'),
    ({'IMGCOURSE_QUICK': '1'}, False, False, 'quick'), ({'IMGCOURSE_QUICK': '0'}, True, False, 'full'),
    ({'IMGCOURSE_QUICK': 'off'}, True, False, 'full'), ({'IMGCOURSE_MODE': 'cpu'}, True, True, 'cpu'),
    ({'IMGCOURSE_MODE': ' Full '}, True, False, 'full'), ({'IMGCOURSE_MODE': 'quick', 'IMGCOURSE_QUICK': '0'}, False, False, 'quick')])
def test_mode(monkeypatch, env, in_test, gpu, expect):
    for k in ('IMGCOURSE_QUICK', 'IMGCOURSE_MODE', 'IN_TEST'): monkeypatch.delenv(k, raising=False)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    if in_test: monkeypatch.setenv('IN_TEST', '1')
    monkeypatch.setattr(D, 'has_gpu', lambda: gpu)
    assert mode() == expect and is_quick() is (expect == 'quick')

@pytest.mark.parametrize('var,val', [('IMGCOURSE_MODE', 'fast'), ('IMGCOURSE_QUICK', 'maybe'), ('IMGCOURSE_OFFLINE', 'maybe')])
def test_junk_switches_are_named(monkeypatch, var, val):
    monkeypatch.setenv(var, val)
    with pytest.raises(ValueError, match=var): mode() if var != 'IMGCOURSE_OFFLINE' else offline()

def test_by_mode_reads_the_mode_at_call_time(monkeypatch):
    for m, want in (('quick', 1), ('cpu', 4), ('full', 12)):
        monkeypatch.setenv('IMGCOURSE_MODE', m)
        assert by_mode(1, 12, cpu=4) == want
    monkeypatch.setenv('IMGCOURSE_MODE', 'cpu'); assert by_mode(1, 12) == 1  # cpu defaults to the quick value

# crappify
def test_crappify_size_and_quality(rgb_file, tmp_path):
    q = crappify(rgb_file, tmp_path/'out'/'c.jpg', seed=3)
    im = Image.open(tmp_path/'out'/'c.jpg')
    assert im.format == 'JPEG' and im.mode == 'RGB'
    assert min(im.size) == 96 and im.size == (128, 96)  # 200x150 -> short side 96, aspect kept
    assert 10 <= q <= 70

def test_crappify_reproducible_and_varies(rgb_file, tmp_path):
    qs = [crappify(rgb_file, tmp_path/f'{s}.jpg', seed=s) for s in range(30)]
    assert crappify(rgb_file, tmp_path/'again.jpg', seed=7) == qs[7]
    assert (tmp_path/'again.jpg').read_bytes() == (tmp_path/'7.jpg').read_bytes()
    assert len(set(qs)) > 5 and min(qs) >= 10 and max(qs) <= 70

def test_crappify_quality_range_and_text(rgb_file, tmp_path):
    "A fixed quality is drawn as white text somewhere in the top-left quarter."
    src = tmp_path/'black.png'; Image.new('RGB', (400, 300)).save(src)
    assert crappify(src, tmp_path/'b.jpg', q_range=(50, 50), seed=0) == 50
    a = np.asarray(Image.open(tmp_path/'b.jpg').convert('L')).astype(int)
    ys, xs = np.nonzero(a > 128)
    assert len(ys) > 5, 'the quality should be written in white'
    h, w = a.shape
    assert ys.min() <= h // 2 and xs.min() <= w // 2

def test_crappify_converts_modes(tmp_path):
    src = tmp_path/'deep.png'; Image.fromarray(np.full((120, 100), 30000, np.uint16)).save(src)
    crappify(src, tmp_path/'d.jpg', seed=0)
    a = np.asarray(Image.open(tmp_path/'d.jpg'))
    assert a.shape == (115, 96, 3) and 90 < np.median(a) < 145  # 30000/65535*255 = 117, not clipped white

def test_crappify_folder_parallel_skip_and_deterministic(tmp_path):
    src = tmp_path/'src'; (src/'sub').mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(8): Image.fromarray(rng.integers(0, 255, (120, 130, 3), dtype=np.uint8)).save(src/('sub' if i % 2 else '')/f'{i}.png')
    a = crappify_folder(src, tmp_path/'a', n_workers=2)
    b = crappify_folder(src, tmp_path/'b', n_workers=0)
    assert len(a) == 8 and all(f.exists() and f.suffix == '.jpg' for f in a)
    assert (tmp_path/'a'/'sub'/'1.jpg').exists()
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b], 'per-file seeds make the result independent of workers'
    t = [f.stat().st_mtime_ns for f in a]
    (tmp_path/'a'/'0.jpg').unlink()
    crappify_folder(src, tmp_path/'a', n_workers=0)
    assert [f.stat().st_mtime_ns for f in a][1:] == t[1:] and a[0].exists(), 'only the missing file is redone'
    assert not list((tmp_path/'a').rglob('*.part')), 'no temporary files left behind'

# layouts and fallbacks
def test_mnist_offline_sample_layout():
    p = get_mnist(online=False)
    for split, n in (('training', 4000), ('testing', 1000)):
        assert sorted(d.name for d in (p/split).iterdir()) == [str(i) for i in range(10)]
        fs = image_files(p/split, check=False)
        assert len(fs) == n
    im = Image.open(fs[0]); assert im.size == (28, 28) and im.mode == 'L'

def test_mnist_falls_back_loudly(monkeypatch, caplog):
    monkeypatch.setattr(D, 'fetch', lambda url: None)
    D._said.clear()
    with caplog.at_level(logging.INFO, logger='imgcourse'): p = get_mnist()
    assert p.name == 'mnist_sample'
    assert any('offline sample' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

def test_mnist_uses_full_when_available(monkeypatch, tmp_path):
    full = tmp_path/'mnist_png'; (full/'training').mkdir(parents=True); (full/'testing').mkdir()
    monkeypatch.setattr(D, 'fetch', lambda url: full)
    assert get_mnist() == full

def test_missing_shipped_data_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv('IMGCOURSE_DATA', str(tmp_path/'nowhere'))
    with pytest.raises(FileNotFoundError, match='make_mnist_sample'): get_mnist(online=False)
    with pytest.raises(FileNotFoundError, match='make_photos'): get_photos(online=False)

def test_photos_offline_and_own_folder(monkeypatch, tmp_path):
    monkeypatch.delenv('IMGCOURSE_PHOTOS', raising=False)
    p = get_photos(online=False)
    fs = image_files(p)
    assert len(fs) == 47 and all(Image.open(f).size == (192, 192) for f in fs[:5])
    assert (p/'LICENSE.md').exists()
    own = tmp_path/'mine'; own.mkdir()
    assert get_photos(own) == own
    monkeypatch.setenv('IMGCOURSE_PHOTOS', str(own)); assert get_photos() == own
    with pytest.raises(FileNotFoundError, match='does not exist'): get_photos(tmp_path/'missing')

def test_bedrooms_fallback_is_loud(monkeypatch, caplog):
    monkeypatch.delenv('IMGCOURSE_PHOTOS', raising=False)
    monkeypatch.setattr(D, 'fetch', lambda url: None)
    D._said.clear()
    with caplog.at_level(logging.INFO, logger='imgcourse'): p = get_bedrooms()
    assert p == get_photos(online=False)
    assert any('LSUN' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

def test_fetch_offline_returns_none():
    assert D.fetch('https://s3.amazonaws.com/fast-ai-imageclas/does_not_exist.tgz') is None

def _write_idx(fn, a):
    with gzip.open(fn, 'wb') as f: f.write(bytes([0, 0, 8, a.ndim]) + struct.pack(f'>{a.ndim}I', *a.shape) + a.tobytes())

def test_read_idx_and_fashion_conversion(tmp_path):
    src = tmp_path/'fm'; src.mkdir()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (25, 28, 28), dtype=np.uint8); y = (np.arange(25) % 10).astype(np.uint8)
    for p in ('train', 't10k'):
        _write_idx(src/f'{p}-images-idx3-ubyte.gz', x); _write_idx(src/f'{p}-labels-idx1-ubyte.gz', y)
    np.testing.assert_array_equal(read_idx(src/'train-images-idx3-ubyte.gz'), x)
    out = get_fashion_mnist(src, tmp_path/'out')
    assert (out/'.complete').exists()
    assert len(list((out/'training'/'4').glob('*.png'))) == 3 and len(list((out/'testing').rglob('*.png'))) == 25
    np.testing.assert_array_equal(np.asarray(Image.open(out/'training'/'7'/'17.png')), x[17])

def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path/'bad').write_bytes(b'\x00\x00\x0d\x01abc')
    with pytest.raises(ValueError, match='not an unsigned-byte IDX'): read_idx(tmp_path/'bad')
    with gzip.open(tmp_path/'short.gz', 'wb') as f: f.write(bytes([0, 0, 8, 1]) + struct.pack('>I', 100) + b'\x01' * 10)
    with pytest.raises(ValueError, match='truncated'): read_idx(tmp_path/'short.gz')

def test_fashion_missing_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'): get_fashion_mnist(tmp_path, tmp_path/'o')

@pytest.mark.skipif(not FASHION_SRC.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_idx_shapes():
    x = read_idx(FASHION_SRC/'t10k-images-idx3-ubyte.gz'); y = read_idx(FASHION_SRC/'t10k-labels-idx1-ubyte.gz')
    assert x.shape == (10000, 28, 28) and y.shape == (10000,) and np.bincount(y).tolist() == [1000] * 10

# bad input
@pytest.fixture
def messy(tmp_path):
    d = tmp_path/'messy'; d.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(d/'good.jpg', quality=90)
    (d/'truncated.jpg').write_bytes((d/'good.jpg').read_bytes()[:300])
    (d/'notes.png').write_text('not an image')
    (d/'readme.txt').write_text('ignored: not an image extension')
    rgba = np.zeros((40, 50, 4), np.uint8); rgba[..., 1] = 180; rgba[:, :25, 3] = 255
    Image.fromarray(rgba, 'RGBA').save(d/'alpha.png')
    Image.fromarray(np.full((40, 50), 65535, np.uint16)).save(d/'deep.png')
    Image.new('P', (10, 10)).save(d/'palette.gif')
    return d

def test_image_files_skips_and_names_bad_files(messy, caplog):
    with caplog.at_level(logging.INFO, logger='imgcourse'): fs = image_files(messy)
    assert [f.name for f in fs] == ['alpha.png', 'deep.png', 'good.jpg', 'palette.gif']
    msg = ' '.join(r.getMessage() for r in caplog.records)
    assert 'truncated.jpg' in msg and 'notes.png' in msg and 'not an image' in msg
    assert 'RGBA' in msg and 'alpha.png' in msg and 'I;16' in msg
    assert (messy/'truncated.jpg').exists() and (messy/'notes.png').exists(), 'bad files are left in place'

def test_image_files_parallel_check_matches(messy):
    assert image_files(messy, n_workers=2) == image_files(messy, n_workers=0)

def test_check_image(messy):
    assert check_image(messy/'good.jpg') == 'ok'
    assert check_image(messy/'alpha.png') == 'converted from RGBA'
    assert check_image(messy/'notes.png') == 'skipped: not an image'
    assert check_image(messy/'truncated.jpg').startswith('skipped: corrupt or truncated')

def test_load_rgb_modes(messy):
    for f in ('alpha.png', 'deep.png', 'good.jpg', 'palette.gif'): assert load_rgb(messy/f).mode == 'RGB'
    assert load_rgb(messy/'deep.png').getpixel((0, 0)) == (255, 255, 255)
    a = np.asarray(load_rgb(messy/'alpha.png'))
    assert a[0, 0].tolist() == [0, 180, 0] and a[0, -1].tolist() == [255, 255, 255]
    with pytest.raises(BadImageError, match='truncated.jpg'): load_rgb(messy/'truncated.jpg')
    with pytest.raises(BadImageError, match='notes.png'): load_rgb(messy/'notes.png')

def test_pilimage_rgb_in_a_datablock(messy):
    from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, Resize
    dblock = DataBlock(blocks=(ImageBlock(cls=PILImageRGB), CategoryBlock), get_items=image_files,
                       get_y=lambda f: f.suffix, item_tfms=Resize(16))
    dls = dblock.dataloaders(messy, bs=2, num_workers=0)
    x, y = dls.one_batch()
    assert x.shape == (2, 3, 16, 16)

def test_empty_and_missing_folders(tmp_path):
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no image files'): image_files(tmp_path/'empty')
    with pytest.raises(FileNotFoundError, match='not a folder'): image_files(tmp_path/'missing')
    (tmp_path/'junk').mkdir(); (tmp_path/'junk'/'a.jpg').write_text('x')
    with pytest.raises(FileNotFoundError, match='none of the 1 files'): image_files(tmp_path/'junk')
    with pytest.raises(FileNotFoundError): crappify_folder(tmp_path/'empty', tmp_path/'out')

# pretrained weights
def test_pretrained_ok_offline_warns_and_random_init(monkeypatch, tmp_path, caplog):
    import torch
    from torchvision.models import resnet18
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path/'hub'))
    D._said.clear()
    with caplog.at_level(logging.INFO, logger='imgcourse'):
        assert pretrained_ok(resnet18) is False
        m = tv_model(resnet18)
    assert any('RANDOM INITIALISATION' in r.getMessage() for r in caplog.records)
    assert pretrained_ok(resnet18, pretrained=False) is False
    assert sum(p.numel() for p in m.parameters()) == 11689512

def test_pretrained_ok_uses_cached_weights(monkeypatch, tmp_path):
    import torch
    from torchvision.models import resnet18, ResNet18_Weights
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path/'hub'))
    w = ResNet18_Weights.DEFAULT
    f = tmp_path/'hub'/'checkpoints'/Path(w.url).name; f.parent.mkdir(parents=True)
    sd = resnet18().state_dict(); sd = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in sd.items()}
    torch.save(sd, f)
    assert pretrained_ok(resnet18) is True
    m = resnet18(); m.load_state_dict(torch.load(f, weights_only=True))
    assert torch.all(m.conv1.weight == 0.5)

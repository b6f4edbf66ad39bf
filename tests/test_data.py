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
    monkeypatch.delenv('IMGCOURSE_MODE')  # conftest's quick mode would hide IMGCOURSE_QUICK
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
    assert (tmp_path/'a'/'sub'/'1.png.jpg').exists()
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b], 'per-file seeds make the result independent of workers'
    t = [f.stat().st_mtime_ns for f in a]
    (tmp_path/'a'/'0.png.jpg').unlink()
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

def test_fashion_named_folder_without_the_files_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'lacks train-images-idx3-ubyte.gz.*zalandoresearch'): get_fashion_mnist(tmp_path, tmp_path/'o')

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

def test_image_files_subset_is_fixed_and_opens_only_its_files(tmp_path, monkeypatch):
    d = tmp_path/'big'; d.mkdir()
    for i in range(30): Image.new('RGB', (8, 8), (i, 0, 0)).save(d/f'{i:02d}.png')
    opened = []
    monkeypatch.setattr(D, 'check_image', lambda f: opened.append(f) or 'ok')
    some = image_files(d, n=5, seed=3)
    assert len(some) == 5 and sorted(opened) == list(some), 'only the subset is opened'
    assert image_files(d, n=5, seed=3) == some and image_files(d, n=5, seed=4) != some  # fixed by the seed
    assert list(some) == sorted(some) and set(some) <= set(d.glob('*.png'))
    assert len(image_files(d, n=100)) == 30
    with pytest.raises(ValueError, match='whole numbers'): image_files(d, n=0)

def test_shipped_photos_count():
    "CPU mode takes SHIPPED_PHOTOS photos from any folder: as many as the offline tiles, so a run takes the same time online"
    p = data_dir()/'photos'
    if not p.is_dir(): pytest.skip('no data/ folder (an installed wheel)')
    assert len(image_files(p, check=False)) == SHIPPED_PHOTOS

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

# issue 9: a first run on any machine, and bad input that never costs work
import signal, subprocess, sys, textwrap, time

def _photo(f, w=120, h=100, seed=0):
    f.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(f)
    return f

def _log(caplog): return ' '.join(r.getMessage() for r in caplog.records)

def test_mode_note_warns_in_full_mode_without_gpu(monkeypatch, caplog):
    monkeypatch.setattr(D, 'has_gpu', lambda: False)
    monkeypatch.setenv('IMGCOURSE_MODE', 'full')
    with caplog.at_level(logging.INFO, logger='imgcourse'): assert mode_note() == 'full'
    warn = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warn and 'hours on a CPU' in warn[0] and 'IMGCOURSE_MODE=cpu' in warn[0]
    caplog.clear(); monkeypatch.setenv('IMGCOURSE_MODE', 'cpu')
    with caplog.at_level(logging.INFO, logger='imgcourse'): mode_note()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 'cpu mode on a CPU' in _log(caplog) and 'full:' in _log(caplog) and 'quick:' in _log(caplog)

def test_importing_is_quiet():
    "fastai's `torch.jit.script` FutureWarning is filtered at its source, and nothing else is said on import"
    r = subprocess.run([sys.executable, '-W', 'default', '-c', 'import imgcourse.data, warnings; warnings.warn("probe", FutureWarning)'],
                       capture_output=True, text=True, timeout=120)
    assert 'torch.jit.script' not in r.stderr and 'probe' in r.stderr, r.stderr  # other FutureWarnings still show

# crappified names: one copy per original
def test_crappified_names_are_unique_per_original(tmp_path):
    src = tmp_path/'src'
    a, b = _photo(src/'x.png', seed=1), _photo(src/'x.jpg', seed=2)
    _photo(src/'x.png.jpg', seed=3)  # even an original named like another's copy
    out = crappify_folder(src, tmp_path/'lr', n_workers=0)
    assert len(set(out)) == 3 and all(o.exists() for o in out)
    assert crappified_name(a, src, tmp_path/'lr') != crappified_name(b, src, tmp_path/'lr')
    assert crappified_name(a, src, tmp_path/'lr').read_bytes() != crappified_name(b, src, tmp_path/'lr').read_bytes()
    assert crappified_name(src/'sub'/'y.webp', src, '/d') == Path('/d/sub/y.webp.jpg')
    with pytest.raises(ValueError, match='not under'): crappified_name(tmp_path/'other.png', src, tmp_path/'lr')

@pytest.mark.parametrize('where', ['same', 'inside', 'nested', 'symlink'])
def test_crappify_folder_never_writes_into_the_originals(tmp_path, where):
    src = tmp_path/'src'; _photo(src/'a.jpg'); _photo(src/'sub'/'b.png')
    before = {p: p.read_bytes() for p in src.rglob('*')if p.is_file()}
    dest = {'same': src, 'inside': src/'lr', 'nested': src/'sub'/'lr', 'symlink': tmp_path/'link'}[where]
    if where == 'symlink': dest.symlink_to(src/'sub', target_is_directory=True)
    with pytest.raises(ValueError, match='inside the originals folder'): crappify_folder(src, dest, n_workers=0)
    assert {p: p.read_bytes() for p in src.rglob('*') if p.is_file()} == before

def test_non_utf8_file_names(tmp_path, caplog):
    src = tmp_path/'src'
    bad = src/os.fsdecode(b'caf\xe9-\xff.png')  # Latin-1 bytes: not valid UTF-8
    _photo(bad); _photo(src/'ok.png', seed=1)
    (src/os.fsdecode(b'junk\xfe.jpg')).write_text('not an image')
    with caplog.at_level(logging.INFO, logger='imgcourse'): fs = image_files(src)
    assert bad in fs and len(fs) == 2 and 'junk\\xfe.jpg' in _log(caplog)
    for w in (0, 2):
        out = crappify_folder(src, tmp_path/f'lr{w}', files=fs, n_workers=w)
        assert all(o.exists() for o in out)
    assert [o.read_bytes() for o in crappify_folder(src, tmp_path/'lr0', files=fs)] == [o.read_bytes() for o in out]
    assert D._seed_for(42, 'ok.png') == int(__import__('hashlib').md5(b'42/ok.png').hexdigest()[:8], 16)  # seeds of valid names unchanged
    with pytest.raises(BadImageError, match=r'junk\\xfe.jpg'): load_rgb(src/os.fsdecode(b'junk\xfe.jpg'))
    from fastai.vision.all import DataBlock, ImageBlock, Resize
    dls = DataBlock(blocks=(ImageBlock(cls=PILImageRGB), ImageBlock(cls=PILImageRGB)), get_x=lambda f: crappified_name(f, src, tmp_path/'lr0'),
                    item_tfms=Resize(16)).dataloaders(fs, bs=2, num_workers=0, valid_pct=0.5)
    assert dls.one_batch()[0].shape[1:] == (3, 16, 16)

@pytest.mark.parametrize('n_workers', [0, 2])
def test_decompression_bombs_are_named(tmp_path, monkeypatch, caplog, n_workers):
    src = tmp_path/'src'; _photo(src/'small.png', 20, 20); _photo(src/'huge.png', 120, 100)
    for i in range(3): _photo(src/f'more{i}.png', 20, 20, seed=i)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 2000)  # 12,000 pixels is over twice the limit: Pillow refuses it
    with caplog.at_level(logging.INFO, logger='imgcourse'): fs = image_files(src, n_workers=n_workers)
    assert src/'huge.png' not in fs and len(fs) == 4
    assert 'huge.png' in _log(caplog) and 'MAX_IMAGE_PIXELS' in _log(caplog)
    assert 'MAX_IMAGE_PIXELS' in check_image(src/'huge.png')
    with pytest.raises(BadImageError, match=r'huge.png.*MAX_IMAGE_PIXELS'): load_rgb(src/'huge.png')

def test_concurrent_crappify_folder_runs_do_not_collide(tmp_path):
    src = tmp_path/'src'
    for i in range(24): _photo(src/f'{i}.png', 140, 120, seed=i)
    dest = tmp_path/'lr'
    (dest/'.0.png.jpg.part').mkdir(parents=True)  # a temporary name that another run holds: each run must use its own
    code = textwrap.dedent(f'''
        from imgcourse.data import crappify_folder
        out = crappify_folder({str(src)!r}, {str(dest)!r}, n_workers=0)
        assert all(o.exists() for o in out)''')
    ps = [subprocess.Popen([sys.executable, '-c', code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=180)[1] for p in ps]
    assert [p.returncode for p in ps] == [0, 0], errs
    assert len(list(dest.glob('*.jpg'))) == 24 and not [f for f in dest.glob('*.part') if f.is_file()]

def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8); a[:, :20] = 255  # 40 wide, 20 tall: white on the left
    ex = Image.Exif(); ex[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.fromarray(a).save(tmp_path/'r.jpg', exif=ex, quality=95)
    im = load_rgb(tmp_path/'r.jpg')
    assert im.size == (20, 40) and np.asarray(im)[:5].mean() > 200 and np.asarray(im)[-5:].mean() < 50  # white on top
    crappify(tmp_path/'r.jpg', tmp_path/'c.jpg', size=10, seed=0)
    assert Image.open(tmp_path/'c.jpg').size == (10, 20)

def test_junk_cache_and_photos_variables(monkeypatch, tmp_path):
    f = tmp_path/'a-file'; f.write_text('x')
    monkeypatch.setenv('IMGCOURSE_CACHE', str(f))
    with pytest.raises(NotADirectoryError, match=r'a-file.*IMGCOURSE_CACHE.*is a file, not a folder'): cache_dir()
    monkeypatch.setenv('IMGCOURSE_CACHE', str(f/'sub'))
    with pytest.raises(NotADirectoryError, match='IMGCOURSE_CACHE'): cache_dir()
    monkeypatch.setenv('IMGCOURSE_PHOTOS', str(f))
    with pytest.raises(FileNotFoundError, match='is a file, not a folder'): get_photos()
    with pytest.raises(FileNotFoundError, match='is a file, not a folder'): image_files(f)

def test_permission_errors_are_not_called_corrupt(tmp_path, monkeypatch):
    f = _photo(tmp_path/'p.png')
    real_open = Image.open
    def _denied(fn, *a, **k):
        if Path(fn) == f: raise PermissionError(13, 'Permission denied', str(fn))
        return real_open(fn, *a, **k)
    monkeypatch.setattr(Image, 'open', _denied)
    r = check_image(f)
    assert r.startswith('skipped') and 'Permission denied' in r and 'corrupt' not in r
    with pytest.raises(BadImageError) as e: load_rgb(f)
    assert 'p.png' in str(e.value) and 'Permission denied' in str(e.value) and 'corrupt' not in str(e.value)
    with pytest.raises(BadImageError, match='No such file'): load_rgb(tmp_path/'missing.png')

@pytest.mark.parametrize('kw,msg', [(dict(size=0), 'size=0'), (dict(size=-5), 'size=-5'), (dict(size=2.5), 'whole number'),
                                    (dict(q_range=(70, 10)), 'low <= high'), (dict(q_range=(0, 50)), 'low <= high'),
                                    (dict(q_range=(10,)), 'two JPEG qualities'), (dict(q_range=None), 'two JPEG qualities')])
def test_crappify_rejects_bad_arguments(rgb_file, tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg): crappify(rgb_file, tmp_path/'c.jpg', **kw)
    with pytest.raises(ValueError, match=msg): crappify_folder(rgb_file.parent, tmp_path/'lr', **kw)
    assert not (tmp_path/'c.jpg').exists() and not (tmp_path/'lr').exists()

def test_small_originals_are_not_enlarged(tmp_path, caplog):
    src = tmp_path/'src'; _photo(src/'tiny.png', 50, 40); _photo(src/'big.png', 200, 150)
    with caplog.at_level(logging.INFO, logger='imgcourse'): out = crappify_folder(src, tmp_path/'lr', n_workers=0)
    assert [Image.open(o).size for o in out] == [(128, 96), (50, 40)]
    assert 'tiny.png' in _log(caplog) and 'keep their size' in _log(caplog)

_KILL_SCRIPT = '''
import os, sys, time
import imgcourse.data as D
real = D.crappify
def slow(src, dest, **kw):
    open(os.path.join({pids!r}, str(os.getpid())), 'w').close()
    time.sleep(0.3)
    return real(src, dest, **kw)
D.crappify = slow
D.crappify_folder({src!r}, {dest!r}, n_workers=2)
'''

def _alive(pid):
    try: return open(f'/proc/{pid}/stat').read().split(')')[-1].split()[0] not in 'ZX'
    except FileNotFoundError: return False

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_crappify_folder_leaves_no_workers(tmp_path, sig):
    src, pids = tmp_path/'src', tmp_path/'pids'; pids.mkdir()
    for i in range(40): _photo(src/f'{i}.png', 60, 50, seed=i)
    p = subprocess.Popen([sys.executable, '-c', _KILL_SCRIPT.format(pids=str(pids), src=str(src), dest=str(tmp_path/'lr'))],
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while len(list(pids.iterdir())) < 2 and time.time() - t0 < 60: time.sleep(0.1)
    workers = [int(f.name) for f in pids.iterdir()]
    assert len(workers) >= 2, 'the workers never started'
    p.send_signal(sig); p.communicate(timeout=30)
    t0 = time.time()
    while any(_alive(w) for w in workers) and time.time() - t0 < 5: time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], f'pool workers outlived the run stopped with {sig.name}'
    assert not [f for f in (tmp_path/'lr').rglob('*') if f.is_file() and not f.name.endswith('.jpg')], 'no half-written files'

def test_dataloader_worker_errors_name_the_file_first(tmp_path):
    import torch
    f = _photo(tmp_path/'good.jpg'); bad = tmp_path/'cut.jpg'; bad.write_bytes(f.read_bytes()[:200])
    dl = torch.utils.data.DataLoader([str(bad)], batch_size=1, num_workers=1, collate_fn=lambda b: [PILImageRGB.create(o) for o in b])
    with pytest.raises(BadImageError) as e: next(iter(dl))
    msg = str(e.value)
    assert msg.startswith(str(bad)) and len(msg.splitlines()) == 1 and 'DataLoader worker' in msg
    assert 'Traceback' in e.value.worker_traceback  # the worker's traceback is kept, out of the way

# Fashion-MNIST from any machine
def _fake_fashion(d, n=(30, 10), labels=None):
    d.mkdir(parents=True, exist_ok=True); rng = np.random.default_rng(0)
    for p, k in zip(('train', 't10k'), n):
        _write_idx(d/f'{p}-images-idx3-ubyte.gz', rng.integers(0, 255, (k, 28, 28), dtype=np.uint8))
        _write_idx(d/f'{p}-labels-idx1-ubyte.gz', (np.arange(k if labels is None else labels) % 10).astype(np.uint8))
    return d

@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    "Fashion-MNIST as on a machine without Debian's package"
    monkeypatch.setattr(D, 'FASHION_SRC', tmp_path/'no-debian-package')
    monkeypatch.delenv('IMGCOURSE_FASHION', raising=False)
    D._said.clear()

def test_fashion_falls_back_to_the_shipped_sample(no_debian, caplog):
    with caplog.at_level(logging.INFO, logger='imgcourse'): p = fashion_idx()
    assert p == data_dir()/'fashion_sample'
    w = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert w and 'shipped sample' in w[0] and 'apt-get install dataset-fashion-mnist' in w[0] and 'IMGCOURSE_FASHION' in w[0]
    x, y = read_idx(p/'train-images-idx3-ubyte.gz'), read_idx(p/'train-labels-idx1-ubyte.gz')
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    assert np.bincount(read_idx(p/'t10k-labels-idx1-ubyte.gz')).tolist() == [200] * 10
    assert 'MIT' in (p/'LICENSE').read_text() and 'Zalando' in (p/'LICENSE').read_text()
    assert fashion_idx(D.FASHION_SRC) == p, "the default folder (as the ResNet notebook passes it) falls back too"

def test_fashion_source_order(no_debian, monkeypatch, tmp_path):
    mine, deb = _fake_fashion(tmp_path/'mine'), _fake_fashion(tmp_path/'debian')
    monkeypatch.setattr(D, 'FASHION_SRC', deb)
    assert fashion_idx() == deb
    monkeypatch.setenv('IMGCOURSE_FASHION', str(mine)); assert fashion_idx() == mine
    monkeypatch.delenv('IMGCOURSE_FASHION'); assert fashion_idx(src=mine) == mine
    with pytest.raises(FileNotFoundError, match=r'does not exist'): fashion_idx(tmp_path/'nope')
    monkeypatch.setenv('IMGCOURSE_FASHION', str(mine/'train-images-idx3-ubyte.gz'))
    with pytest.raises(FileNotFoundError, match=r'IMGCOURSE_FASHION.*is a file, not a folder'): fashion_idx()

def test_fashion_download_is_checked(no_debian, monkeypatch, tmp_path):
    served = _fake_fashion(tmp_path/'served')
    md5 = {f: __import__('hashlib').md5((served/f).read_bytes()).hexdigest() for f in D.FASHION_FILES}
    monkeypatch.setattr(D, 'FASHION_URL', served.as_uri() + '/')
    monkeypatch.setattr(D, 'FASHION_FILES', md5)
    assert fashion_idx(online=True) == data_dir()/'fashion_sample', 'IMGCOURSE_OFFLINE=1: no download'
    monkeypatch.setenv('IMGCOURSE_OFFLINE', '0')
    monkeypatch.setattr(D, 'FASHION_FILES', {**md5, 't10k-labels-idx1-ubyte.gz': '0' * 32})
    assert fashion_idx(online=True) == data_dir()/'fashion_sample', 'a file with the wrong MD5 is not used'
    assert not list((cache_dir()/'fashion_mnist_idx').glob('t10k-labels*'))
    monkeypatch.setattr(D, 'FASHION_FILES', md5)
    d = fashion_idx(online=True)
    assert d == cache_dir()/'fashion_mnist_idx' and read_idx(d/'train-labels-idx1-ubyte.gz').shape == (30,)
    assert not list(d.glob('.*.part'))

def test_fashion_damaged_files_are_named(tmp_path):
    src = _fake_fashion(tmp_path/'fm')
    f = src/'train-images-idx3-ubyte.gz'
    f.write_bytes(f.read_bytes()[:300])  # cut short
    with pytest.raises(ValueError, match=r'train-images-idx3-ubyte.gz.*(gzip|truncated)'): get_fashion_mnist(src, tmp_path/'o')
    f.write_bytes(b'this is not gzip at all')
    with pytest.raises(ValueError, match=r'train-images-idx3-ubyte.gz.*not a readable gzip'): read_idx(f)
    with pytest.raises(ValueError, match=r'train-images-idx3-ubyte.gz'): get_fashion_mnist(src, tmp_path/'o')
    assert not (tmp_path/'o'/'.complete').exists()

def test_fashion_counts_that_differ_raise(tmp_path):
    src = _fake_fashion(tmp_path/'fm', labels=25)  # 30 images, 25 labels
    with pytest.raises(ValueError, match=r'25 labels.*do not\s+belong together'): get_fashion_mnist(src, tmp_path/'o')
    assert not (tmp_path/'o'/'.complete').exists()

def test_fashion_conversion_is_complete_and_keyed(no_debian, tmp_path):
    src = _fake_fashion(tmp_path/'fm', n=(20, 10))
    out = get_fashion_mnist(src)
    assert out == cache_dir()/'fashion_mnist_20_10' and (out/'.complete').read_text() == '20 10'
    assert len(list((out/'training').rglob('*.png'))) == 20
    (out/'training'/'3'/'3.png').unlink(); (out/'.complete').unlink()
    assert get_fashion_mnist(src) == out and (out/'training'/'3'/'3.png').exists(), 'an interrupted conversion is finished'

def test_say_writes_to_the_current_stderr(capsys):
    "Messages reach whatever stderr is now (an executed notebook's, a test's), not the one at import time"
    say('photos: where the data came from', once=False)
    assert 'imgcourse: photos: where the data came from' in capsys.readouterr().err

def _py(code, tmp):
    "Run `code` in a fresh Python whose temporary folder is `tmp`; its stdout"
    env = {**os.environ, 'TMPDIR': str(tmp), 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, '-c', 'from imgcourse.data import scratch_dir\n' + code], capture_output=True, text=True, env=env, timeout=120)
    return r

def test_scratch_dir_is_removed_at_exit_and_after_a_kill(tmp_path):
    r = _py("print(scratch_dir('t'))", tmp_path)
    assert r.returncode == 0 and Path(r.stdout.strip()).parent == tmp_path and not Path(r.stdout.strip()).exists(), r
    r = _py("import os, signal; d = scratch_dir('t'); (d/'ckpt').write_bytes(b'x' * 1000); print(d, flush=True); os.kill(os.getpid(), signal.SIGKILL)", tmp_path)
    killed = Path(r.stdout.strip())
    assert r.returncode == -signal.SIGKILL and (killed/'ckpt').exists()   # a killed run cannot clean up ...
    other = tmp_path/'imgcourse-u-1-x'; other.mkdir()                    # (another name's folder)
    r = _py("d = scratch_dir('t'); print(d, d.exists())", tmp_path)     # ... the next run of the same name does
    assert r.stdout.split()[1] == 'True' and not killed.exists() and other.exists(), r

def test_scratch_dir_keeps_live_processes_folders(tmp_path, monkeypatch):
    monkeypatch.setenv('TMPDIR', str(tmp_path)); monkeypatch.setattr(D.tempfile, 'tempdir', None)
    mine = scratch_dir('t')
    live = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        theirs = tmp_path/f'imgcourse-t-{live.pid}-abc'; theirs.mkdir()
        again = scratch_dir('t')
        assert mine.exists() and theirs.exists() and again.exists() and again != mine
        assert str(os.getpid()) in mine.name
    finally: live.kill(); live.wait()
    scratch_dir('t'); assert not theirs.exists()  # once that process is gone, its folder goes too

def test_missing_shipped_data_says_how_to_get_it(tmp_path, monkeypatch):
    "Without the shipped data/ (a wheel carries none) the error names an editable install and IMGCOURSE_DATA; a wrong IMGCOURSE_DATA is named; a lost folder, git"
    import imgcourse.data as D, imgcourse.metrics as M, imgcourse.run as R
    from imgcourse.metrics import sr_split
    from imgcourse.run import find_notebook
    monkeypatch.delenv('IMGCOURSE_DATA', raising=False)
    for mod in (D, M, R): monkeypatch.setattr(mod, 'data_dir', lambda: tmp_path/'site-packages'/'data')  # as in a wheel
    for f in (lambda: get_mnist(online=False), lambda: get_photos(online=False), sr_split):
        with pytest.raises(FileNotFoundError) as e: f()
        assert 'IMGCOURSE_DATA' in str(e.value) and 'pip install -e' in str(e.value) and 'wheel' in str(e.value)
    with pytest.raises(FileNotFoundError, match='pip install -e'): find_notebook('01_resnet')
    monkeypatch.undo()
    monkeypatch.setenv('IMGCOURSE_DATA', str(tmp_path/'nowhere'))
    with pytest.raises(FileNotFoundError, match="IMGCOURSE_DATA=.*nowhere.* is not a folder"): get_mnist(online=False)
    (tmp_path/'nowhere').mkdir()
    with pytest.raises(FileNotFoundError, match=r'git checkout data/.*make_mnist_sample'): get_mnist(online=False)
    with pytest.raises(FileNotFoundError, match='make_photos'): get_photos(online=False)
    with pytest.raises(FileNotFoundError, match='has no split.json'): sr_split(tmp_path)

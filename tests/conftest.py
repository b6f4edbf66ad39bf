"Shared fixtures: no test touches the network or the user's caches."
import numpy as np, pytest, torch
from PIL import Image

@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    "Downloads off, imgcourse's and fastai's caches in a temporary folder, quick mode (the same sizes and paths on any machine)."
    monkeypatch.setenv('IMGCOURSE_MODE', 'quick')
    monkeypatch.setenv('IMGCOURSE_OFFLINE', '1')
    monkeypatch.setenv('IMGCOURSE_CACHE', str(tmp_path/'cache'))
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai'))

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Tiny models on a shared CPU run fastest single-threaded."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def write_photos(d, top:int=255, n:int=8):
    "`n` smooth random 64x80 RGB photos (PNG), pixel values below `top`, in a new folder `d`"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        a = rng.integers(0, top, (8, 10, 3), dtype=np.uint8)
        Image.fromarray(a).resize((80, 64), Image.BICUBIC).save(d/f'p{i}.png')
    return d

@pytest.fixture
def photos(tmp_path):
    "Eight smooth random 64x80 RGB photos (PNG) in a folder."
    return write_photos(tmp_path/'photos')

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: long runs (full-mode code paths); run them with `pytest -m slow`')

def pytest_collection_modifyitems(config, items):
    "Slow tests run only when asked for with `-m slow`"
    if 'slow' in (config.getoption('-m') or ''): return
    skip = pytest.mark.skip(reason='slow: run with `pytest -m slow`')
    for it in items:
        if 'slow' in it.keywords: it.add_marker(skip)

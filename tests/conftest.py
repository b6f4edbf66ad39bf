"Shared fixtures: no test touches the network or the user's caches."
import pytest

@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    "Downloads off, imgcourse's and fastai's caches in a temporary folder."
    monkeypatch.setenv('IMGCOURSE_OFFLINE', '1')
    monkeypatch.setenv('IMGCOURSE_CACHE', str(tmp_path/'cache'))
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai'))

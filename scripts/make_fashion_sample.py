"""Write `data/fashion_sample`: a balanced subset of Fashion-MNIST in its original IDX format (gzipped),
the fallback that `imgcourse.data.fashion_idx` uses when the full dataset cannot be had.

It takes, in file order, the first 1,000 images of each class of the training set and the first 200 of each
class of the test set (10,000 + 2,000 images), from Debian's `dataset-fashion-mnist` package or any folder
with the four official files. The gzip files carry no timestamp, so the output is the same byte for byte.

Run from the repository root: `python scripts/make_fashion_sample.py [SRC]`
(SRC defaults to /usr/share/datasets/fashion-mnist: `sudo apt-get install dataset-fashion-mnist`)."""
import gzip, struct, sys
from pathlib import Path
import numpy as np

root = Path(__file__).resolve().parent.parent
src = Path(sys.argv[1] if len(sys.argv) > 1 else '/usr/share/datasets/fashion-mnist')
dest = root/'data'/'fashion_sample'
PER_CLASS = {'train': 1000, 't10k': 200}

def read_idx(fn):
    with gzip.open(fn, 'rb') as f: buf = f.read()
    nd = buf[3]
    shape = struct.unpack(f'>{nd}I', buf[4:4 + 4*nd])
    return np.frombuffer(buf, np.uint8, offset=4 + 4*nd).reshape(shape)

def write_idx(fn, a):
    with open(fn, 'wb') as raw, gzip.GzipFile(fileobj=raw, mode='wb', mtime=0, filename='') as f:
        f.write(bytes([0, 0, 8, a.ndim]) + struct.pack(f'>{a.ndim}I', *a.shape) + a.tobytes())

dest.mkdir(parents=True, exist_ok=True)
for part, k in PER_CLASS.items():
    x, y = read_idx(src/f'{part}-images-idx3-ubyte.gz'), read_idx(src/f'{part}-labels-idx1-ubyte.gz')
    idx = np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in range(10)]))
    write_idx(dest/f'{part}-images-idx3-ubyte.gz', x[idx])
    write_idx(dest/f'{part}-labels-idx1-ubyte.gz', y[idx])
    print(part, len(idx), 'images, per class', np.bincount(y[idx]).tolist())

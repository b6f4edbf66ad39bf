"""Train the feature extractor for notebook 05's FID: notebook 01's `resnet_mnist` on Fashion-MNIST.

    python scripts/train_fid_classifier.py --force      # replace the shipped weights (data/weights/fid_fashion_resnet.pth)
    python scripts/train_fid_classifier.py --out my_fid.pth --epochs 2

Writes the weights (fp32 state dict, about 170 kB) and a JSON beside them recording the data, epochs,
learning rate, test accuracy and wall time. Notebook 05 loads them (and trains the same model itself,
saying so, only if the file is missing)."""
import argparse, json, os, time, platform
from pathlib import Path
import torch
from imgcourse.data import fashion_idx, data_dir
from imgcourse.resnet import fashion_tensors, fashion_aug, resnet_mnist
from imgcourse.train import fast_dls, fast_learner, pixel_stats

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--out', default=str(data_dir()/'weights'/'fid_fashion_resnet.pth'), help='default: the shipped weights (replaced only with --force)')
    p.add_argument('--force', action='store_true', help='replace --out if it exists')
    a = p.parse_args()
    if a.epochs < 1: p.error(f'--epochs {a.epochs}: train at least 1 epoch')
    if not a.lr > 0: p.error(f'--lr {a.lr}: the learning rate must be positive')
    if Path(a.out).exists() and not a.force:
        p.error(f'{a.out} exists (the default is the shipped model): pass --out NEW.pth to keep it, or --force to replace it')
    torch.manual_seed(42)
    src = fashion_idx()
    xt, yt, xv, yv, vocab = fashion_tensors(src=src)
    stats = pixel_stats(xt)
    dls = fast_dls(xt, yt, xv, yv, bs=256, aug=fashion_aug, stats=stats, vocab=vocab)
    learn = fast_learner(dls, resnet_mnist(), precision='fp32')
    t = time.perf_counter()
    learn.fit_one_cycle(a.epochs, a.lr)
    secs = time.perf_counter() - t
    acc = float(learn.validate()[1])
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.tmp')
    try: torch.save(learn.model.state_dict(), tmp); os.replace(tmp, out)  # a killed run never leaves half a file under `out`
    finally: tmp.unlink(missing_ok=True)
    info = dict(model='imgcourse.resnet.resnet_mnist()', data=f'Fashion-MNIST {len(xt)} train / {len(xv)} test ({src})',
                stats=stats, epochs=a.epochs, lr=a.lr, schedule='fit_one_cycle, fast_adam, aug=fashion_aug, bs=256',
                test_accuracy=round(acc, 4), train_seconds=round(secs), machine=f'{platform.machine()} CPU, torch {torch.__version__}',
                command=f'python scripts/train_fid_classifier.py --epochs {a.epochs} --lr {a.lr}')
    out.with_suffix('.json').write_text(json.dumps(info, indent=1) + '\n')
    print(json.dumps(info, indent=1))

if __name__ == '__main__': main()

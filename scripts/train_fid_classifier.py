"""Train the feature extractor for notebook 05's FID: notebook 01's `resnet_mnist` on Fashion-MNIST.

    python scripts/train_fid_classifier.py [--epochs 12] [--out data/weights/fid_fashion_resnet.pth]

Writes the weights (fp32 state dict, about 170 kB) and a JSON beside them recording the data, epochs,
learning rate, test accuracy and wall time. Notebook 05 loads them (and trains the same model itself,
saying so, only if the file is missing)."""
import argparse, json, time, platform
from pathlib import Path
import torch
from imgcourse.data import fashion_idx
from imgcourse.resnet import fashion_tensors, fashion_aug, resnet_mnist
from imgcourse.train import fast_dls, fast_learner, pixel_stats

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--out', default='data/weights/fid_fashion_resnet.pth')
    a = p.parse_args()
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
    torch.save(learn.model.state_dict(), out)
    info = dict(model='imgcourse.resnet.resnet_mnist()', data=f'Fashion-MNIST {len(xt)} train / {len(xv)} test ({src})',
                stats=stats, epochs=a.epochs, lr=a.lr, schedule='fit_one_cycle, fast_adam, aug=fashion_aug, bs=256',
                test_accuracy=round(acc, 4), train_seconds=round(secs), machine=f'{platform.machine()} CPU, torch {torch.__version__}',
                command=f'python scripts/train_fid_classifier.py --epochs {a.epochs} --lr {a.lr}')
    out.with_suffix('.json').write_text(json.dumps(info, indent=1) + '\n')
    print(json.dumps(info, indent=1))

if __name__ == '__main__': main()

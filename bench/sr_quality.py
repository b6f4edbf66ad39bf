"""Quality of the lesson's super-resolution U-Net against the same U-Net made residual (`make_residual`), trained the
same way on the same photos, scored on the same held-out crops against bicubic upsampling.

Both models get the same encoder (pretrained if its weights can be had, else random: said on the log), the same
seeded data, `fit_one_cycle(--epochs, --lr)` with `--steps` batches per epoch (small folders are repeated), and
`sr_report` (MSE, PSNR, SSIM, and the same for bicubic). Prints one table and the wall time of each.
Example (CPU, about 25 min on 2 busy cores):  python bench/sr_quality.py --size 64 --bs 8 --epochs 5 --steps 60
Example (GPU):                                python bench/sr_quality.py --size 128 --bs 32 --epochs 10 --steps 200
"""
import argparse, math, os, time, warnings
warnings.filterwarnings('ignore')
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch, pandas as pd
from fastai.vision.all import resnet18, resnet34, set_seed
from imgcourse.superres import sr_dls, sr_learner, make_residual
from imgcourse.metrics import sr_report

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--path', default=None, help='folder of photos (default: get_photos())')
    p.add_argument('--size', type=int, default=64); p.add_argument('--bs', type=int, default=8)
    p.add_argument('--epochs', type=int, default=5); p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--steps', type=int, default=60, help='training batches per epoch')
    p.add_argument('--valid-pct', type=float, default=0.2); p.add_argument('--arch', default='resnet34', choices=['resnet18', 'resnet34'])
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    arch = {'resnet18': resnet18, 'resnet34': resnet34}[a.arch]
    n_train = len(sr_dls(a.path, size=a.size, bs=a.bs, valid_pct=a.valid_pct, num_workers=0).train_ds)
    rows = []
    for residual in (False, True):
        set_seed(42)
        dls = sr_dls(a.path, size=a.size, bs=a.bs, valid_pct=a.valid_pct, num_workers=0, repeat=max(1, math.ceil(a.steps*a.bs/n_train)))
        learn = sr_learner(dls, arch=arch, path='/tmp/imgcourse-sr-quality')
        if residual: learn = make_residual(learn)
        t = time.perf_counter()
        with learn.no_bar(): learn.fit_one_cycle(a.epochs, a.lr)
        secs = time.perf_counter() - t
        r = sr_report(learn)
        rows += [r.iloc[:1].assign(seconds=round(secs))] if residual else [r.iloc[:2].assign(seconds=[round(secs), 0])]
    print(f'{a.arch} ({"pretrained" if learn.pretrained else "random"} encoder), {a.size} px, bs {a.bs}, '
          f'{a.epochs} epochs x {len(dls.train)} batches, lr {a.lr:g}, {len(dls.valid_ds)} held-out photos')
    print(pd.concat(rows).round(3).to_string())

if __name__ == '__main__': main()

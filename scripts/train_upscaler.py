"""Train the course's upscaler (`imgcourse.superres.SRNet`) on the training half of data/sr_photos and write
data/weights/upscaler.pth plus upscaler.json (shape, data, steps, wall time, arguments, held-out table).

    python scripts/train_upscaler.py --bf16 --force       # the shipped model's recipe (see data/weights/upscaler.json): 6,000 steps, about 13 min on 2 cores with AMX
    python scripts/train_upscaler.py --out my_upscaler.pth   # the same in fp32 (CPUs without bf16 units; a few times slower), beside the shipped one
    python scripts/train_upscaler.py --epochs 2 --steps 5 --out /tmp/up.pth   # a smoke run

The recipe itself is `imgcourse.superres.train_upscaler`, the one notebook 02 runs. An existing `--out` (such as the
shipped weights, the default) is replaced only with `--force`.
"""
import argparse, json, os, platform, sys, time
from pathlib import Path
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch
from imgcourse.data import data_dir
from imgcourse.metrics import sr_split, heldout_eval
from imgcourse.superres import train_upscaler, save_upscaler, upscale_fn, TRAIN_MIX, SOFT

def main(args=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--photos', default=None, help='folder with split.json (default: data/sr_photos)')
    p.add_argument('--out', default=str(data_dir()/'weights'/'upscaler.pth'), help='default: the shipped weights (replaced only with --force)')
    p.add_argument('--force', action='store_true', help='replace --out if it exists')
    p.add_argument('--nf', type=int, default=48); p.add_argument('--nb', type=int, default=8); p.add_argument('--down', type=int, default=2)
    p.add_argument('--epochs', type=int, default=60); p.add_argument('--steps', type=int, default=100, help='batches per epoch')
    p.add_argument('--bs', type=int, default=16); p.add_argument('--size', type=int, default=96)
    p.add_argument('--lr', type=float, default=1e-3); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--soft', type=float, default=SOFT, help='share of training crops softened first')
    p.add_argument('--bf16', action='store_true', help='bf16 autocast (faster on CPUs with AMX and on GPUs)')
    p.add_argument('--threads', type=int, default=2); p.add_argument('--no-eval', action='store_true', help='skip the held-out table')
    a = p.parse_args(args)
    bad = [f'--{k} {getattr(a, k)}' for k in ('epochs', 'steps', 'bs', 'size', 'nf', 'nb', 'down', 'threads') if getattr(a, k) < 1]
    if bad: p.error(f'{", ".join(bad)}: each must be at least 1')
    if not a.lr > 0: p.error(f'--lr {a.lr}: the learning rate must be positive')
    if not 0 <= a.soft <= 1: p.error(f'--soft {a.soft}: a share, between 0 and 1')
    if Path(a.out).exists() and not a.force:
        p.error(f'{a.out} exists (the default is the shipped model): pass --out NEW.pth to keep it, or --force to replace it')
    if a.photos and not (Path(a.photos)/'split.json').is_file():
        p.error(f'--photos {a.photos} has no split.json: it lists the folder\'s "train" and "heldout" photo names (see data/sr_photos/split.json)')
    torch.set_num_threads(a.threads)
    train, held = sr_split(a.photos)
    t0 = time.time()
    learn = train_upscaler(train, epochs=a.epochs, steps=a.steps, bs=a.bs, size=a.size, lr=a.lr, nf=a.nf, nb=a.nb, down=a.down, seed=a.seed, bf16=a.bf16, soft=a.soft)
    wall = round(time.time() - t0, 1)
    meta = dict(command='python scripts/train_upscaler.py ' + ' '.join(args if args is not None else sys.argv[1:]),
                steps=a.epochs*a.steps, wall_s=wall, args=vars(a), mix=TRAIN_MIX, train_sources=[f.stem for f in train],
                heldout_sources=[f.stem for f in held], torch=torch.__version__, threads=a.threads, machine=platform.machine())
    if not a.no_eval:
        t = heldout_eval(upscale_fn(learn.model), held)
        meta['heldout'] = t[['bic_psnr_y', 'psnr_y', 'd_psnr_y', 'bic_ssim', 'ssim', 'shift']].round(3).to_dict('index')
        print(t.round(3).to_string())
    save_upscaler(learn.model, a.out, **meta)
    print(json.dumps({k: meta[k] for k in ('steps', 'wall_s')}), a.out)
    return a.out

if __name__ == '__main__': main()

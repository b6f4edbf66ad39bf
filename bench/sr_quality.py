"""Super-resolution quality on photos no model here was trained on: `imgcourse.metrics.heldout_eval` (held-out half of
data/sr_photos, split by source photo; clean bicubic x2/x4, the lesson's crappifier without and with its drawn number;
PSNR-Y with the border shaved, PSNR-RGB, SSIM, colour shift) for bicubic, the shipped upscaler (`load_upscaler()`) and
an `SRNet` trained here with `train_upscaler` (the recipe of `scripts/train_upscaler.py`). Prints one table per model,
the wall time of training and evaluating, and the training command.

Example (CPU, about 2 min on 2 busy cores):  python bench/sr_quality.py --epochs 4 --steps 50
Smoke run (seconds):                         python bench/sr_quality.py --epochs 1 --steps 2 --n-photos 1 --max-side 96
"""
import argparse, json, os, time
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch, pandas as pd
from imgcourse.data import data_dir
from imgcourse.metrics import sr_split, heldout_eval, KINDS
from imgcourse.superres import train_upscaler, load_upscaler, upscale_fn

COLS = ['bic_psnr_y', 'psnr_y', 'd_psnr_y', 'min_d_psnr_y', 'bic_ssim', 'ssim', 'd_ssim', 'bic_shift', 'shift', 'n']

def main(args=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--photos', default=None, help='folder with split.json (default: data/sr_photos)')
    p.add_argument('--weights', default=None, help='shipped weights (default: data/weights/upscaler.pth)')
    p.add_argument('--epochs', type=int, default=4); p.add_argument('--steps', type=int, default=50, help='batches per epoch')
    p.add_argument('--bs', type=int, default=16); p.add_argument('--size', type=int, default=96)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--n-photos', type=int, default=None, help='score only the first N held-out photos (default: all)')
    p.add_argument('--max-side', type=int, default=None, help='centre-crop each held-out photo to this many px (default: whole)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    a = p.parse_args(args)
    if a.threads: torch.set_num_threads(a.threads)
    train, held = sr_split(a.photos)
    held = held[:a.n_photos] if a.n_photos else held
    ev = lambda fn: heldout_eval(fn, held, kinds=KINDS, max_side=a.max_side)
    print(f'held-out photos ({len(held)}): {", ".join(f.stem for f in held)}; trained on {len(train)} other source photos')

    t = time.perf_counter(); shipped = ev(upscale_fn(load_upscaler(a.weights))); t_ev = time.perf_counter() - t
    wfn = a.weights or data_dir()/'weights'/'upscaler.pth'
    meta = json.loads(open(os.path.splitext(str(wfn))[0] + '.json').read()) if os.path.exists(os.path.splitext(str(wfn))[0] + '.json') else {}
    t = time.perf_counter()
    learn = train_upscaler(train, epochs=a.epochs, steps=a.steps, bs=a.bs, size=a.size, lr=a.lr)
    t_tr = time.perf_counter() - t
    fresh = ev(upscale_fn(learn.model))

    print('\nPSNR-Y (dB) by degradation, higher is better:')
    print(pd.DataFrame({'bicubic': shipped.bic_psnr_y, 'shipped': shipped.psnr_y, 'trained here': fresh.psnr_y}).round(3).to_string())
    print('\nSSIM:')
    print(pd.DataFrame({'bicubic': shipped.bic_ssim, 'shipped': shipped.ssim, 'trained here': fresh.ssim}).round(4).to_string())
    for name, tb in (('shipped', shipped), ('trained here', fresh)):
        print(f'\n{name}, full table:'); print(tb[COLS].round(3).to_string())
    print(f'\nshipped: {meta.get("params", "?")} parameters, {meta.get("steps", "?")} steps, {meta.get("wall_s", "?")} s to train; '
          f'made by: {meta.get("command", "python scripts/train_upscaler.py")}; scored in {t_ev:.0f} s')
    print(f'trained here: {a.epochs*a.steps} steps (bs {a.bs}, {a.size} px) in {t_tr:.0f} s wall on {torch.get_num_threads()} threads; '
          f'the same as: python scripts/train_upscaler.py --epochs {a.epochs} --steps {a.steps} --bs {a.bs} --size {a.size} --lr {a.lr:g}')
    return shipped, fresh

if __name__ == '__main__': main()

"""The shipped upscaler on degradations it was not trained with: the held-out photos (never trained on) shrunk with other
resampling filters than training's bicubic (Lanczos, box/area, bilinear), then enlarged back with bicubic, and scored
like `imgcourse.metrics.heldout_eval` (PSNR-Y with a border of `scale` pixels shaved). An evaluator's own downscaler is
rarely the one a model was trained on; this shows how much of the gain survives the change.

    python bench/sr_robustness.py                                   # the shipped weights, about a minute on 2 cores
    python bench/sr_robustness.py --weights my.pth --max-side 96    # other weights; centre crops (a smoke run)
"""
import argparse, time
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import numpy as np, pandas as pd, torch
from PIL import Image
from imgcourse.metrics import sr_split, psnr_y, ssim_rgb, im2t, load_rgb, _centre
from imgcourse.superres import load_upscaler, upscale_fn

FILTERS = dict(bicubic=Image.BICUBIC, lanczos=Image.LANCZOS, box=Image.BOX, bilinear=Image.BILINEAR)

def main(args=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--weights', default=None, help='default: the shipped data/weights/upscaler.pth')
    p.add_argument('--filters', default='bicubic,lanczos,box,bilinear'); p.add_argument('--scales', default='2,3,4')
    p.add_argument('--max-side', type=int, default=None, help='centre-crop each photo to at most this many px a side')
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args(args)
    torch.set_num_threads(a.threads)
    fn, t0, rows = upscale_fn(load_upscaler(a.weights)), time.time(), []
    for f in sr_split()[1]:
        im = load_rgb(f)
        if a.max_side: im = im.crop(_centre(im.size, a.max_side))
        for s in map(int, a.scales.split(',')):
            hi = im.crop((0, 0, im.width - im.width % s, im.height - im.height % s))
            for name in a.filters.split(','):
                x, t = im2t(hi.resize((hi.width//s, hi.height//s), FILTERS[name]).resize(hi.size, Image.BICUBIC)), im2t(hi)
                with torch.no_grad(): o = fn(x[None]).float().clamp(0, 1)[0]
                rows.append(dict(down=name, scale=s, photo=f.stem, d_psnr_y=psnr_y(o, t, s) - psnr_y(x, t, s),
                                 d_ssim=ssim_rgb(o, t, s) - ssim_rgb(x, t, s)))
    df = pd.DataFrame(rows)
    g = df.groupby(['scale', 'down'], sort=False)
    t = g[['d_psnr_y', 'd_ssim']].mean().join(g.d_psnr_y.min().rename('min_d_psnr_y')).join(g.size().rename('photos'))
    print(f'upscaler minus bicubic on {df.photo.nunique()} held-out photos, by the filter that shrank them '
          f'(training used bicubic); {time.time() - t0:.0f} s')
    print(t.round(3).to_string())
    return t

if __name__ == '__main__': main()

"""Every super-resolution model of the course on photos none of them was trained on, in one table: bicubic, the lesson's
U-Net and notebook 02's residual U-Net (pixel loss, trained here), the shipped upscaler (pixel loss), the upscaler
fine-tuned with a feature loss (random VGG16-bn, and the degradation detector of notebook 03 trained here), and the
best snapshot of a short GAN phase from the upscaler (notebook 04's `short_gan`, the snapshot picked on the validation
tiles, never on the held-out photos). Scores: `imgcourse.losses.heldout_compare` (PSNR-Y with the border shaved, SSIM,
sharpness ratio against the original) for clean bicubic x2 and x4 and the lesson's crappifier, on the held-out half of
data/sr_photos (split by source photo). Prints each model's training wall time and what made it.

    python bench/sr_table.py                       # CPU defaults: about 15 min on 2 cores
    python bench/sr_table.py --unet-steps 2 --ft-steps 2 --feat-steps 2 --crit-epochs 1 --gan-epochs 1 \\
        --n-photos 1 --max-side 64 --ft-size 32 --n-items 12   # a smoke run (a minute)
"""
import argparse, json, math, os, time
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch, pandas as pd
from fastai.vision.all import resnet34, Learner, MSELossFlat, set_seed
from fastai.vision.all import defaults, ProgressCallback
defaults.callbacks = [c for c in defaults.callbacks if c is not ProgressCallback]  # no progress bars in this table's log
from imgcourse.data import data_dir, get_photos, image_files, pretrained_ok, scratch_dir
from imgcourse.metrics import sr_split, psnr, ssim
from imgcourse.superres import sr_dls, sr_learner, make_residual, load_upscaler, upscale_fn
from imgcourse.train import epoch_lines
from imgcourse.losses import (heldout_compare, finetune_upscaler, train_degradation_net, balanced_feature_loss, upscaler_batch,
                              UnitRange, vgg_features, frozen, pool_relus)
from imgcourse.gan import ImageNetIO, short_gan, best_snapshot, load_snapshot

def timed(f, *args, **kwargs):
    t = time.perf_counter(); r = f(*args, **kwargs); return r, time.perf_counter() - t

def train_unet(dls, steps, residual, lr=3e-3):
    "The lesson's U-Net (random encoder offline), or notebook 02's residual one, trained `steps` batches with MSE"
    learn = sr_learner(dls, arch=resnet34, pretrained=pretrained_ok(resnet34))
    if residual: learn = make_residual(learn)
    learn.unfreeze()
    print(f"{'residual' if residual else 'lesson'} U-Net:", end='  ', flush=True)
    with epoch_lines(learn): learn.fit_one_cycle(max(1, math.ceil(steps / len(dls.train))), lr)
    return learn

def main(args=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--unet-steps', type=int, default=120, help='batches for each U-Net (bs 8, 64 px; about 1 s each on 2 CPU cores)')
    p.add_argument('--ft-steps', type=int, default=200, help='fine-tuning batches for each feature loss (notebook 03)')
    p.add_argument('--ft-size', type=int, default=64); p.add_argument('--feat-steps', type=int, default=400, help="degradation detector's batches")
    p.add_argument('--crit-epochs', type=int, default=3); p.add_argument('--gan-epochs', type=int, default=4)
    p.add_argument('--n-photos', type=int, default=None, help='score only the first N held-out photos (default: all)')
    p.add_argument('--max-side', type=int, default=384, help='centre-crop each held-out photo (0: whole photos)')
    p.add_argument('--n-items', type=int, default=None, help="use only N of the lesson's photo tiles for the U-Nets and the GAN (smoke runs)")
    p.add_argument('--threads', type=int, default=None)
    a = p.parse_args(args)
    if a.threads: torch.set_num_threads(a.threads)
    train, held = sr_split()
    held = held[:a.n_photos] if a.n_photos else held
    work = scratch_dir('srtable')  # the GAN's files: removed at exit, or by the next run if this one is killed
    fns, made = {}, {}
    meta = json.loads((data_dir()/'weights'/'upscaler.json').read_text())
    fns['upscaler (pixel loss)'] = upscale_fn(load_upscaler())
    made['upscaler (pixel loss)'] = f"{meta['steps']} steps, {meta['wall_s']:.0f} s: {meta['command']}"

    set_seed(42)
    photos = get_photos(); n = len(image_files(photos))
    n = min(n, a.n_items or n)
    dls = sr_dls(photos, size=64, bs=8, valid_pct=0.1, n_items=a.n_items, num_workers=0, repeat=max(1, round(min(a.unet_steps, 100)*8/n)))
    for name, res in (('lesson U-Net (pixel loss)', False), ('residual U-Net (pixel loss)', True)):
        learn, s = timed(train_unet, dls, a.unet_steps, res)
        fns[name], made[name] = upscale_fn(learn), f'{a.unet_steps} steps, {s:.0f} s: sr_learner(resnet34){" + make_residual" if res else ""}, notebook 02'

    dnet, s_feat = timed(train_degradation_net, a.feat_steps, size=a.ft_size)
    own = frozen(dnet.model[0])
    pb, yb = upscaler_batch(a.ft_size)
    losses = {'random VGG': UnitRange(balanced_feature_loss(vgg_features(n_blocks=5), [22, 32, 42], pb, yb)),
              'own network': UnitRange(balanced_feature_loss(own, pool_relus(own), pb, yb))}
    for k, loss in losses.items():
        learn, s = timed(finetune_upscaler, loss, a.ft_steps, size=a.ft_size)
        name = f'upscaler + feature loss ({k})'
        fns[name] = upscale_fn(learn.model.eval())
        made[name] = f'{a.ft_steps} steps, {s:.0f} s' + (f' (+ {s_feat:.0f} s for the detector)' if k == 'own network' else '') + ': finetune_upscaler, notebook 03'

    gdls = sr_dls(photos, size=64, bs=8, valid_pct=0.1, n_items=a.n_items, num_workers=0, repeat=2)
    files, src = list(dict.fromkeys(gdls.train_ds.items)), photos
    up = Learner(gdls, ImageNetIO(load_upscaler()), loss_func=MSELossFlat(), metrics=[psnr, ssim], path=work)
    with up.no_bar():
        (gan, snaps), s = timed(short_gan, up, files, src, gdls.valid, work/'gan', size=64, bs=8, num_workers=0,
                                crit_epochs=a.crit_epochs, crit_repeat=4, gan_epochs=a.gan_epochs)
    best = best_snapshot(snaps)
    name = f'upscaler + GAN (epoch {best.name}, picked by {snaps.metric} on validation tiles)'
    fns[name] = upscale_fn(load_snapshot(ImageNetIO(load_upscaler()), best['file']).m)
    made[name] = f'{a.crit_epochs} critic + {a.gan_epochs} GAN epochs, {s:.0f} s: short_gan, notebook 04'

    t = time.perf_counter()
    table = pd.concat({k: heldout_compare(fns, held, kind=k, max_side=a.max_side or None) for k in ('x2', 'x4', 'lesson')})
    print(f'\n{len(held)} held-out photos ({", ".join(f.stem for f in held)}){f", centre {a.max_side} px" if a.max_side else ""}; '
          f'scored in {time.perf_counter() - t:.0f} s; sharpness 1.0 = the original\'s fine detail')
    print(table.round(4).to_string())
    print('\nhow each model was made (wall time on this machine):')
    for k, v in made.items(): print(f'  {k}: {v}')
    return table

if __name__ == '__main__': main()

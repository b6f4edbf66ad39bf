"""Training throughput with the perceptual loss: fastai `Learner` vs a plain PyTorch loop, same model, loss and data.

`--model unet` (full mode's): the lesson's super-resolution U-Net (`imgcourse.superres.sr_learner`) with
`imgcourse.losses.FeatureLoss` on the lesson's VGG16-bn layers 22/32/42 with Gram terms (random weights unless --pretrained).
`--model srnet` (CPU mode's, notebook 03's "feature loss on a model that already works"): the shipped upscaler `SRNet`
with a balanced `FeatureLoss` wrapped in `UnitRange`, on `--feat lesson` (random VGG16-bn, 22/32/42) or `--feat own`
(`degradation_net`'s features, read after each block), at 64 px and bs 8 as `finetune_upscaler` trains it.
Both sides read the same in-memory batches, so the difference is the training loop itself; all timing is
`imgcourse.train`'s (`time_loop`, `time_learner`). Paths (`--only`):

- plain:     a plain PyTorch loop (`time_loop`): forward, loss, backward, fused AdamW, zero_grad; fp32, eager
- fastai:    fastai's `Learner` as is
- fast:      the `Learner` after `train.speed_up` (fused AdamW, loss kept on the device, channels_last)
- fast_path: the `Learner` after `train.fast_path` as the CPU mode uses it for this model (`finetune_upscaler`:
             channels_last, bf16 autocast where the CPU has AMX, not compiled); `--compile` compiles it too

    python bench/bench_losses.py --device cuda --bs 64 --steps 50 --precision bf16     # a GPU, bf16
    python bench/bench_losses.py --device cpu --bs 4 --steps 3 --feat quick            # a smoke run on a CPU
    python bench/bench_losses.py --model srnet --feat own --device cpu --threads 2 --steps 30 --only plain,fastai,fast_path --repeat 3
"""
import argparse
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch, torch.nn.functional as F

def parse():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--model', default='unet', choices=['unet', 'srnet'], help="unet: full mode's U-Net; srnet: the CPU mode's upscaler")
    p.add_argument('--bs', type=int, default=None, help='batch size (default: 64 for unet, 8 for srnet)')
    p.add_argument('--size', type=int, default=None, help='image size, px (default: 128 for unet, 64 for srnet)')
    p.add_argument('--steps', type=int, default=50, help='timed training steps')
    p.add_argument('--warmup', type=int, default=5, help='untimed steps first')
    p.add_argument('--precision', default=None, choices=['bf16', 'fp32'],
                   help='bf16: autocast (on a CPU too) for fastai/fast (default: bf16 for unet, fp32 for srnet); the plain loop is always fp32 for srnet')
    p.add_argument('--arch', default='resnet34', help='U-Net encoder (torchvision name)')
    p.add_argument('--feat', default='lesson', choices=['lesson', 'own', 'quick'],
                   help="lesson: VGG16-bn 22/32/42; own: `degradation_net` (srnet only); quick: VGG's first 2 blocks, layers 5/12 (smoke tests)")
    p.add_argument('--pretrained', action='store_true', help='ImageNet weights for encoder and VGG, when they can be had')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--only', default='plain,fastai,fast', help='which loops to run, comma-separated (plain, fastai, fast, fast_path)')
    p.add_argument('--compile', action='store_true', help='fast_path compiles the model too')
    p.add_argument('--repeat', type=int, default=1, help='time each path this many times (interleaved); the median is reported')
    a = p.parse_args()
    srnet = a.model == 'srnet'
    a.bs, a.size = a.bs or (8 if srnet else 64), a.size or (64 if srnet else 128)
    a.precision = a.precision or ('fp32' if srnet else 'bf16')
    if a.feat == 'own' and not srnet: p.error('--feat own is for --model srnet')
    return a

def main():
    a = parse()
    if a.threads: torch.set_num_threads(a.threads)
    only = a.only.split(',')
    from fastai.vision.all import DataLoader, DataLoaders, TensorImage, Learner, set_seed
    import torchvision.models as tvm
    from imgcourse.losses import lesson_feature_loss, FeatureLoss, vgg_features, UnitRange, degradation_net, pool_relus, balanced_feature_loss
    from imgcourse.superres import sr_learner, load_upscaler
    from imgcourse.train import speed_up, time_loop, time_learner, fast_path, set_precision, n_params
    dev, prec, srnet = torch.device(a.device), a.precision, a.model == 'srnet'
    n = a.bs*(a.warmup + a.steps + 1)
    g = torch.Generator().manual_seed(0)
    ys = torch.rand(n, 3, a.size, a.size, generator=g)
    xs = F.interpolate(F.interpolate(ys, scale_factor=0.5, mode='bilinear'), size=a.size, mode='bilinear').clamp(0, 1)
    norm = (lambda t: t) if srnet else (lambda t: (t-0.45)/0.25)  # SRNet works on [0, 1]; the U-Net on normalised images
    ds = [(TensorImage(norm(x)), TensorImage(norm(y))) for x, y in zip(xs, ys)]
    dls = DataLoaders(DataLoader(ds, bs=a.bs, shuffle=True, drop_last=True, device=dev), DataLoader(ds[:a.bs], bs=a.bs, device=dev))
    def feats():
        if a.feat == 'own': m = degradation_net()[0]; return m, pool_relus(m)
        if a.feat == 'quick': return vgg_features(a.pretrained, n_blocks=2), [5, 12]
        return vgg_features(a.pretrained, n_blocks=5), [22, 32, 42]
    def loss():
        if srnet:  # weighted as notebook 03 weights it, on one batch
            (m, ids), to_imagenet = feats(), UnitRange(None).norm
            return UnitRange(balanced_feature_loss(m, ids, to_imagenet(xs[:a.bs]), to_imagenet(ys[:a.bs]))).to(dev)
        if a.feat == 'lesson': return lesson_feature_loss(pretrained=a.pretrained)
        return FeatureLoss(*feats(), layer_wgts=(5, 15))  # a smoke-test size
    def learner(path):
        set_seed(0)
        if srnet:
            l = Learner(dls, load_upscaler().train(), loss_func=loss(), path='/tmp/bench_losses')
            if path == 'fast_path': fast_path(l, compile=a.compile, bf16=None)
            else: set_precision(l, prec)
        else:
            l = sr_learner(dls, loss_func=loss(), arch=getattr(tvm, a.arch), pretrained=a.pretrained, metrics=(), precision=prec, path='/tmp/bench_losses')
            if path == 'fast_path': fast_path(l, compile=a.compile, bf16=None if prec == 'bf16' else False)
        return speed_up(l) if path == 'fast' else l
    def done(l): getattr(l.loss_func, 'loss', l.loss_func).remove()
    res, warm = {}, {}
    for path in only * a.repeat:
        torch.compiler.reset()  # each round compiles a new model: without this, dynamo's recompile limit (8) turns later rounds eager
        l = learner(path); size = n_params(l.model)
        if path == 'plain':
            ips = time_loop(l.model, dls.train, a.steps, a.warmup, lr=1e-4, precision='fp32' if srnet else prec, loss_func=l.loss_func, wd=1e-3)
        elif path in ('fastai', 'fast', 'fast_path'):
            ips = time_learner(l, a.steps, a.warmup, lr=1e-4); warm[path] = l.train_timer.warm_secs
        else: raise SystemExit(f'unknown path {path!r}')
        done(l); del l
        res.setdefault(path, []).append(ips)
        print(f'  {path:>10}: {ips:8.1f} img/s', flush=True)

    gpu = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    model = f'SRNet ({size:,} parameters, the shipped weights)' if srnet else f'U-Net {a.arch} ({size:,} parameters)'
    feat = {'lesson': 'VGG16-bn 22/32/42', 'own': 'degradation_net', 'quick': 'VGG16-bn 5/12'}[a.feat]
    print(f'{gpu}; {a.size}px, bs {a.bs}, {a.steps} timed steps after {a.warmup}, {prec}, {model}, '
          f'feature net: {feat}, {"pretrained if available" if a.pretrained else "random weights"}'
          + (f'; median of {a.repeat} interleaved runs' if a.repeat > 1 else ''))
    names = dict(plain='plain PyTorch loop', fastai='fastai Learner', fast='fastai Learner + speed_up', fast_path='fastai Learner + fast_path')
    med = {k: sorted(v)[len(v)//2] for k, v in res.items()}
    base = med.get('plain')
    for k, v in med.items():
        print(f'{names[k]:28s} {v:9.2f} img/s' + (f'   {v/base:.2f}x the plain loop' if base and k != 'plain' else '')
              + (f'   (warm-up {a.warmup} steps: {warm[k]:.1f} s)' if k in warm else ''))

if __name__ == '__main__': main()

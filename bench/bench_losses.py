"""Training throughput with the perceptual loss: fastai `Learner` vs a plain PyTorch loop, same model, loss and data.

The model is the lesson's super-resolution U-Net (`imgcourse.superres.sr_learner`), the loss `imgcourse.losses.FeatureLoss`
(the lesson's VGG16-bn layers 22/32/42 with Gram terms, random weights unless --pretrained). Both loops read the same
in-memory batches through the same fastai `DataLoader`, so the difference is the training loop itself; all timing is
`imgcourse.train`'s (`time_loop`, `time_learner`).
Prints images/s for: the plain loop, fastai's `Learner` as is, and the `Learner` after `train.speed_up`.

    python bench/bench_losses.py --device cuda --bs 64 --steps 50 --precision bf16     # a GPU, bf16
    python bench/bench_losses.py --device cpu --bs 4 --steps 3 --feat quick            # a smoke run on a CPU
"""
import argparse
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch, torch.nn.functional as F

def parse():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--size', type=int, default=128, help='image size, px')
    p.add_argument('--steps', type=int, default=50, help='timed training steps')
    p.add_argument('--warmup', type=int, default=5, help='untimed steps first')
    p.add_argument('--precision', default='bf16', choices=['bf16', 'fp32'], help='bf16: autocast (on a CPU too)')
    p.add_argument('--arch', default='resnet34', help='U-Net encoder (torchvision name)')
    p.add_argument('--feat', default='lesson', choices=['lesson', 'quick'], help="lesson: VGG16-bn 22/32/42; quick: VGG's first 2 blocks, layers 5/12 (smoke tests)")
    p.add_argument('--pretrained', action='store_true', help='ImageNet weights for encoder and VGG, when they can be had')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--only', default='plain,fastai,fast', help='which loops to run, comma-separated')
    return p.parse_args()

def main():
    a = parse()
    if a.threads: torch.set_num_threads(a.threads)
    only = set(a.only.split(','))
    from fastai.vision.all import DataLoader, DataLoaders, TensorImage, set_seed
    import torchvision.models as tvm
    from imgcourse.losses import lesson_feature_loss, FeatureLoss, vgg_features
    from imgcourse.superres import sr_learner
    from imgcourse.train import speed_up, time_loop, time_learner
    dev = torch.device(a.device)
    prec = a.precision
    arch = getattr(tvm, a.arch)
    n = a.bs*(a.warmup + a.steps + 1)
    g = torch.Generator().manual_seed(0)
    ys = torch.rand(n, 3, a.size, a.size, generator=g)
    xs = F.interpolate(F.interpolate(ys, scale_factor=0.5, mode='bilinear'), size=a.size, mode='bilinear')
    ds = [(TensorImage((x-0.45)/0.25), TensorImage((y-0.45)/0.25)) for x, y in zip(xs, ys)]
    dls = DataLoaders(DataLoader(ds, bs=a.bs, shuffle=True, drop_last=True, device=dev), DataLoader(ds[:a.bs], bs=a.bs, device=dev))
    def loss():
        if a.feat == 'lesson': return lesson_feature_loss(pretrained=a.pretrained)
        return FeatureLoss(vgg_features(a.pretrained, n_blocks=2), layer_ids=(5, 12), layer_wgts=(5, 15))  # a smoke-test size
    def learner(fast=False):
        set_seed(0)
        fl = loss()
        l = sr_learner(dls, loss_func=fl, arch=arch, pretrained=a.pretrained, metrics=(), precision=prec, path='/tmp/bench_losses')
        return speed_up(l) if fast else l
    res = {}
    if 'plain' in only:
        l = learner()
        res['plain PyTorch loop'] = time_loop(l.model, dls.train, a.steps, a.warmup, lr=1e-4, precision=prec,
                                              loss_func=l.loss_func, wd=1e-3)
        l.loss_func.remove(); del l
    for name, fast in (('fastai Learner', False), ('fastai Learner + speed_up', True)):
        if ('fast' if fast else 'fastai') not in only: continue
        l = learner(fast)
        res[name] = time_learner(l, a.steps, a.warmup, lr=1e-4)
        l.loss_func.remove(); del l

    gpu = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'{gpu}; {a.size}px, bs {a.bs}, {a.steps} timed steps after {a.warmup}, {prec}, U-Net {a.arch}, '
          f'feature net: {a.feat} VGG16-bn, {"pretrained if available" if a.pretrained else "random weights"}')
    base = res.get('plain PyTorch loop')
    for k, v in res.items():
        print(f'{k:28s} {v:9.2f} img/s' + (f'   {v/base:.2f}x the plain loop' if base and k != 'plain PyTorch loop' else ''))

if __name__ == '__main__': main()

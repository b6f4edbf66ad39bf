"""Which memory format trains each CPU-mode model faster: a plain PyTorch training loop (`imgcourse.train.time_loop`:
forward, loss, backward, fused AdamW, zero_grad) of the same model on one repeated random batch, four ways, interleaved:
fp32 or bf16 autocast, NCHW or channels_last. Ratios are to fp32 NCHW, the median of the per-round ratios.

This is what `imgcourse.train.LayoutProbe` decides for a `Learner` at its first batch (one forward and backward pass
each way); here the whole step is timed, for every model the lessons train in the CPU mode, at the CPU mode's sizes:

- resnet:    lesson 01's 41k-parameter `resnet_mnist` (8 to 32 channels), MNIST 28 px, bs 128
- wide:      lesson 01's Fashion-MNIST `wide_resnet(width=16, stride=2)`, 28 px, bs 256
- srnet:     the upscaler `SRNet` (48 channels at half resolution), 96 px crops, bs 16 (lesson 02's `train_upscaler`)
- degnet:    lesson 03's `degradation_net` (32 to 128 channels), 64 px, bs 32
- wgan_gen, wgan_crit: lesson 05's pair (16 features, 32 px, one channel), bs 64

    python bench/bench_layout.py --threads 2 --repeat 3
"""
import argparse
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch, torch.nn as nn, torch.nn.functional as F
from imgcourse.train import time_loop, RepeatDL, cpu_bf16
from imgcourse.resnet import resnet_mnist, wide_resnet
from imgcourse.superres import SRNet
from imgcourse.losses import degradation_net
from imgcourse.wgan import wgan_models

def _mse0(pred, targ): return pred.float().pow(2).mean()  # any differentiable loss: the networks' cost is what is timed
def _ce(pred, targ): return F.cross_entropy(pred.float(), targ)
def _wgan(i): return wgan_models(32, n_channels=1, n_features=16, n_extra_layers=0)[i]

MODELS = {  # name: (model, input shape, classes for a cross-entropy target or None)
    'resnet': (resnet_mnist, (128, 1, 28, 28), 10),
    'wide': (lambda: wide_resnet(width=16, stride=2), (256, 1, 28, 28), 10),
    'srnet': (SRNet, (16, 3, 96, 96), None),
    'degnet': (degradation_net, (32, 3, 64, 64), 6),
    'wgan_gen': (lambda: nn.Sequential(*list(_wgan(0))[1:]), (64, 100, 1, 1), None),  # without `AddChannels`: noise as (bs, 100, 1, 1)
    'wgan_crit': (lambda: _wgan(1), (64, 1, 32, 32), None),
}
WAYS = {'fp32 NCHW': {}, 'fp32 channels_last': dict(channels_last=True),
        'bf16 NCHW': dict(precision='bf16'), 'bf16 channels_last': dict(precision='bf16', channels_last=True)}

def main(args=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', default=','.join(MODELS), help='comma-separated: ' + ', '.join(MODELS))
    p.add_argument('--steps', type=int, default=15, help='timed steps per way and round')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeat', type=int, default=3, help='interleaved rounds; medians reported')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    a = p.parse_args(args)
    if a.threads: torch.set_num_threads(a.threads)
    names = a.models.split(',')
    if bad := [n for n in names if n not in MODELS]: p.error(f'unknown model(s) {bad}; choose from {list(MODELS)}')
    print(f'plain training loop on the CPU, {torch.get_num_threads()} threads, bf16 matrix units (AMX): {cpu_bf16()}; '
          f'{a.steps} timed steps after {a.warmup}, medians of {a.repeat} interleaved rounds; images/s (ratio to fp32 NCHW)')
    for name in names:
        mk, shape, n_cls = MODELS[name]
        g = torch.Generator().manual_seed(0)
        b = (torch.randn(shape, generator=g), torch.randint(0, n_cls or 2, (shape[0],), generator=g))
        res = {w: [] for w in WAYS}
        for _ in range(a.repeat):
            for w, kw in WAYS.items():
                torch.manual_seed(0)
                res[w].append(time_loop(mk(), RepeatDL(b, a.steps + a.warmup), a.steps, a.warmup, loss_func=_ce if n_cls else _mse0, **kw))
        med = lambda v: sorted(v)[len(v)//2]
        ratios = {w: med([x/r for x, r in zip(v, res['fp32 NCHW'])]) for w, v in res.items()}
        best = max(('bf16 NCHW', 'bf16 channels_last') if cpu_bf16() else ('fp32 NCHW', 'fp32 channels_last'), key=ratios.get)
        print(f'{name:10s} ' + '  '.join(f'{w} {med(v):,.0f} ({ratios[w]:.2f}x)' for w, v in res.items()) + f'  -> faster: {best.split()[1]}', flush=True)

if __name__ == '__main__': main()

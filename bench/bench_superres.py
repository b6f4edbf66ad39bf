"""Training throughput of the lesson's super-resolution U-Net: a plain PyTorch loop against fastai's Learner, same model, same loss, same run.

The model is `sr_learner`'s `DynamicUnet` (resnet34 encoder, blur, weight norm, self-attention, y_range), the loss
`MSELossFlat`, the data one random batch kept on the device (so data loading is not measured, on either side).
Three ways of training are timed, each for `--steps` steps after `--warmup` steps:

- loop:          forward, loss, backward, `torch.optim.AdamW` step (fused), zero_grad; no `.item()` anywhere
- learner:       `Learner.fit` as it comes (fastai's Python Adam, Recorder syncing the loss to the CPU every batch, progress bar)
- learner+speed: the same Learner after `imgcourse.train.speed_up` (fused AdamW via OptimWrapper, loss kept on the device,
                 no progress bar, channels_last)

Precision is bf16 autocast (`--precision bf16`, CUDA) or fp32; `--channels-last` applies to the loop too.
Example (GPU):  python bench/bench_superres.py --device cuda --bs 64 --steps 50 --precision bf16 --channels-last
Example (CPU):  python bench/bench_superres.py --device cpu --bs 4 --steps 3 --warmup 1 --precision fp32
"""
import argparse, copy, time, warnings
warnings.filterwarnings('ignore')
import torch
from fastai.vision.all import (DataLoaders, Callback, CancelValidException, MSELossFlat, resnet34, resnet18, defaults)
from imgcourse.superres import sr_learner
from imgcourse.train import speed_up, set_precision

class OneBatchDL:
    "`n` copies of one batch already on the device: a data loader that costs nothing"
    def __init__(self, b, n): self.b, self.n = b, n
    def __len__(self): return self.n
    def __iter__(self): return (self.b for _ in range(self.n))
    def one_batch(self): return self.b
    def to(self, device): return self

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

class Timer(Callback):
    "Time training steps `warmup`..end; skip validation"
    order = 100
    def __init__(self, warmup): self.warmup = warmup
    def before_batch(self):
        if self.training and self.iter == self.warmup: sync(self.dls.device); self.t0 = time.perf_counter()
    def after_train(self): sync(self.dls.device); self.t1 = time.perf_counter()
    def before_validate(self): raise CancelValidException()

def bench_learner(learn, args, steps):
    timer = Timer(args.warmup)
    with learn.no_logging(): learn.fit_one_cycle(1, 1e-4, cbs=timer)  # with its per-batch schedule, as in real training
    return (steps - args.warmup)*args.bs/(timer.t1 - timer.t0)

def bench_loop(model, b, args, device):
    x, y = b
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3, betas=(0.9, 0.99), eps=1e-5, fused=True)
    loss_func = MSELossFlat()
    model.train()
    bf16 = args.precision == 'bf16' and device.type == 'cuda'
    for i in range(args.warmup + args.steps):
        if i == args.warmup: sync(device); t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_func(model(x).float(), y)
        loss.backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    sync(device)
    return args.steps*args.bs/(time.perf_counter() - t0)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--steps', type=int, default=50, help='timed steps')
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--precision', choices=['bf16', 'fp32'], default=None, help='default: bf16 on CUDA, fp32 on CPU')
    p.add_argument('--channels-last', action='store_true', help='channels_last for the loop (learner+speed always uses it)')
    p.add_argument('--arch', choices=['resnet34', 'resnet18'], default='resnet34')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--only', default='loop,learner,learner+speed', help='comma-separated subset')
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.precision = args.precision or ('bf16' if device.type == 'cuda' else 'fp32')
    defaults.device = device
    torch.manual_seed(0)
    x = torch.randn(args.bs, 3, args.size, args.size, device=device)
    y = torch.randn(args.bs, 3, args.size, args.size, device=device).clamp(-2.5, 2.5)
    n = args.warmup + args.steps
    dls = DataLoaders(OneBatchDL((x, y), n), OneBatchDL((x, y), 0), device=device)
    arch = dict(resnet34=resnet34, resnet18=resnet18)[args.arch]
    learn = sr_learner(dls, arch=arch, pretrained=False, metrics=None, precision='fp32')
    init = copy.deepcopy(learn.model.state_dict())
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'DynamicUnet({args.arch}, blur, weight norm, self-attention), MSE, {args.size} px, bs {args.bs}, '
          f'{args.steps} timed steps after {args.warmup} warm-up, {args.precision}, device: {gpu}')
    res = {}
    for what in args.only.split(','):
        learn.model.load_state_dict(init)
        if what == 'loop':
            m = learn.model.to(device)
            if args.channels_last: m = m.to(memory_format=torch.channels_last)
            res[what] = bench_loop(m, (x, y), args, device)
            m.to(memory_format=torch.contiguous_format)
        elif what == 'learner':
            l = sr_learner(dls, arch=arch, pretrained=False, metrics=None, precision=args.precision)
            l.model.load_state_dict(init)
            res[what] = bench_learner(l, args, n)
        elif what == 'learner+speed':
            l = sr_learner(dls, arch=arch, pretrained=False, metrics=None, precision=args.precision)
            l.model.load_state_dict(init)
            res[what] = bench_learner(speed_up(l), args, n)
    base = res.get('loop')
    for k, v in res.items():
        print(f'{k:>14}: {v:8.1f} img/s' + (f'   {v/base:.2f}x of the loop' if base and k != 'loop' else ''))

if __name__ == '__main__': main()

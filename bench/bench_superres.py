"""Training throughput of a super-resolution model: a plain PyTorch loop against fastai's Learner, same model, same loss, same run.

`--model unet` (full mode's): `sr_learner`'s `DynamicUnet` (resnet34 encoder, blur, weight norm, self-attention, y_range),
loss `MSELossFlat`. `--model srnet` (CPU mode's and the shipped upscaler's): `SRNet` with `charbonnier`. The data one random batch kept on the device (`imgcourse.train.repeat_dls`, so data loading is not
measured, on either side). All timing is `imgcourse.train`'s (`time_loop`, `time_learner`). Paths (`--only`):

- loop:          `time_loop`: forward, loss, backward, fused `AdamW` step, zero_grad; nothing else
- learner:       `Learner.fit` as it comes (fastai's Python Adam, Recorder syncing the loss every batch)
- learner+speed: the same Learner after `imgcourse.train.speed_up` (fused AdamW, loss kept on the device, channels_last)
- fast_path:     the same Learner after `imgcourse.train.fast_path` (the device's automatic choice: compiled, channels_last, ...)

Precision is bf16 autocast (`--precision bf16`) or fp32; `--channels-last` applies to the loop too.
Example (GPU):  python bench/bench_superres.py --device cuda --bs 64 --steps 50 --precision bf16 --channels-last
Example (CPU):  python bench/bench_superres.py --device cpu --bs 4 --steps 3 --warmup 1 --precision fp32
The CPU mode's model:  python bench/bench_superres.py --device cpu --threads 2 --model srnet --bs 16 --size 96 --steps 20 --only loop,learner,fast_path --repeat 3
"""
import argparse, copy
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch
from fastai.vision.all import MSELossFlat, resnet34, resnet18, defaults
from fastai.vision.all import Learner
from imgcourse.superres import sr_learner, SRNet, charbonnier
from imgcourse.train import speed_up, time_loop, time_learner, repeat_dls, RepeatDL
import imgcourse.train as T

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--steps', type=int, default=50, help='timed steps')
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--precision', choices=['bf16', 'fp32'], default=None, help='default: bf16 on CUDA, fp32 on CPU')
    p.add_argument('--channels-last', action='store_true', help='channels_last for the loop (learner+speed always uses it)')
    p.add_argument('--model', choices=['unet', 'srnet'], default='unet')
    p.add_argument('--arch', choices=['resnet34', 'resnet18'], default='resnet34', help='the U-Net encoder')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--only', default='loop,learner,learner+speed', help='comma-separated subset')
    p.add_argument('--backend', default='inductor', help="fast_path's torch.compile backend ('eager': trace only, for smoke tests; 'none': do not compile)")
    p.add_argument('--fast-bf16', default='auto', choices=['no', 'yes', 'auto'], help="fast_path's bf16 autocast (auto: on GPUs by precision, on CPUs with AMX)")
    p.add_argument('--repeat', type=int, default=1, help='time each path this many times (interleaved); the median is reported')
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.precision = args.precision or ('bf16' if device.type == 'cuda' else 'fp32')
    defaults.device = device
    torch.manual_seed(0)
    srnet = args.model == 'srnet'
    x = torch.rand(args.bs, 3, args.size, args.size, device=device) if srnet else torch.randn(args.bs, 3, args.size, args.size, device=device)
    y = (x + 0.05*torch.randn_like(x)).clamp(0, 1) if srnet else torch.randn(args.bs, 3, args.size, args.size, device=device).clamp(-2.5, 2.5)
    n = args.warmup + args.steps
    dls = repeat_dls((x, y), n)
    arch = dict(resnet34=resnet34, resnet18=resnet18)[args.arch]
    loss = charbonnier if srnet else MSELossFlat()
    def mk(prec='fp32'):
        if not srnet: return sr_learner(dls, arch=arch, pretrained=False, metrics=None, precision=prec)
        l = Learner(dls, SRNet(), loss_func=charbonnier)
        return T.set_precision(l, prec)
    init = copy.deepcopy(mk().model.state_dict())
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    what_model = f'SRNet ({T.n_params(SRNet()):,} parameters), charbonnier' if srnet else f'DynamicUnet({args.arch}, blur, weight norm, self-attention), MSE'
    print(f'{what_model}, {args.size} px, bs {args.bs}, '
          f'{args.steps} timed steps after {args.warmup} warm-up, {args.precision}, device: {gpu}', flush=True)
    res, warm = {}, {}
    for what in args.only.split(',') * args.repeat:
        torch.compiler.reset()  # each round compiles a new model: without this, dynamo's recompile limit (8) turns later rounds eager
        l = mk(args.precision if what != 'loop' else 'fp32')
        l.model.load_state_dict(init)
        if what == 'loop':
            ips = time_loop(l.model, RepeatDL((x, y), n), args.steps, args.warmup, lr=1e-4, precision=args.precision,
                            loss_func=loss, wd=1e-3, channels_last=args.channels_last)
        elif what in ('learner', 'learner+speed', 'fast_path'):
            if what == 'learner+speed': speed_up(l)
            if what == 'fast_path': T.fast_path(l, bf16=dict(no=False, yes=True, auto=None)[args.fast_bf16], compile=args.backend != 'none', backend=args.backend)
            ips = time_learner(l, args.steps, args.warmup, lr=1e-4)
            warm[what] = l.train_timer.warm_secs
        else: raise SystemExit(f'unknown path {what!r}')
        res.setdefault(what, []).append(ips)
        print(f'  {what:>14}: {ips:8.1f} img/s', flush=True)
    med = {k: sorted(v)[len(v)//2] for k, v in res.items()}
    base = med.get('loop')
    print(f'median of {args.repeat}:' if args.repeat > 1 else 'result:')
    for k, v in med.items():
        print(f'{k:>14}: {v:8.1f} img/s' + (f'   {v/base:.2f}x of the loop' if base and k != 'loop' else '')
              + (f'   (warm-up {args.warmup} steps, compilation included: {warm[k]:.1f} s)' if k in warm else ''))

if __name__ == '__main__': main()

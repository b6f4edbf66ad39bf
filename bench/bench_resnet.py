"""Training throughput (images/s, validation excluded) of the lesson's ResNet on MNIST-shaped data, seven ways:

- fast:    `fast_learner` + `fast_dls` (data on the device, augmentation there, lean callbacks, fused AdamW)
- folder:  a default fastai `Learner` + the lesson's folder `DataBlock` (PIL on the CPU, `num_workers` processes)
- learner: a default fastai `Learner` + `fast_dls` (the same data path as `fast`: isolates fastai's per-batch overhead)
- learner_fused: as `learner` but with `fast_adam` (how much of the overhead is fastai's `Optimizer`)
- loop:    a plain PyTorch loop over `fast_dls` batches (forward, cross-entropy, backward, fused AdamW, zero_grad)
- fast_path: `fast_learner` after `fast_path` (compiled training step, channels_last; bf16 with `--fast-bf16`);
           its warm-up (compilation included) is reported separately
- compiled_loop: the plain loop with fast_path's choices (compiled model, channels_last, bf16 as `--fast-bf16`) and no
           Learner: the ceiling for fast_path, and what the Learner's callbacks cost on top of it
- eager_path: `fast_learner` after `fast_path(compile=False)`, what the CPU mode trains with: not compiled, the memory
           format timed at the first batch (`LayoutProbe`, its time in the warm-up), bf16 as `--fast-bf16`
- eager_cl: the same with channels_last chosen by hand (the CPU mode's choice before `LayoutProbe`)

All timing is `imgcourse.train`'s (`time_loop`, `time_learner`, and `loop_step` + `time_steps` for `--chunks`).

`--repeat` builds (and compiles) every path afresh in each round. On a busy machine the speed of the cores moves within a
round, so ratios of round to round spread widely. `--chunks N` builds and compiles loop, compiled_loop and fast_path once,
then times them in N short interleaved chunks (each path `--steps` batches per chunk, one untimed batch first): the paths
of a chunk run within a second or two of each other and see the same machine.

On a CPU the eager loop's speed depends on the allocator: glibc maps and unmaps each activation larger than its mmap
threshold, and raises that threshold by itself after large blocks are freed. Here the same eager loop ran ~15% faster
after loading MNIST (as this script does first) than in a fresh process on random data, and ~15% faster in a fresh
process with both `MALLOC_MMAP_THRESHOLD_=1000000000` and `MALLOC_TRIM_THRESHOLD_=1000000000`, while the compiled
path barely moved. Setting the mmap threshold alone made both paths slower (glibc then trims the heap after each step
and faults the pages back in), the eager one more, which inflates the ratio. Compare paths within one run, as this
script does, or set both variables (or use jemalloc/tcmalloc) for every path.

`--profile` shows where a training step's time goes (self CPU time of the profiled ops, by kind) for the plain loop and
the fast path: on a small CPU model most of it is oneDNN's convolutions, which compilation cannot fuse.

All use the same model, batch size, augmentation and precision. Example (GPU):
    python bench/bench_resnet.py --bs 512 --steps 200
Overhead per batch, where it dominates (tiny model, small batch):
    python bench/bench_resnet.py --widths 2,2,2,2 --bs 16 --steps 200 --paths fast,learner,loop
"""
import argparse, os, time, platform
from functools import partial
os.environ.setdefault('KINETO_LOG_LEVEL', '5')  # --profile: no GPU-probe errors from the profiler on a CPU-only machine
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch
from fastai.vision.all import Learner, CrossEntropyLossFlat, defaults, default_device, ifnone
from imgcourse.data import get_mnist, get_fashion_mnist, FASHION_SRC
from imgcourse.resnet import *
from imgcourse.train import *

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default=None, help="torch device (default: fastai's default, a GPU if there is one)")
    p.add_argument('--bs', type=int, default=512)
    p.add_argument('--steps', type=int, default=100, help='timed training batches per path')
    p.add_argument('--warmup', type=int, default=10, help='untimed batches first')
    p.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'auto'])
    p.add_argument('--widths', default='8,16,32,16', help="channels of the four stages (the lesson's model: 8,16,32,16)")
    p.add_argument('--data', default='mnist', choices=['mnist', 'fashion'])
    p.add_argument('--n', type=int, default=None, help='use only n images per split (default: all)')
    p.add_argument('--workers', type=int, default=None, help='folder path DataLoader workers (default: min(8, CPUs))')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    p.add_argument('--paths', default='fast,folder,learner,loop')
    p.add_argument('--clock', default='wall', choices=['wall', 'cpu'],
                   help="'cpu': count this process's CPU time (steadier on a shared CPU; not for the folder path, whose workers are other processes)")
    p.add_argument('--train', type=int, default=0,
                   help='instead of timing: train the fast path for this many epochs of one-cycle and report accuracy and wall time')
    p.add_argument('--lr', type=float, default=0.05, help='peak learning rate for --train')
    p.add_argument('--model', default='resnet_mnist', choices=['resnet_mnist', 'wide_resnet'], help='for --train')
    p.add_argument('--width', type=int, default=32, help='wide_resnet width, for --train')
    p.add_argument('--repeat', type=int, default=1, help='time each path this many times (interleaved); best and median reported')
    p.add_argument('--chunks', type=int, default=0,
                   help='instead of --repeat: build (and compile) each of loop, compiled_loop and fast_path once, then time them '
                        'in this many interleaved chunks of --steps batches (finer interleaving: a busy machine slows every path alike)')
    p.add_argument('--fast-bf16', default='no', choices=['no', 'yes', 'auto'], help="fast_path's bf16 autocast (auto: on CPUs with AMX)")
    p.add_argument('--backend', default='inductor', help="fast_path's torch.compile backend ('eager': trace only, for smoke tests)")
    p.add_argument('--profile', action='store_true', help='instead of timing: profile --steps batches of the plain loop and fast_path, time shares by kind of op')
    a = p.parse_args()
    a.bf16 = dict(no=False, yes=True, auto=None)[a.fast_bf16]  # fast_path's `bf16` argument
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch.device(a.device) if a.device else default_device()
    clock = time.process_time if a.clock == 'cpu' else time.perf_counter
    widths = tuple(int(o) for o in a.widths.split(','))
    need_files = 'folder' in a.paths.split(',') and not a.train
    if a.data == 'mnist':
        path = get_mnist(); files = mnist_files(path, n=a.n)
        xt, yt, xv, yv, vocab = split_tensors(files)
    else:  # straight from the IDX files; the PNG folders only for the folder path
        path = FASHION_SRC
        xt, yt, xv, yv, vocab = fashion_tensors(n=a.n)
        if need_files: path = get_fashion_mnist(); files = mnist_files(path, n=a.n)
    stats = pixel_stats(xt)
    tdls = fast_dls(xt, yt, xv, yv, bs=a.bs, stats=stats, vocab=vocab, device=dev)
    prec = default_precision(dev, resnet_mnist(widths)) if a.precision == 'auto' else a.precision
    workers = a.workers if a.workers is not None else min(8, defaults.cpus)
    print(f'device {dev} ({torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()}), '
          f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads; data {a.data} from {path} ({len(xt)} training images); '
          f'model resnet_mnist{widths} ({n_params(resnet_mnist(widths)):,} parameters); bs {a.bs}; precision {prec}; '
          f'{a.steps} timed batches after {a.warmup}; {a.clock} clock')
    if a.train:
        torch.manual_seed(0)
        m = resnet_mnist(widths) if a.model == 'resnet_mnist' else wide_resnet(a.width)
        aug = fashion_aug if a.data == 'fashion' else pad_crop
        tdls = fast_dls(xt, yt, xv, yv, bs=a.bs, stats=stats, vocab=vocab, device=dev, aug=aug)
        prec = default_precision(dev, m) if a.precision == 'auto' else a.precision
        learn = fast_learner(tdls, m, precision=prec)
        print(f'training {a.model} ({n_params(m):,} parameters) for {a.train} epochs, one-cycle lr {a.lr}, bs {a.bs}, '
              f'precision {prec}, augmentation {aug.__name__}, {len(xt)} training / {len(xv)} test images', flush=True)
        t = time.perf_counter()
        learn.fit_one_cycle(a.train, a.lr)
        secs = time.perf_counter() - t
        print(f'RESULT {a.data} {a.model}: accuracy {learn.recorder.values[-1][-1]:.4f} on {len(xv)} test images, '
              f'{secs:.0f} s wall time for {a.train} epochs (validation included) on {dev}')
        return
    if a.profile: return profile(a, tdls, widths, prec)
    if a.chunks:
        if a.repeat > 1: raise SystemExit('--chunks and --repeat are two ways to interleave the paths: give one of them')
        return chunked(a, tdls, widths, prec, clock)
    res = {}
    for name in a.paths.split(',') * a.repeat:
        torch.compiler.reset()  # each round compiles a new model: without this, dynamo's recompile limit (8) turns later rounds eager
        torch.manual_seed(0)
        m = resnet_mnist(widths)
        if name == 'fast_path':
            fl = fast_path(fast_learner(tdls, m, precision=prec), bf16=a.bf16, backend=a.backend)
            ips = time_learner(fl, a.steps, a.warmup, clock=clock)
            print(f'  fast_path warm-up: {a.warmup} batches in {fl.train_timer.warm_secs:.1f} s (compilation included)')
        elif name in ('eager_path', 'eager_cl'):
            fl = fast_path(fast_learner(tdls, m, precision=prec), compile=False, bf16=a.bf16,
                           channels_last=True if name == 'eager_cl' else None)
            ips = time_learner(fl, a.steps, a.warmup, clock=clock)
            if name == 'eager_path': print(f'  eager_path memory format: {"channels_last" if hasattr(fl, "channels_last") else "NCHW"}')
        elif name == 'fast': ips = time_learner(fast_learner(tdls, m, precision=prec), a.steps, a.warmup, clock=clock)
        elif name == 'loop': ips = time_loop(m, tdls.train, a.steps, a.warmup, clock=clock, **loop_settings(a, dev, prec, False))
        elif name == 'compiled_loop': ips = time_loop(m, tdls.train, a.steps, a.warmup, clock=clock, **loop_settings(a, dev, prec, True))
        elif name in ('learner', 'folder', 'learner_fused'):
            dls = tdls if name != 'folder' else folder_dls(files, bs=a.bs, stats=stats, num_workers=workers, device=dev)
            cbs = []
            if prec == 'bf16': cbs.append(BF16())  # fastai's MixedPrecision is CUDA-only; same autocast as the fast path
            kw = dict(opt_func=fast_adam) if name == 'learner_fused' else {}
            ips = time_learner(Learner(dls, m, loss_func=CrossEntropyLossFlat(), cbs=cbs, **kw), a.steps, a.warmup, clock=clock)
        else: raise SystemExit(f'unknown path {name!r}')
        res.setdefault(name, []).append(ips)
        print(f'  {name:14s} {ips:10,.0f} images/s  {a.bs/ips*1e3:8.2f} ms/batch', flush=True)
    if a.repeat > 1:
        print(f'best of {a.repeat}: ' + ', '.join(f'{k} {max(v):,.0f}' for k, v in res.items()) + ' images/s')
        print(f'median of {a.repeat}: ' + ', '.join(f'{k} {sorted(v)[len(v)//2]:,.0f}' for k, v in res.items()) + ' images/s')
        print('relative to the plain loop, median of the per-round ratios: ' + ', '.join(
            f'{k} {sorted(x/l for x, l in zip(v, res["loop"]))[len(v)//2]:.2f}x' for k, v in res.items() if k != 'loop' and 'loop' in res))
    res = {k: max(v) for k, v in res.items()}
    if 'loop' in res:
        print('relative to the plain loop (best of each): ' + ', '.join(f'{k} {v/res["loop"]:.2f}x' for k, v in res.items() if k != 'loop'))
        floor = a.bs / res['loop'] * 1e3
        print('overhead over the plain loop, ms/batch: ' + ', '.join(f'{k} {a.bs/v*1e3 - floor:+.2f}' for k, v in res.items() if k != 'loop'))

def loop_settings(a, dev, prec:str, compiled:bool) -> dict:
    "`loop_step`'s settings for the plain loop, or for `compiled_loop`: fast_path's choices (compiled, channels_last, bf16 as `--fast-bf16`)"
    if not compiled: return dict(precision=prec)
    bf16 = ifnone(a.bf16, torch.device(dev).type == 'cpu' and cpu_bf16())
    return dict(precision='bf16' if bf16 else prec, channels_last=True, compile=dict(backend=a.backend))

def over_chunks(ips:list) -> float:
    "Images/s over equal chunks (the same number of images each) timed at `ips` images/s: all their images over all their time"
    return len(ips) / sum(1 / v for v in ips)

def chunked(a, tdls, widths, prec, clock):
    "Each path's model built (and compiled) once, then timed in `a.chunks` interleaved chunks of `a.steps` batches, each after one untimed batch"
    runners, undos = {}, []
    for name in a.paths.split(','):
        torch.manual_seed(0); m = resnet_mnist(widths)
        if name in ('loop', 'compiled_loop'):  # one step function per path: compiled once, with one optimizer, as a real loop
            step, undo = loop_step(m, tdls.device, **loop_settings(a, tdls.device, prec, name == 'compiled_loop')); undos.append(undo)
            runners[name] = partial(time_steps, step, tdls.train, warmup=1, clock=clock)
        elif name == 'fast_path':
            fl = fast_path(fast_learner(tdls, m, precision=prec), bf16=a.bf16, backend=a.backend)
            runners[name] = partial(time_learner, fl, warmup=1, clock=clock)
        else: raise SystemExit(f'--chunks times loop, compiled_loop and fast_path, not {name!r}')
    if 'loop' not in runners: raise SystemExit('--chunks needs the loop among --paths: ratios are to the plain loop')
    try: _time_chunks(a, runners)
    finally:
        for undo in undos: undo()

def _time_chunks(a, runners:dict):
    "Warm each runner up, then time them in `a.chunks` interleaved chunks and print the images/s and the ratios to the loop"
    for name, run in runners.items():  # compilation and warm-up, untimed
        t = time.perf_counter(); run(steps=a.warmup)
        print(f'  {name} warm-up: {a.warmup} batches in {time.perf_counter() - t:.1f} s (compilation included)', flush=True)
    ips = {k: [] for k in runners}
    for c in range(a.chunks):
        for name in (list(runners) if c % 2 == 0 else list(runners)[::-1]):
            ips[name].append(runners[name](steps=a.steps))
        print(f'  chunk {c}: ' + ', '.join(f'{k} {v[-1]:,.0f}' for k, v in ips.items()) + ' images/s', flush=True)
    total = {k: over_chunks(v) for k, v in ips.items()}
    print(f'{a.chunks} chunks of {a.steps} batches, images/s over all chunks: ' + ', '.join(f'{k} {v:,.0f}' for k, v in total.items()))
    for k in runners:
        if k == 'loop': continue
        r = sorted(x / l for x, l in zip(ips[k], ips['loop']))
        print(f'  {k} / loop: {total[k] / total["loop"]:.3f}x over all chunks; per chunk median {r[len(r)//2]:.3f}x, '
              f'middle half {r[len(r)//4]:.3f}x to {r[(3*len(r))//4]:.3f}x, range {r[0]:.3f}x to {r[-1]:.3f}x')

KINDS = (('convolutions (oneDNN)', ('convolution',)),
         ('compiled graph (fused kernels, its wrapper)', ('compiledfxgraph', 'cpp_fused', 'graph_')),
         ('batchnorm', ('batch_norm',)),
         ('optimizer', ('optimizer', 'adam', 'foreach')))

def kind(name):
    "The kind of a profiled op, by its name"
    n = name.lower()
    return next((k for k, keys in KINDS if any(o in n for o in keys)), 'everything else (elementwise, autograd, Python)')

def profile(a, tdls, widths, prec):
    "Self CPU time of `a.steps` training batches by kind of op, for the plain loop and the fast path"
    from torch.profiler import profile as tprofile, ProfilerActivity
    torch.manual_seed(0); m = resnet_mnist(widths)
    fl = fast_path(fast_learner(tdls, resnet_mnist(widths), precision=prec), bf16=a.bf16, backend=a.backend)
    time_learner(fl, 2, 1)  # compile outside the profile
    runs = {'loop': lambda: time_loop(m, tdls.train, a.steps, 1, precision=prec),
            'fast_path': lambda: time_learner(fl, a.steps, 1)}
    for name, run in runs.items():
        with tprofile(activities=[ProfilerActivity.CPU]) as prof: run()
        shares = {}
        for e in prof.key_averages(): shares[kind(e.key)] = shares.get(kind(e.key), 0) + e.self_cpu_time_total
        total = sum(shares.values())
        print(f'{name}: {total/1e3/(a.steps+1):.2f} ms/batch profiled (the profiler adds its own overhead); ' +
              ', '.join(f'{k} {v/total:.0%}' for k, v in sorted(shares.items(), key=lambda o: -o[1])), flush=True)

if __name__ == '__main__': main()

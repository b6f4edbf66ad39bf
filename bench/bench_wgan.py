"""Training throughput of notebook 05's WGAN pair (fastai's `basic_generator` and `basic_critic`, weight clipping, five
critic steps to one generator step, Adam with momentum 0), three ways on the same images, batch size and sizes:

- `fastai`: the lesson's path, `imgcourse.wgan.wgan_learner` (`GANLearner.wgan`) as it comes;
- `loop`: a plain eager PyTorch loop of the same algorithm (no fastai);
- `fast_path`: `wgan_learner` after `imgcourse.train.fast_path` (the memory format timed at the first batch; bf16 autocast with `--fast-bf16 yes`,
  or `auto`: on CPUs with AMX; compiled with `--compile`).

Images/s count every optimiser step of either network (a batch of `bs` images), as fastai counts batches; the first
`warmup` steps are untimed and reported apart. All timing is `imgcourse.train`'s: `time_learner` for the Learner paths, `time_steps` for the plain loop.

    python bench/bench_wgan.py --threads 2 --steps 120 --repeat 3          # the CPU mode's pair: 32 px, 16 features
    python bench/bench_wgan.py --size 64 --features 64 --extra 1 --channels 3 --bs 64 --steps 300   # the lesson's pair, a GPU
"""
import argparse, statistics
import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
import torch

def parse(args=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--size', type=int, default=32); p.add_argument('--channels', type=int, default=1)
    p.add_argument('--features', type=int, default=16, help="n_features of both networks (the lesson's: 64)")
    p.add_argument('--extra', type=int, default=0, help="n_extra_layers (the lesson's: 1)")
    p.add_argument('--bs', type=int, default=64); p.add_argument('--n', type=int, default=2048, help='random images in the dataset')
    p.add_argument('--steps', type=int, default=120); p.add_argument('--warmup', type=int, default=12)
    p.add_argument('--lr', type=float, default=2e-4)
    p.add_argument('--fast-bf16', default='auto', choices=['auto', 'yes', 'no'])
    p.add_argument('--compile', action='store_true', help='also compile the training step in the fast path')
    p.add_argument('--paths', default='fastai,loop,fast_path')
    p.add_argument('--repeat', type=int, default=1, help='run the paths in turn this many times; report the median')
    p.add_argument('--threads', type=int, default=None)
    return p.parse_args(args)

def plain_loop(g, c, dl, steps, warmup, lr, clip=0.01, n_crit=5):
    "The WGAN algorithm in plain PyTorch: `n_crit` critic steps (clipped weights) per generator step; images/s"
    from imgcourse.train import time_steps
    og = torch.optim.Adam(g.parameters(), lr=lr, betas=(0., 0.99)); oc = torch.optim.Adam(c.parameters(), lr=lr, betas=(0., 0.99))
    i = 0
    def step(b):
        nonlocal i
        z, real = b
        if i % (n_crit + 1) < n_crit:  # critic: real high, fake low (fastai's sign: minimise real - fake)
            with torch.no_grad(): fake = g(z)
            loss = c(real).mean() - c(fake).mean()
            oc.zero_grad(set_to_none=True); loss.backward(); oc.step()
            with torch.no_grad():
                for p in c.parameters(): p.clamp_(-clip, clip)
        else:
            loss = c(g(z)).mean()
            og.zero_grad(set_to_none=True); loss.backward(); og.step()
        i += 1
    return time_steps(step, dl, steps, warmup)

def main(args=None):
    a = parse(args)
    if a.threads: torch.set_num_threads(a.threads)
    from fastai.vision.all import set_seed
    from imgcourse.wgan import tensor_gan_dls, wgan_models, wgan_learner
    from imgcourse.train import fast_path, time_learner
    dev = torch.device(a.device)
    x = torch.randint(0, 256, (a.n, a.channels, a.size, a.size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    dls = tensor_gan_dls(x, bs=a.bs, device=dev)
    kw = dict(size=a.size, n_channels=a.channels, n_features=a.features, n_extra_layers=a.extra)
    bf16 = {'auto': None, 'yes': True, 'no': False}[a.fast_bf16]
    def learner(fast):
        set_seed(0); g, c = wgan_models(**kw)
        learn = wgan_learner(dls, g, c, fast=False)  # the lesson's path as it comes
        return fast_path(learn, compile=a.compile, bf16=bf16) if fast else learn
    runs = {p: [] for p in a.paths.split(',')}
    warm = {}
    for _ in range(a.repeat):
        for p in runs:
            torch.compiler.reset()  # with --compile each round compiles new networks: without this, dynamo's recompile limit (8) turns later rounds eager
            if p == 'loop':
                set_seed(0); g, c = (m.to(dev).train() for m in wgan_models(**kw))
                runs[p].append(plain_loop(g, c, dls.train, a.steps, a.warmup, a.lr))
            else:
                learn = learner(p == 'fast_path')
                runs[p].append(time_learner(learn, a.steps, a.warmup, a.lr))
                warm[p] = learn.train_timer.warm_secs
    g, c = wgan_models(**kw)
    print(f'WGAN pair: generator {sum(q.numel() for q in g.parameters())/1e3:.0f}k + critic {sum(q.numel() for q in c.parameters())/1e3:.0f}k '
          f'parameters, {a.size} px, {a.channels} channel(s), bs {a.bs}, {a.steps} timed steps after {a.warmup}, on {dev} '
          f'({torch.get_num_threads()} threads), median of {a.repeat}')
    base = statistics.median(runs['loop']) if 'loop' in runs else None
    for p, v in runs.items():
        m = statistics.median(v)
        rel = f'{m/base:5.2f}x of the plain loop' if base else ''
        extra = f'; warm-up {warm[p]:.1f} s' if p in warm else ''
        print(f'{p:10s} {m:9.0f} images/s  {rel}  (runs: {", ".join(f"{r:.0f}" for r in v)}{extra})')
    return runs

if __name__ == '__main__': main()

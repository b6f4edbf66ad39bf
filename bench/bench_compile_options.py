#!/usr/bin/env python
"""Does any inductor option lift the compiled training step of the lesson's ResNet on a CPU? Each variant runs in a
fresh process (compiled code and dynamo's state are kept per process) and times, interleaved, the
plain eager fp32 loop and the compiled loop (channels_last, bf16 autocast, as `fast_path` on a CPU with AMX) with the
variant's options, on the lesson's MNIST tensors. Prints each round and the median ratio per variant.

Variants: base (inductor's defaults: no C++ wrapper, which `imgcourse.train.compile_options` now adds on a CPU),
cppwrap (`cpp_wrapper`: a C++ wrapper around the kernels instead of Python),
autotune (`max_autotune`), conv1x1 (`conv_1x1_as_mm`: the shortcut's 1x1 convolutions as matrix products),
all (the three together), whole (forward, loss, backward and AdamW compiled as one function, with compiled autograd;
its AdamW is PyTorch's plain one, compiled, where the other variants and the eager loop use the fused AdamW).

    python bench/bench_compile_options.py                         # every variant, 3 rounds each (about 15 min on 2 cores)
    python bench/bench_compile_options.py --variants base,whole --rounds 5
"""
import argparse, os, statistics, subprocess, sys, time

VARIANTS = ('base', 'cppwrap', 'autotune', 'conv1x1', 'all', 'whole')

def one(variant, rounds, steps, warmup, bs, threads):
    "In this process: `rounds` interleaved timings of the eager loop and the variant; prints a line per round"
    import torch, torch.nn.functional as F
    torch.set_num_threads(threads)
    import imgcourse.data  # noqa: F401  (quiets fastai's import warning first)
    import torch._dynamo.config as dc
    from imgcourse.resnet import resnet_mnist
    from imgcourse.train import fast_dls, pixel_stats, time_loop, time_steps, mnist_files, split_tensors, cpu_bf16
    from imgcourse.data import get_mnist
    # each variant's options in full, so that `compile_options` (the C++ wrapper by default on a CPU) adds nothing
    opts = dict(cpp_wrapper=variant in ('cppwrap', 'all'), max_autotune=variant in ('autotune', 'all'), conv_1x1_as_mm=variant in ('conv1x1', 'all'))
    xt, yt, xv, yv, vocab = split_tensors(mnist_files(get_mnist(online=False)))
    dl = fast_dls(xt, yt, xv, yv, bs=bs, stats=pixel_stats(xt), vocab=vocab, device='cpu').train
    prec = 'bf16' if cpu_bf16() else 'fp32'
    def whole():
        torch.manual_seed(0); m = resnet_mnist().train().to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
        def inner(xb, yb):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=prec == 'bf16'):
                loss = F.cross_entropy(m(xb.contiguous(memory_format=torch.channels_last)).float(), yb)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        fn = torch.compile(inner, options=dict(cpp_wrapper=False))  # inductor's defaults
        def step(b):
            with dc.patch(compiled_autograd=True): fn(*b)
        return time_steps(step, dl, steps, warmup, torch.device('cpu'), time.perf_counter)
    def loop(compiled):
        torch.manual_seed(0)
        kw = dict(precision=prec, channels_last=True, compile=dict(options=opts)) if compiled else {}
        return time_loop(resnet_mnist(), dl, steps=steps, warmup=warmup, lr=1e-3, **kw)
    for r in range(rounds):
        e = loop(False); c = whole() if variant == 'whole' else loop(True)
        print(f'{variant} round {r+1}: eager {e:,.0f} images/s, compiled {c:,.0f} ({c/e:.2f}x)', flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--steps', type=int, default=60)
    p.add_argument('--warmup', type=int, default=8, help='untimed batches first (compilation happens here)')
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--one', help=argparse.SUPPRESS)  # internal: run one variant in this process
    a = p.parse_args()
    if a.one: return one(a.one, a.rounds, a.steps, a.warmup, a.bs, a.threads)
    names = [v.strip() for v in a.variants.split(',') if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names: sys.exit(f'--variants: {", ".join(bad) or "none given"}: choose from {", ".join(VARIANTS)}')
    print(f'resnet_mnist, bs {a.bs}, {a.threads} threads, {a.steps} timed batches after {a.warmup}; '
          f'each variant in its own process, {a.rounds} interleaved rounds of eager then compiled', flush=True)
    summary = {}
    for v in names:
        r = subprocess.run([sys.executable, __file__, '--one', v, *[f'--{k}={getattr(a, k)}' for k in ('rounds', 'steps', 'warmup', 'bs', 'threads')]],
                           capture_output=True, text=True, env={**os.environ, 'IMGCOURSE_OFFLINE': '1'})
        lines = [l for l in r.stdout.splitlines() if ' round ' in l]
        print('\n'.join(lines), flush=True)
        if r.returncode or not lines:
            print(f'{v}: failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "no timings printed"}'); continue
        summary[v] = statistics.median(float(l.rsplit('(', 1)[1].rstrip('x)')) for l in lines)
    print('median compiled/eager ratio: ' + ', '.join(f'{v} {x:.2f}x' for v, x in summary.items()))

if __name__ == '__main__': main()

"""Where a CPU training step of the lesson's ResNet spends its convolution time: each of its 13 convolutions alone,
at the lesson's batch size, forward and backward, split into the input's gradient and the weights' gradient.

Each call is timed eagerly (`F.conv2d`, `aten.convolution_backward`), so the figures are what oneDNN costs per call
whatever runs around it; compiled or not, a training step makes these calls. Two settings: the eager loop's (fp32,
NCHW) and the fast path's (bf16, channels_last). The last column is the work: multiply-adds of one pass.

    python bench/bench_conv_layers.py --threads 2 --bs 128
    python bench/bench_conv_layers.py --threads 2 --bs 512      # the fixed cost per call matters less

On a 2-core CPU the weights' gradient of a small convolution costs about 100 us even when it has almost nothing to
compute (a 2x2 input), so the smallest layers cost as much as the big ones: a fixed cost per call that grows with the
number of layers, not with the batch.
"""
import argparse
import torch, torch.nn as nn, torch.nn.functional as F

def layers(model, x):
    "(conv, input shape) of each convolution, in the order the model runs them"
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape))) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad(): model(x)
    finally:
        for h in hooks: h.remove()
    return seen

def us(f, n):
    "Mean microseconds of `n` calls of `f` after 3 untimed ones (`time_steps`, the timer of every bench, counting calls)"
    from imgcourse.train import time_steps, RepeatDL
    return 1e6 / time_steps(lambda b: f(), RepeatDL((torch.zeros(1),), n), steps=n, warmup=3, device='cpu')

def time_layer(conv, shape, dtype, fmt, n):
    "Forward, input-gradient and weight-gradient microseconds of `conv` on a random batch of `shape`"
    s, p = conv.stride, conv.padding
    x = torch.randn(shape, dtype=dtype).contiguous(memory_format=fmt)
    w = conv.weight.detach().to(dtype).contiguous(memory_format=fmt)
    g = torch.randn_like(F.conv2d(x, w, None, s, p))
    bwd = lambda mask: torch.ops.aten.convolution_backward(g, x, w, None, s, p, conv.dilation, False, [0, 0], conv.groups, mask)
    fwd = us(lambda: F.conv2d(x, w, None, s, p), n)
    dx = us(lambda: bwd([True, False, False]), n) if shape[1] > 1 else 0.  # the first layer's input is the image: no gradient
    dw = us(lambda: bwd([False, True, False]), n)
    return fwd, dx, dw

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument('--n', type=int, default=30, help='timed calls per figure (mean)')
    p.add_argument('--widths', default='8,16,32,16', help="channels of the four stages (the lesson's model: 8,16,32,16)")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    import imgcourse.data  # first: the data layer quiets a known, harmless warning of fastai's imports
    from imgcourse.resnet import resnet_mnist
    model = resnet_mnist(tuple(int(o) for o in a.widths.split(',')))
    convs = layers(model, torch.zeros(a.bs, 1, 28, 28))
    settings = (('fp32, NCHW', torch.float32, torch.contiguous_format), ('bf16, channels_last', torch.bfloat16, torch.channels_last))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, bs {a.bs}; microseconds per call, means of {a.n}: '
          'forward / input gradient / weight gradient')
    print(f'{"layer":28s}' + ''.join(f'{name:>26s}' for name, *_ in settings) + f'{"MACs":>10s}')
    total = {name: [0., 0., 0.] for name, *_ in settings}
    for conv, shape in convs:
        row = f'{f"{conv.in_channels:3d}->{conv.out_channels:<3d} stride {conv.stride[0]} on {shape[2]}x{shape[3]}":28s}'
        for name, dtype, fmt in settings:
            t = time_layer(conv, shape, dtype, fmt, a.n)
            total[name] = [u + v for u, v in zip(total[name], t)]
            row += f'{t[0]:8.0f} /{t[1]:6.0f} /{t[2]:6.0f}'
        ho = (shape[2] + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        print(f'{row}{a.bs * ho * ho * conv.weight.numel() / 1e6:9.1f}M')
    print(f'{"all " + str(len(convs)) + " layers":28s}' + ''.join(f'{t[0]:8.0f} /{t[1]:6.0f} /{t[2]:6.0f}' for t in total.values()))
    for name, t in total.items():
        print(f'{name}: {sum(t)/1e3:.2f} ms of convolution calls per training step, {t[2]/sum(t):.0%} of it weight gradients')

if __name__ == '__main__': main()

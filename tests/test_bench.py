"Each bench/ script runs end to end for a few steps on tiny sizes (CPU, seconds each): what CI can check of them."
import os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def bench(script, *args, timeout=300):
    "Run `bench/script` with `args` on the CPU and return its output; fail with the output if it fails"
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT/'bench'/script), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f'{script} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return r.stdout

def test_bench_resnet():
    out = bench('bench_resnet.py', '--device', 'cpu', '--threads', '1', '--bs', '16', '--n', '64', '--steps', '2',
                '--warmup', '1', '--paths', 'loop,fast,learner,fast_path,compiled_loop,eager_path,eager_cl', '--backend', 'eager', '--repeat', '2')
    assert 'relative to the plain loop' in out and 'fast_path warm-up' in out and 'median of 2' in out and 'compiled_loop' in out, out
    assert 'eager_path memory format: ' in out and 'eager_cl' in out, out

def test_bench_resnet_profile():
    "`--profile` splits a step's time by kind of op, for the plain loop and the fast path"
    out = bench('bench_resnet.py', '--device', 'cpu', '--threads', '1', '--bs', '16', '--n', '64', '--steps', '2',
                '--backend', 'eager', '--fast-bf16', 'yes', '--profile')
    lines = [l for l in out.splitlines() if 'ms/batch profiled' in l]
    assert [l.split(':')[0] for l in lines] == ['loop', 'fast_path'], out
    assert all('convolutions (oneDNN)' in l and '%' in l for l in lines), out

def test_bench_resnet_chunks():
    "`--chunks`: each path built once, timed in interleaved chunks, ratios to the loop over all chunks and per chunk"
    out = bench('bench_resnet.py', '--device', 'cpu', '--threads', '1', '--bs', '16', '--n', '64', '--steps', '2', '--warmup', '1',
                '--paths', 'loop,compiled_loop,fast_path', '--backend', 'eager', '--fast-bf16', 'yes', '--chunks', '3')
    rows = re.findall(r'^  chunk \d: loop ([\d,]+), compiled_loop ([\d,]+), fast_path ([\d,]+) images/s$', out, re.M)
    assert len(rows) == 3, out
    ips = [[int(v.replace(',', '')) for v in col] for col in zip(*rows)]  # per path, its 3 chunks
    totals = [int(v.replace(',', '')) for v in re.search(r'over all chunks: loop ([\d,]+), compiled_loop ([\d,]+), fast_path ([\d,]+)', out).groups()]
    for col, total in zip(ips, totals):  # equal chunks: the rate over all of them is the harmonic mean of their rates
        assert abs(total - 3 / sum(1/v for v in col)) <= 1.5, (col, total, out)  # both rounded to whole images/s
    for name, t in zip(('compiled_loop', 'fast_path'), totals[1:]):
        got = float(re.search(rf'{name} / loop: ([\d.]+)x over all chunks', out).group(1))
        assert abs(got - t / totals[0]) <= 0.002 * got, (name, got, out)

def test_over_chunks_is_all_images_over_all_time():
    "Two chunks of 300 images at 100 and 300 images/s take 3 s + 1 s: 150 images/s, not the mean of the two rates"
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench_resnet', ROOT/'bench'/'bench_resnet.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    assert mod.over_chunks([100, 300]) == pytest.approx(150)
    assert mod.over_chunks([250.0]) == pytest.approx(250)

def test_bench_superres():
    out = bench('bench_superres.py', '--device', 'cpu', '--threads', '1', '--arch', 'resnet18', '--bs', '2', '--size', '32',
                '--steps', '2', '--warmup', '1', '--only', 'loop,learner,learner+speed')
    assert 'x of the loop' in out and 'learner+speed' in out, out

def test_bench_superres_srnet():
    "The CPU mode's model: `SRNet` with `charbonnier`, the fast path with bf16 forced on (any CPU can run bf16 autocast)"
    out = bench('bench_superres.py', '--device', 'cpu', '--threads', '1', '--model', 'srnet', '--bs', '2', '--size', '32',
                '--steps', '2', '--warmup', '1', '--only', 'loop,learner,fast_path', '--fast-bf16', 'yes', '--backend', 'eager')
    assert out.startswith('SRNet') and 'fast_path' in out and 'x of the loop' in out, out

def test_bench_conv_layers():
    "Every convolution of the lesson's ResNet, forward and both gradients, in both settings"
    out = bench('bench_conv_layers.py', '--threads', '1', '--bs', '4', '--n', '2', '--widths', '2,2,2,2')
    rows = [l for l in out.splitlines() if 'stride' in l]
    assert len(rows) == 13 and all(l.count('/') == 4 and l.endswith('M') for l in rows), out
    assert 'of it weight gradients' in out and 'fp32, NCHW' in out and 'bf16, channels_last' in out, out

def test_bench_prints_no_warnings():
    "The scripts import the data layer first, so fastai's known import warning is filtered before it fires"
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_resnet.py'), '--help'], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)}, timeout=120)
    assert r.returncode == 0 and 'Warning' not in r.stderr, r.stderr

def test_bench_losses():
    out = bench('bench_losses.py', '--device', 'cpu', '--arch', 'resnet18', '--bs', '2', '--size', '32', '--steps', '2',
                '--warmup', '1', '--feat', 'quick', '--precision', 'fp32', '--threads', '1')
    assert 'the plain loop' in out and 'speed_up' in out, out

def test_bench_losses_srnet():
    "The CPU mode's feature-loss model: the shipped upscaler with a balanced loss on `degradation_net`, four paths"
    out = bench('bench_losses.py', '--model', 'srnet', '--feat', 'own', '--device', 'cpu', '--bs', '2', '--size', '32', '--steps', '2',
                '--warmup', '1', '--threads', '1', '--only', 'plain,fastai,fast,fast_path')
    assert 'SRNet' in out and 'degradation_net' in out and 'fast_path' in out, out
    assert out.count('x the plain loop') == 3, out  # each Learner path against the plain loop

def test_bench_has_no_timer_of_its_own():
    "All timing goes through `imgcourse.train` (`time_loop`, `time_learner`)"
    for f in (ROOT/'bench').glob('bench_*.py'):
        s = f.read_text()
        assert 'synchronize' not in s and 'class Timer' not in s and 'def sync' not in s, f.name

def test_sr_robustness_smoke():
    out = bench('sr_robustness.py', '--max-side', '48', '--scales', '2', '--filters', 'bicubic,box', '--threads', '1')
    assert 'held-out photos' in out and 'box' in out and 'd_psnr_y' in out, out

def test_sr_table_smoke():
    "Every super-resolution model of the course in one held-out table: a few steps each; its scratch folder goes at exit"
    import tempfile
    before = set(Path(tempfile.gettempdir()).glob('imgcourse-srtable-*'))
    out = bench('sr_table.py', '--unet-steps', '2', '--ft-steps', '2', '--feat-steps', '2', '--crit-epochs', '1', '--gan-epochs', '1',
                '--n-photos', '1', '--max-side', '64', '--ft-size', '32', '--n-items', '12', '--threads', '1', timeout=600)
    for row in ('bicubic', 'lesson U-Net', 'residual U-Net', 'upscaler (pixel loss)', 'feature loss (random VGG)',
                'feature loss (own network)', 'upscaler + GAN'):
        assert row in out, (row, out)
    assert 'how each model was made' in out and 'lesson' in out and 'x4' in out, out
    assert not re.search(r'^epoch\s+train_loss', out, re.M), out  # no fastai progress tables in the log
    for unet in ('lesson', 'residual'):  # each U-Net's epochs, named
        assert re.search(rf'^{unet} U-Net:  epoch 0  train_loss [\d.]+  valid_loss', out, re.M), out
    assert set(Path(tempfile.gettempdir()).glob('imgcourse-srtable-*')) <= before

def test_bench_wgan():
    "The WGAN pair three ways: fastai's path, a plain loop, and the fast path with bf16 forced on (any CPU runs bf16 autocast)"
    out = bench('bench_wgan.py', '--threads', '1', '--bs', '8', '--n', '64', '--steps', '6', '--warmup', '6', '--fast-bf16', 'yes')
    assert out.startswith('WGAN pair') and 'of the plain loop' in out, out
    assert all(p in out for p in ('fastai', 'loop', 'fast_path')), out

def test_bench_layout():
    "Four ways (fp32/bf16, NCHW/channels_last) per model, with the faster format named; an unknown model is refused by name"
    out = bench('bench_layout.py', '--threads', '1', '--models', 'resnet,wgan_crit', '--steps', '1', '--warmup', '1', '--repeat', '1')
    rows = [l for l in out.splitlines() if l.startswith(('resnet', 'wgan_crit'))]
    assert len(rows) == 2 and all('bf16 channels_last' in r and '-> faster: ' in r for r in rows), out
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_layout.py'), '--models', 'vgg'], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode != 0 and "unknown model(s) ['vgg']" in r.stderr, r.stderr

def test_bench_compile_options():
    "Each variant in its own process, eager and compiled side by side, a median ratio per variant; an unknown variant is refused by name"
    out = bench('bench_compile_options.py', '--variants', 'whole', '--rounds', '1', '--steps', '2', '--warmup', '1', '--threads', '1')
    assert re.search(r'whole round 1: eager [\d,]+ images/s, compiled [\d,]+ \([\d.]+x\)', out), out
    assert re.search(r'median compiled/eager ratio: whole [\d.]+x', out), out
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_compile_options.py'), '--variants', 'base,turbo'], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode != 0 and 'turbo' in r.stderr and 'choose from' in r.stderr, r.stderr

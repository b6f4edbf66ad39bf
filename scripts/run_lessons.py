#!/usr/bin/env python
"""Run lesson notebooks and commit-ready their outputs: each notebook in nbs/ is executed top to bottom
(`imgcourse.run.run_notebook`), its outputs are written back into nbs/, and its first cell gets a line saying
which mode, data, device and wall time produced them. One command regenerates every lesson:

    python scripts/run_lessons.py                 # all lessons, CPU mode (the committed outputs)
    python scripts/run_lessons.py 05_wgan --mode cpu
    IMGCOURSE_MODE=full python scripts/run_lessons.py   # on a GPU: full mode

Afterwards run `nbdev-clean` (it keeps outputs) and commit the notebooks.
"""
import argparse, datetime, json, os, platform, re, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = '**Outputs in this copy:**'
SOURCES = ('MNIST:', 'Fashion-MNIST:', 'photos:', 'held-out photos:', 'bedrooms:', 'upscaler:', 'classifier:')
NO_WEIGHTS = re.compile(r'(\S+): ImageNet weights are not in ')  # `imgcourse.data.pretrained_ok`: random initialisation

def device_line():
    import torch
    if torch.cuda.is_available(): return f'GPU ({torch.cuda.get_device_name(0)})'
    return f'CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})'

def data_lines(nb):
    "The data sources the run said it used (imgcourse's `say` messages), in order, once each; then the networks that had no ImageNet weights"
    seen, random_init = [], []
    for c in nb['cells']:
        for o in c.get('outputs', []):
            txt = ''.join(o.get('text', '')) if o.get('output_type') == 'stream' else ''
            for line in txt.splitlines():
                m = re.match(r'imgcourse: (.*)', line.strip())
                if m and m.group(1).startswith(SOURCES):
                    s = m.group(1).split(';')[0].split(' (')[0]
                    if s not in seen: seen.append(s)
                w = NO_WEIGHTS.match(m.group(1)) if m else None
                if w and w.group(1) not in random_init: random_init.append(w.group(1))
    if random_init: seen.append(f"ImageNet weights could not be had for {', '.join(random_init)}: randomly initialised")
    return seen

def busy_cores(secs=1.0):
    "How many cores other programs keep busy, measured over `secs` from /proc/stat (the load average lags by minutes); None where it cannot be read"
    def snap():
        with open('/proc/stat') as f: v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        (t0, i0) = snap(); time.sleep(secs); (t1, i1) = snap()
    except (OSError, ValueError, IndexError): return None
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(t1 - t0, 1))

def stamp(nb, mode, secs, device, data, load=None, when=None):
    "Put the run record at the end of the first (title) cell, replacing an older one; `when`: the run's date (default today)"
    c = nb['cells'][0]
    src = ''.join(c['source']).split('\n\n' + MARK)[0].rstrip()
    when = when or datetime.date.today().isoformat()
    busy = f' (other programs kept about {load:.1f} cores busy when the run started)' if load is not None and load > 0.5 else ''
    rec = (f"\n\n{MARK} {mode} mode, {secs/60:.1f} min wall time on {device}, {when}{busy}. "
           f"Data: {'; '.join(data) if data else 'see the cells below'}. "
           f"Regenerate with `python scripts/run_lessons.py {Path(nb['_name']).stem} --mode {mode}`.")
    c['source'] = (src + rec).splitlines(keepends=True)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('names', nargs='*', help='lesson notebooks (default: every nbs/0[1-9]_*.ipynb)')
    p.add_argument('--mode', default=os.environ.get('IMGCOURSE_MODE', 'cpu'), choices=('quick', 'cpu', 'full'))
    p.add_argument('--keep-cache', action='store_true', help="use the usual cache, or IMGCOURSE_CACHE's (and its checkpoints), instead of a fresh one")
    a = p.parse_args()
    if not a.keep_cache:  # a checkpoint left by an earlier run with other settings must not be resumed into the committed outputs
        from imgcourse.data import scratch_dir  # removed at exit, or by the next run if this one is killed
        os.environ['IMGCOURSE_CACHE'] = str(scratch_dir('run'))
    from imgcourse.run import run_notebook, find_notebook
    nbs = [find_notebook(n) for n in a.names] if a.names else sorted((ROOT/'nbs').glob('0[1-9]_*.ipynb'))
    if len(nbs) > 1:  # each notebook in a fresh process, as in a fresh kernel: in one process later notebooks ran up to 2x slower
        import subprocess
        failed = [src.name for src in nbs if subprocess.run([sys.executable, __file__, str(src), '--mode', a.mode, '--keep-cache']).returncode]
        if failed: sys.exit(f'failed: {", ".join(failed)}')
        return
    dev, failed = device_line(), []
    for src in nbs:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)/src.name
            import imgcourse.data as D
            D._said.clear()  # each notebook says where its data came from, as in a fresh kernel
            l0 = busy_cores(); t0 = time.time()
            try: run_notebook(src, out, mode=a.mode)
            except BaseException as e:
                print(f'{src.name}: FAILED after {time.time()-t0:.0f}s ({type(e).__name__}: {e}); nbs/ left unchanged', file=sys.stderr)
                failed.append(src.name)
                if isinstance(e, KeyboardInterrupt): break
                continue
            secs = time.time() - t0
            nb = json.loads(out.read_text()); nb['_name'] = src.name
            stamp(nb, a.mode, secs, dev, data_lines(nb), l0); del nb['_name']
            tmp = src.with_name(f'.{src.name}.part')
            tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n'); os.replace(tmp, src)
            print(f'{src.name}: {a.mode} mode, {secs/60:.1f} min; outputs written to {src}')
    if failed: sys.exit(f'failed: {", ".join(failed)}')

if __name__ == '__main__': main()

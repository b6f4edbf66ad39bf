#!/usr/bin/env python
"""File full-mode notebooks run on a GPU machine by `scripts/gpu_full.sh` under docs/full/, each with a line in its
first cell saying which mode, data, device and wall time produced it (as `scripts/run_lessons.py` does for the
committed CPU-mode notebooks in nbs/). Only lessons that ran to the end are kept; a stopped or failed one is named.

    python scripts/keep_full.py /work/.device/1            # the folder the device run's files came back to
    python scripts/keep_full.py DIR 01_resnet_mnist        # only these lessons

Afterwards run `nbdev-clean --fname docs/full` and commit.
"""
import argparse, datetime, json, os, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'scripts'))
from run_lessons import stamp, data_lines  # the same run record as the CPU-mode notebooks

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', type=Path, help="folder with gpu_full.sh's files: NN_*.ipynb, times.txt, device.txt")
    p.add_argument('names', nargs='*', help='lessons to keep (default: every one in times.txt that finished)')
    p.add_argument('--dest', type=Path, default=ROOT/'docs'/'full')
    a = p.parse_args()
    try:
        times = {n: (float(s), int(rc)) for n, s, rc in (l.split() for l in (a.src/'times.txt').read_text().splitlines() if l.strip())}
        dev = (a.src/'device.txt').read_text().splitlines()
        gpu = dev[0].split(',')[0].strip()
        when = next((l.split()[1] for l in dev if l.startswith('date ')), None)  # the run's day (older runs: the files' day)
        when = when or datetime.date.fromtimestamp((a.src/'times.txt').stat().st_mtime).isoformat()
    except (OSError, ValueError, IndexError) as e:
        sys.exit(f'keep_full: {a.src} does not hold what scripts/gpu_full.sh writes (times.txt, device.txt): {e}')
    a.dest.mkdir(parents=True, exist_ok=True)
    kept = 0
    for name in a.names or list(times):
        secs, rc = times.get(name, (None, None))
        if rc != 0:
            print(f'{name}: not kept: {"not in times.txt" if rc is None else f"exit status {rc} (stopped or failed) after {secs:.0f} s"}', file=sys.stderr)
            continue
        try: nb = json.loads((a.src/f'{name}.ipynb').read_text())
        except (OSError, ValueError) as e:
            print(f'{name}: not kept: its notebook cannot be read ({type(e).__name__}: {e})', file=sys.stderr); continue
        nb['_name'] = f'{name}.ipynb'
        stamp(nb, 'full', secs, f'GPU ({gpu})', data_lines(nb), when=when); del nb['_name']
        c = nb['cells'][0]  # the CPU-mode notebooks' command regenerates those; say how this copy is made
        c['source'] = ''.join(c['source']).replace(f'`python scripts/run_lessons.py {name} --mode full`',
                                                   f'`bash scripts/gpu_full.sh {name}` on a GPU machine, then `python scripts/keep_full.py DIR` here (bench/README.md says how)').splitlines(keepends=True)
        out = a.dest/f'{name}.ipynb'; tmp = out.with_name(f'.{out.name}.part')
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n'); os.replace(tmp, out)
        print(f'{name}: full mode, {secs/60:.1f} min on {gpu}: {out}'); kept += 1
    if not kept: sys.exit('keep_full: no lesson kept')

if __name__ == '__main__': main()

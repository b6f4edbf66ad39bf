#!/usr/bin/env python
"""Build the README's results gallery from the outputs committed in the lesson notebooks.

In each lesson notebook, one code cell carries the comment `# gallery: <caption>`: its first picture becomes
`docs/gallery/<notebook>.png` and the last line of its text output is the lesson's key number. The wall time
and mode come from the run record in the notebook's first cell (written by `scripts/run_lessons.py`). The result
replaces the "Results" cell of nbs/index.ipynb; then `python scripts/make_readme.py` writes README.md.

    python scripts/make_gallery.py && python scripts/make_readme.py
"""
import base64, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = '## Results: what each lesson shows'

def text_of(o):
    "The text of an output: a stream's text, or a result's plain text (not a figure's repr)"
    if o.get('output_type') == 'stream': return '' if o.get('name') == 'stderr' else ''.join(o.get('text', ''))
    d = o.get('data', {})
    return '' if 'image/png' in d else ''.join(d.get('text/plain', ''))

def lesson_row(fn):
    nb = json.loads(fn.read_text())
    rec = re.search(r'\*\*Outputs in this copy:\*\* (\w+) mode, ([\d.]+) min wall time on (.*?), (\d{4}-\d\d-\d\d)([^.]*)', ''.join(nb['cells'][0]['source']))
    title = ''.join(nb['cells'][0]['source']).splitlines()[0].lstrip('# ').strip()
    cap = key = png = None
    for c in nb['cells']:
        m = re.search(r'^# gallery: (.*)$', ''.join(c['source']), re.M) if c['cell_type'] == 'code' else None
        if not m: continue
        cap = m.group(1).strip()
        for o in c.get('outputs', []):
            if png is None and 'image/png' in o.get('data', {}): png = o['data']['image/png']
            t = [l for l in text_of(o).strip().splitlines() if l.strip() and not l.startswith('imgcourse:')]
            if t: key = t[-1].strip().strip("'\"")
        break
    img = None
    if png:
        img = ROOT/'docs'/'gallery'/f'{fn.stem}.png'
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(base64.b64decode(png if isinstance(png, str) else ''.join(png)))
    return dict(nb=fn.name, title=title, mode=rec and rec.group(1), minutes=rec and rec.group(2), device=rec and rec.group(3),
                date=rec and rec.group(4), busy=rec and ('busy' in rec.group(5)), caption=cap, key=key, img=img and img.relative_to(ROOT).as_posix())

def main():
    rows = [lesson_row(f) for f in sorted((ROOT/'nbs').glob('0[1-9]_*.ipynb'))]
    lines = [HEAD, '',
             'Every lesson notebook is committed with the outputs of a real run: open it on GitHub to read it with its pictures, tables and '
             'curves. The numbers below are taken from those outputs (held-out data, beside their baseline); each notebook\'s first cell '
             'says which mode, data and machine produced them. Regenerate them all with `python scripts/run_lessons.py`.', '',
             '| notebook | mode | wall time | key result |', '|---|---|---|---|']
    for r in rows:
        t = f"{r['minutes']} min on {r['device']}" + (' (a busy machine)' if r['busy'] else '') if r['minutes'] else 'no committed run'
        lines.append(f"| `{r['nb']}` | {r['mode'] or '-'} | {t} | {r['key'] or '-'} |")
    for r in rows:
        if r['img']: lines += ['', f"**{r['title']}**: {r['caption']}", '', f"![{r['caption']}]({r['img']})"]
    idx = ROOT/'nbs'/'index.ipynb'
    nb = json.loads(idx.read_text())
    src = '\n'.join(lines)
    cells = [c for c in nb['cells'] if ''.join(c['source']).startswith(HEAD)]
    if cells: cells[0]['source'] = src.splitlines(keepends=True)
    else:
        at = next(i for i, c in enumerate(nb['cells']) if ''.join(c['source']).startswith('## Install and run'))
        nb['cells'].insert(at, {'cell_type': 'markdown', 'id': 'a11e7c01', 'metadata': {}, 'source': src.splitlines(keepends=True)})
    idx.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    missing = [r['nb'] for r in rows if not r['img'] or not r['minutes']]
    print(src); print(f'\nmissing a gallery cell or a run record: {missing}' if missing else '\nall lessons have a picture and a run record', file=sys.stderr)

if __name__ == '__main__': main()

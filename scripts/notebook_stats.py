"""How each notebook reads: the share of teaching cells, test-only cells, hidden cells, and code-cell lengths.

    python scripts/notebook_stats.py            # every notebook in nbs/

A cell teaches unless it is hidden (`#| hide`), empty, or holds nothing but asserts/`test_*` calls (those belong in
tests/ unless they teach, like the identity-at-initialisation checks). Markdown always teaches.
"""
import json, re, sys
from pathlib import Path

def cell_kind(c) -> str:
    s = ''.join(c['source']).strip()
    if c['cell_type'] == 'markdown': return 'teaching'
    if not s: return 'empty'
    if re.match(r'#\|\s*hide', s): return 'hidden'
    code = [l for l in s.split('\n') if l.strip() and not l.strip().startswith('#')]
    return 'test-only' if code and all(re.match(r'\s*(test_\w+|assert)\b', l) for l in code) else 'teaching'

def stats(fn) -> dict:
    cells = json.loads(Path(fn).read_text())['cells']
    kinds = [cell_kind(c) for c in cells]
    lens = sorted((len(''.join(c['source']).split('\n')) for c in cells if c['cell_type'] == 'code'), reverse=True)
    return dict(cells=len(cells), teaching=kinds.count('teaching')/len(cells), test_only=kinds.count('test-only'),
                hidden=kinds.count('hidden'), short=sum(n <= 15 for n in lens)/max(1, len(lens)), longest=lens[:3])

if __name__ == '__main__':
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1]/'nbs'
    print(f'{"notebook":28s} {"cells":>5} {"teaching":>8} {"test-only":>9} {"hidden":>6} {"code <=15 lines":>15}  longest code cells')
    for f in sorted(root.glob('*.ipynb')):
        s = stats(f)
        print(f'{f.name:28s} {s["cells"]:5d} {s["teaching"]:8.0%} {s["test_only"]:9d} {s["hidden"]:6d} {s["short"]:15.0%}  {s["longest"]}')

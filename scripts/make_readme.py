"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells as fenced blocks).
Run from the repository root: `python scripts/make_readme.py` (CI checks that it changes nothing)."""
from pathlib import Path
import json

root = Path(__file__).resolve().parent.parent
nb = json.loads((root/'nbs'/'index.ipynb').read_text())
parts = []
for c in nb['cells']:
    src = ''.join(c['source']).strip()
    if not src or src.startswith('#| hide'): continue
    if c['cell_type'] == 'markdown': parts.append(src)
    elif c['cell_type'] == 'code': parts.append(f'```python\n{src}\n```')
(root/'README.md').write_text('<!-- written by scripts/make_readme.py from nbs/index.ipynb: edit that notebook, not this file -->\n\n'
                              + '\n\n'.join(parts) + '\n')

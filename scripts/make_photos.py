"""Write `data/photos`: the real colour photographs that scikit-image ships in its wheel, cut into
192x192 tiles (non-overlapping; near-uniform tiles dropped), saved as JPEG quality 95.
Only photos whose licence allows redistribution are used (the licence is in each loader's docstring
in `skimage.data`; see `data/photos/LICENSE.md`, which this script also writes).

Run from the repository root: `python scripts/make_photos.py`"""
from pathlib import Path
import numpy as np
from PIL import Image
from skimage import data

PHOTOS = {  # name: (loader, licence as scikit-image states it)
    'astronaut': (data.astronaut, 'public domain (NASA)'),
    'chelsea':   (data.chelsea, 'CC0, photographer Stefan van der Walt'),
    'coffee':    (data.coffee, 'CC0, photographer Rachel Michetti'),
    'hubble':    (data.hubble_deep_field, 'public domain (NASA)'),
    'retina':    (data.retina, 'CC0 1.0 (Häggström, Medical gallery of Mikael Häggström 2014)'),
    'rocket':    (data.rocket, 'public domain (SpaceX)'),
}
TILE = 192
HALVE = {'retina'}  # 1411 px of mostly one texture: halve it so it does not dominate

dest = Path(__file__).resolve().parent.parent/'data'/'photos'
dest.mkdir(parents=True, exist_ok=True)
lines = ['# Photos shipped with imgcourse', '',
         'Tiles of 192x192 px cut from the colour photographs bundled in scikit-image '
         '(`skimage.data`), made by `scripts/make_photos.py`. Sources and licences:', '']
n = 0
for name, (load, licence) in PHOTOS.items():
    a = load()
    if name in HALVE: a = np.asarray(Image.fromarray(a).reduce(2))
    h, w = a.shape[:2]
    lines.append(f'- `{name}_*.jpg`: `skimage.data.{load.__name__}()`, {w}x{h} px{" (halved)" if name in HALVE else ""}, {licence}')
    for r in range(h // TILE):
        for c in range(w // TILE):
            t = a[r*TILE:(r+1)*TILE, c*TILE:(c+1)*TILE]
            if t.std() < 12: continue  # near-uniform (black background of retina/hubble)
            Image.fromarray(t).save(dest/f'{name}_{r}{c}.jpg', quality=95)
            n += 1
(dest/'LICENSE.md').write_text('\n'.join(lines) + '\n')
print(dest, n, 'tiles')

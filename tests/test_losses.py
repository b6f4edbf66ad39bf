"Tests of `imgcourse.losses`: Gram matrices, the feature loss, its hooks, bf16 autocast, style loss."
import gc, math
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from imgcourse.losses import *

def tiny_net():
    "A small frozen CNN standing in for VGG: conv-bn-relu blocks with pools"
    torch.manual_seed(0)
    blk = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return frozen(nn.Sequential(*blk(3, 8), nn.MaxPool2d(2), *blk(8, 16), nn.MaxPool2d(2), *blk(16, 16)))

LAYERS, WGTS = [2, 6, 9], [5, 15, 2]

@pytest.fixture
def imgs():
    torch.manual_seed(1)
    x = torch.rand(3, 3, 24, 24)
    return F.avg_pool2d(F.pad(x, [1]*4, mode='reflect'), 3, stride=1)  # some spatial structure

def gram_loop(x):
    n, c, h, w = x.shape
    g = torch.zeros(n, c, c)
    for b in range(n):
        for i in range(c):
            for j in range(c): g[b, i, j] = (x[b, i]*x[b, j]).sum()/(c*h*w)
    return g

def test_gram_matches_loop():
    x = torch.randn(2, 4, 5, 3)
    g = gram_matrix(x)
    assert g.shape == (2, 4, 4)
    torch.testing.assert_close(g, gram_loop(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g.transpose(1, 2))
    xc = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gram_matrix(xc), g)
    with pytest.raises(ValueError, match='n, c, h, w'): gram_matrix(torch.randn(4, 5))

def test_pool_relus_vgg():
    from torchvision.models.vgg import make_layers, cfgs
    assert pool_relus(make_layers(cfgs['D'], batch_norm=True)) == [5, 12, 22, 32, 42]

def test_identical_zero_and_grows(imgs):
    fl = FeatureLoss(tiny_net(), LAYERS, WGTS)
    assert fl(imgs, imgs).item() == pytest.approx(0, abs=1e-6)
    assert fl.metric_names == ['pixel', 'feat_0', 'feat_1', 'feat_2', 'gram_0', 'gram_1', 'gram_2']
    torch.manual_seed(2)
    noise = torch.randn_like(imgs)
    ls = [fl(imgs + s*noise, imgs).item() for s in (0.01, 0.05, 0.2, 0.5)]
    assert all(a < b for a, b in zip(ls, ls[1:])), ls
    fl(imgs + 0.2*noise, imgs)
    parts = [getattr(fl, n) for n in fl.metric_names]
    assert all(torch.isfinite(p) and p >= 0 for p in parts)
    assert sum(parts).item() == pytest.approx(fl(imgs + 0.2*noise, imgs).item(), rel=1e-5)

def test_reductions_and_gradients(imgs):
    fl = FeatureLoss(tiny_net(), LAYERS, WGTS)
    p = (imgs + 0.1).requires_grad_(); t = imgs.clone().requires_grad_()
    per = fl(p, t, reduction='none')
    assert per.shape == (3,)
    assert per.mean().item() == pytest.approx(fl(p, t).item(), rel=1e-5)
    assert per.sum().item() == pytest.approx(fl(p, t, reduction='sum').item(), rel=1e-5)
    fl(p, t).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert t.grad is None  # target treated as data
    with pytest.raises(ValueError): fl(p, t, reduction='max')

def test_hooks_do_not_accumulate(imgs):
    net = tiny_net()
    assert n_hooks(net) == 0
    for _ in range(20):
        fl = FeatureLoss(net, LAYERS, WGTS)
        fl(imgs, imgs)
        del fl
        assert n_hooks(net) == 0
    for _ in range(20): fl = FeatureLoss(net, LAYERS, WGTS)  # rebinding drops the previous one
    assert n_hooks(net) == len(LAYERS)
    del fl; gc.collect()
    assert n_hooks(net) == 0
    with FeatureLoss(net, LAYERS, WGTS) as fl:
        assert n_hooks(net) == len(LAYERS)
    assert n_hooks(net) == 0
    fl = FeatureLoss(net, LAYERS, WGTS); fl.remove(); fl.remove()  # idempotent
    assert n_hooks(net) == 0

def test_hooks_removed_when_learner_dropped(imgs):
    "A loss held by a fastai Learner (which has reference cycles) is freed by the garbage collector"
    from fastai.learner import Learner
    from fastai.data.core import DataLoaders
    net = tiny_net()
    for _ in range(5):
        fl = FeatureLoss(net, LAYERS, WGTS)
        learn = Learner(DataLoaders([], []), nn.Conv2d(3, 3, 1), loss_func=fl, metrics=fl.loss_metrics)
        del fl, learn
    gc.collect()
    assert n_hooks(net) == 0

def test_channels_last_input(imgs):
    fl = FeatureLoss(tiny_net(), LAYERS, WGTS)
    p = imgs + 0.1
    ref = fl(p, imgs).item()
    assert fl(p.contiguous(memory_format=torch.channels_last), imgs).item() == pytest.approx(ref, rel=1e-5)

def test_bf16_autocast(imgs):
    fl = FeatureLoss(tiny_net(), LAYERS, WGTS)
    p = imgs + 0.1*torch.randn_like(imgs)
    ref = fl(p, imgs).item()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        l = fl(p.requires_grad_(), imgs)
    assert l.dtype == torch.float32 and math.isfinite(l.item())
    assert l.item() == pytest.approx(ref, rel=0.05)
    l.backward()
    assert torch.isfinite(p.grad).all()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        g = gram_matrix(torch.randn(2, 4, 6, 6).bfloat16())
    assert g.dtype == torch.float32

def test_named_layers_any_cnn(imgs):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        def forward(self, x): return self.b(torch.relu(self.a(x)))
    net = Net()
    fl = FeatureLoss(net, ['a', 'b'], [1, 1])
    assert fl(imgs, imgs).item() == pytest.approx(0, abs=1e-6)
    assert fl(imgs + 0.1, imgs).item() > 0
    with pytest.raises(KeyError, match='no layer'): FeatureLoss(net, ['c'], [1])
    with pytest.raises(ValueError, match='weights'): FeatureLoss(net, ['a', 'b'], [1])

def test_style_loss(imgs):
    net = tiny_net()
    style = torch.rand(1, 3, 32, 32)
    sl = StyleLoss(style, net, content_ids=[6], style_ids=[2, 6], style_wgt=1e3)
    total0 = sl(imgs[:1], imgs[:1]).item()
    s0 = sl.style.item()
    assert sl.content.item() == pytest.approx(0, abs=1e-6) and s0 > 0
    out = stylise(imgs[:1], sl, steps=15, lr=0.02, snap_at=[5, 15])
    assert len(out) == 2 and out[-1].shape == imgs[:1].shape
    assert sl(out[-1], imgs[:1]).item() < total0
    assert sl.style.item() < s0
    sl.remove(); assert n_hooks(net) == 0

def test_feat_dist(imgs):
    fd = FeatDist(tiny_net(), [2, 6, 9], min_size=16)
    d0, d1, d2 = (fd(imgs + s*torch.ones_like(imgs)*torch.linspace(0, 1, 24), imgs) for s in (0, .1, .5))
    assert d0.shape == (3,) and d0.abs().max() < 1e-6
    assert (d1 < d2).all()
    with pytest.raises(ValueError): fd(imgs, imgs[:, :, :8])

def test_transformer_net_shape():
    m = TransformerNet(nf=4, n_res=1)
    assert m(torch.randn(2, 3, 16, 24)).shape == (2, 3, 16, 24)

def test_patch_match_loss():
    torch.manual_seed(0)
    f = torch.randn(2, 4, 6, 6)
    assert patch_match_loss(f[:1], f[:1]).item() == pytest.approx(0, abs=1e-6)
    assert patch_match_loss(f, torch.randn(1, 4, 6, 6)).item() > 0
    # each patch is matched to its own copy inside a larger style map
    big = torch.zeros(1, 4, 10, 10); big[..., 2:8, 2:8] = f[:1]
    assert patch_match_loss(f[:1], big).item() == pytest.approx(0, abs=1e-6)

def test_patch_style_loss_trains_pixels(imgs):
    net = tiny_net()
    with PatchStyleLoss(imgs[:1], net, content_ids=[6], style_ids=[2, 6]) as l:
        x = imgs[1:2].clone().requires_grad_()
        l(x, imgs[1:2]).backward()
        assert x.grad.abs().sum() > 0 and l.content.item() == pytest.approx(0, abs=1e-6) and l.style.item() > 0

def test_featdist_sums_layers():
    fd = FeatDist(tiny_net(), [2, 6, 9], min_size=16)
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    parts = [FeatDist(fd.m, [i], min_size=16)(a, b) for i in [2, 6, 9]]
    assert torch.allclose(fd(a, b), sum(parts), atol=1e-5)                # LPIPS sums over layers

def test_lesson_losses_use_lessons_layers():
    assert lesson_feature_loss(pretrained=False).layer_ids == (22, 32, 42)
    sl = lesson_style_loss(torch.rand(1, 3, 32, 32), pretrained=False)
    assert list(sl.content_ids) == [12] and list(sl.style_ids) == [5, 12, 22, 32]

def _blur(x, k): return F.avg_pool2d(F.pad(x, [k//2]*4, mode='reflect'), k, stride=1)

def test_sharpness_ratio_orders_blur():
    torch.manual_seed(0)
    im = torch.rand(2, 3, 40, 40)
    test = sharpness_ratio(im, im)
    assert torch.allclose(test, torch.ones(2))
    r3, r5 = sharpness_ratio(_blur(im, 3), im), sharpness_ratio(_blur(im, 5), im)
    assert (r3 < 1).all() and (r5 < r3).all()
    assert (sharpness_ratio(im + 0.2*torch.randn_like(im), im) > 1).all()   # noise adds fine "detail"
    assert lap_energy(im[0]).shape == (1,)                                    # one image (3, h, w) works
    with pytest.raises(ValueError, match='shapes differ'): sharpness_ratio(im, im[:1])
    with pytest.raises(ValueError, match='expects images'): lap_energy(torch.rand(4, 4))

def test_heldout_compare_identity_is_bicubic():
    from imgcourse.metrics import sr_split
    files = sr_split()[1][:1]
    t = heldout_compare({'same': lambda x: x, 'flat': lambda x: torch.full_like(x, 0.5)}, files, max_side=48)
    assert list(t.index) == ['bicubic', 'same', 'flat'] and list(t.columns) == ['PSNR-Y (dB)', 'SSIM', 'sharpness']
    assert math.isclose(t.loc['same', 'PSNR-Y (dB)'], t.loc['bicubic', 'PSNR-Y (dB)'])
    assert math.isclose(t.loc['same', 'sharpness'], t.loc['bicubic', 'sharpness'])
    assert t.loc['flat', 'sharpness'] < 1e-6 and t.loc['flat', 'SSIM'] < t.loc['bicubic', 'SSIM']
    assert t.attrs['n'] == 1
    with pytest.raises(ValueError, match='no held-out'): heldout_compare({'same': lambda x: x}, [])

# feature losses for the shipped upscaler (notebook 03's last super-resolution section)
from imgcourse.metrics import sr_split
from imgcourse.superres import load_upscaler, charbonnier

def test_unit_range_normalises_both_sides():
    l = UnitRange(nn.L1Loss()); a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert torch.allclose(l(a, b), F.l1_loss(l.norm(a), l.norm(b)))
    assert torch.allclose(l.norm(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)), torch.zeros(1, 3, 1, 1), atol=1e-6)

def test_degradation_crops_every_kind_and_fixed():
    ds = DegradationCrops(sr_split()[0][:2], n=60, size=32, fixed=True, seed=3)
    items = [ds[i] for i in range(60)]
    assert {k for _, k in items} == set(range(len(DEGRADATIONS)))
    assert all(x.shape == (3, 32, 32) for x, _ in items)
    assert torch.equal(ds[5][0], ds[5][0])                                 # fixed: the same crop every time
    orig = [x for x, k in items if DEGRADATIONS[k] == 'original'][0]
    assert orig.min() < -1 and orig.max() > 0.5                           # ImageNet-normalised, not [0, 1]

def test_degradation_net_learns_and_reads_before_pools():
    learn = train_degradation_net(steps=4, files=sr_split()[0][:2], bs=8, size=32, n_valid=16)
    body = learn.model[0]
    assert pool_relus(body) == [5, 12, 19] and len(learn.recorder.values) == 1
    assert learn.model(torch.randn(2, 3, 32, 32)).shape == (2, len(DEGRADATIONS))

def test_balanced_feature_loss_equalises_terms(imgs):
    net = tiny_net(); p, t = imgs, imgs.flip(-1)
    l = balanced_feature_loss(net, LAYERS, p, t)
    l(p, t)
    px = l.pixel.item()
    assert all(abs(getattr(l, f'feat_{i}').item() - px) < 1e-4 + 1e-3*px for i in range(3))
    assert abs(sum(getattr(l, f'gram_{i}').item() for i in range(3)) - 3*px) < 1e-3 + 1e-2*px

def test_upscaler_batch_and_finetune():
    pb, yb = upscaler_batch(size=32, n=4, files=sr_split()[0][:2])
    assert pb.shape == yb.shape == (4, 3, 32, 32) and not torch.equal(pb, yb)
    before = load_upscaler().state_dict()
    learn = finetune_upscaler(charbonnier, steps=3, files=sr_split()[0][:2], size=32, bs=2)
    after = learn.model.state_dict()
    assert any(not torch.equal(before[k], after[k].float()) for k in before)  # the weights moved
    assert type(learn.model).__name__ == 'SRNet' and len(learn.recorder.values) == 1

def test_stylise_snapshots_must_be_steps(imgs):
    "A snapshot step outside 1..steps would never be taken: a clear error instead of a short list"
    with StyleLoss(imgs[:1], tiny_net(), content_ids=[6], style_ids=[2, 6]) as l:
        assert len(stylise(imgs[:1], l, steps=4, snap_at=[1, 2, 4])) == 3
        with pytest.raises(ValueError, match='between 1 and steps=3'): stylise(imgs[:1], l, steps=3, snap_at=[0, 1, 3])

def test_content_dls_takes_a_fixed_subset(tmp_path):
    from PIL import Image
    d = tmp_path/'photos'; d.mkdir()
    for i in range(30): Image.new('RGB', (40, 30), (i*8 % 256, 0, 0)).save(d/f'{i:02d}.png')
    dls = content_dls(d, size=16, bs=2, n_items=10, num_workers=0)
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    assert len(items) == 10 and len(set(items)) == 10
    again = content_dls(d, size=16, bs=2, n_items=10, num_workers=0)
    assert sorted(items) == sorted(list(again.train_ds.items) + list(again.valid_ds.items))
    assert len(content_dls(d, size=16, bs=2, num_workers=0).train_ds) + 3 == 30  # all: 27 train, 3 held out

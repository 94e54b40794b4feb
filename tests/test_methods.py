"""Beyond CFG (#13): APG, CFG++ and autoguidance reduce exactly to CFG or plain sampling where they should, and batch
like CFG (a same-seed sample is bitwise the same alone and inside a grid)."""
import pytest
import torch

from conftest import nonzero_init
from core.guidance import APGParams, CFGDenoiser, GuidanceOptions, apg_update
from core.sampling import SamplerConfig, generate
from core.unet import FixedBatch, UNet, UNetConfig

NO_APG = APGParams(eta=1.0, norm_bound=None, momentum=0.0)  # η = 1, no norm bound, β = 0: plain CFG


@pytest.fixture(scope="module")
def model(tiny_unet):
    return FixedBatch(tiny_unet, 16)


@pytest.fixture(scope="module")
def weak(tiny_unet):
    """A different conditional network of the same shape: the 'bad model' for autoguidance tests."""
    torch.manual_seed(1)
    return FixedBatch(nonzero_init(UNet(UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4,
                                                   attention_at_bottom=False))).eval(), 16)


def uncond_half(model):
    """The model's unconditional half as a conditional-looking network: ε(z, λ, c) = ε_θ(z, λ, ∅)."""
    return lambda z, lam, c: model(z, lam, torch.full_like(c, model.cfg.null_label))


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_apg_without_projection_bound_or_momentum_is_cfg(model, sampler):
    seeds, labels, ws = [1, 2, 3], [0, 4, 9], [0.0, 1.0, 4.0]
    cfg = generate(model, seeds, labels, ws, SamplerConfig(sampler, 6))
    apg = generate(model, seeds, labels, ws,
                   SamplerConfig(sampler, 6, opts=GuidanceOptions(method="apg", apg=NO_APG)))
    assert torch.equal(apg[0], cfg[0])  # w = 0 rows are untouched
    assert (apg - cfg).abs().max() < 1e-5
    default = generate(model, seeds, labels, ws, SamplerConfig(sampler, 6, opts=GuidanceOptions(method="apg")))
    assert (default[2] - cfg[2]).abs().max() > 1e-2  # the paper's defaults do change the guided samples


def test_apg_update_parts():
    """Δ∥ is along x̂_c, Δ⊥ orthogonal to it; η weighs Δ∥; the norm bound and the momentum act as defined."""
    g = torch.Generator().manual_seed(0)
    xc, xu = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    diff = xc - xu
    par = APGParams(eta=1.0, norm_bound=None, momentum=0.0)
    full, _ = apg_update(xc, xu, None, par)
    torch.testing.assert_close(full, diff)
    orth, _ = apg_update(xc, xu, None, APGParams(eta=0.0, norm_bound=None, momentum=0.0))
    assert (orth * xc).sum(dim=(1, 2, 3)).abs().max() < 1e-5  # the parallel part is gone
    u = xc / xc.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(orth, diff - (diff * u).sum(dim=(1, 2, 3), keepdim=True) * u)
    bounded, _ = apg_update(xc, xu, None, APGParams(eta=1.0, norm_bound=0.5, momentum=0.0))
    torch.testing.assert_close(bounded.flatten(1).norm(dim=1), torch.full((2,), 0.5))
    _, run1 = apg_update(xc, xu, None, APGParams(momentum=-0.5))
    upd2, run2 = apg_update(xc, xu, run1, APGParams(eta=1.0, norm_bound=None, momentum=-0.5))
    torch.testing.assert_close(run2, diff - 0.5 * diff)
    torch.testing.assert_close(upd2, run2)
    with pytest.raises(ValueError, match="momentum"):
        APGParams(momentum=0.5)


def test_apg_momentum_carries_the_first_steps_raw_x_hat_unless_clipped(model):
    """At λ = −20, x̂ = (z − σε)/α is ~10⁴ times the data range; the paper's rule stores that Δ in the running Δ̄ and
    carries it on. With clip_x, Δ comes from x̂ in [−1, 1], so |Δ̄| ≤ 2 / (1 − |β|) element-wise at every step."""
    c = torch.tensor([0, 4, 9])
    z = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    p = APGParams(eta=0.0, norm_bound=2.5, momentum=-0.75)
    raw = CFGDenoiser(model, c, torch.full((3,), 8.0), model.cfg.null_label, GuidanceOptions(method="apg", apg=p))
    clipped = CFGDenoiser(model, c, torch.full((3,), 8.0), model.cfg.null_label,
                          GuidanceOptions(method="apg", apg=APGParams(0.0, 2.5, -0.75, clip_x=True)))
    for lam in (-20.0, -10.0, 0.0):
        raw(z, lam)
        clipped(z, lam)
        assert clipped.state["running"].abs().max() <= 2.0 / (1 - 0.75) + 1e-6
    assert raw.state["running"].abs().max() > 1e2


def test_cfgpp_at_scale_zero_is_unguided_ddim(model):
    """CFG++ at scale 0 forms x̂ from ε_θ(z) and re-noises with ε_θ(z): the unconditional model's DDIM (w = −1)."""
    seeds, labels = [3, 8], [2, 5]
    uncond = generate(model, seeds, labels, [-1.0], SamplerConfig("ddim", 8))
    pp = generate(model, seeds, labels, [0.0], SamplerConfig("ddim", 8, opts=GuidanceOptions(method="cfgpp")))
    assert torch.equal(pp, uncond)
    # At scale > 0 it differs both from CFG with the same x̂ rule (w = λ − 1) and from scale 0.
    pp5 = generate(model, seeds, labels, [0.5], SamplerConfig("ddim", 8, opts=GuidanceOptions(method="cfgpp")))
    cfg5 = generate(model, seeds, labels, [-0.5], SamplerConfig("ddim", 8))
    assert (pp5 - cfg5).abs().max() > 1e-3 and (pp5 - pp).abs().max() > 1e-3


def test_cfgpp_refuses_the_ancestral_sampler_and_scales_outside_0_1(model):
    with pytest.raises(ValueError, match="CFG\\+\\+ is defined for DDIM only"):
        generate(model, [0], [1], [0.5], SamplerConfig("ancestral", 4, opts=GuidanceOptions(method="cfgpp")))
    with pytest.raises(ValueError, match="scale must be in \\[0, 1\\]"):
        generate(model, [0], [1], [2.0], SamplerConfig("ddim", 4, opts=GuidanceOptions(method="cfgpp")))


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_autoguidance_with_the_good_model_as_guide_is_conditional_sampling(model, sampler):
    seeds, labels = [4, 6], [1, 7]
    plain = generate(model, seeds, labels, [0.0], SamplerConfig(sampler, 6))
    auto = generate(model, seeds, labels, [2.0],
                    SamplerConfig(sampler, 6, opts=GuidanceOptions(method="autoguidance")), guide_model=model)
    assert (auto - plain).abs().max() < 1e-5  # (1 + w) ε − w ε = ε, up to rounding


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_autoguidance_with_the_unconditional_half_as_guide_is_cfg(model, sampler):
    seeds, labels, ws = [4, 6], [1, 7], [0.0, 2.0]
    cfg = generate(model, seeds, labels, ws, SamplerConfig(sampler, 6))
    auto = generate(model, seeds, labels, ws, SamplerConfig(sampler, 6, opts=GuidanceOptions(method="autoguidance")),
                    guide_model=uncond_half(model))
    assert torch.equal(auto, cfg)


def test_autoguidance_needs_a_guide_and_only_it_takes_one(model, weak):
    with pytest.raises(ValueError, match="autoguidance needs a guide model"):
        generate(model, [0], [1], [1.0], SamplerConfig("ddim", 3, opts=GuidanceOptions(method="autoguidance")))
    with pytest.raises(ValueError, match="autoguidance needs a guide model"):
        generate(model, [0], [1], [1.0], SamplerConfig("ddim", 3), guide_model=weak)
    with pytest.raises(ValueError, match="unknown guidance method 'pag'"):
        GuidanceOptions(method="pag")


@pytest.mark.parametrize("method,sampler", [("apg", "ddim"), ("apg", "ancestral"), ("cfgpp", "ddim"),
                                            ("autoguidance", "ddim"), ("autoguidance", "ancestral")])
def test_each_method_same_seed_alone_equals_inside_grid_bitwise(model, weak, method, sampler):
    opts = GuidanceOptions(method=method)
    guide = weak if method == "autoguidance" else None
    ws = [0.0, 0.5, 1.0] if method == "cfgpp" else [0.0, 1.0, 3.0]
    alone = generate(model, [7], [7], [ws[1]], SamplerConfig(sampler, 4, opts=opts), guide_model=guide)[0, 0]
    grid = generate(model, list(range(8)), [s % 10 for s in range(8)], ws, SamplerConfig(sampler, 4, opts=opts),
                    guide_model=guide)
    assert torch.equal(alone, grid[1, 7])
    mixed = generate(model, [5, 7, 11], [1, 7, 8], ws[::-1], SamplerConfig(sampler, 4, opts=opts), guide_model=guide)
    assert torch.equal(alone, mixed[1, 1])


def test_autoguidance_runs_each_network_once_per_step_over_the_rows_that_need_it(model, weak):
    calls = {"good": [], "bad": []}

    def counting(net, key):
        def run(z, lam, c):
            calls[key].append(z.shape[0])
            return net(z, lam, c)
        run.cfg = net.cfg
        return run

    good = counting(model, "good")
    c = torch.tensor([1, 2, 3, 4])
    den = CFGDenoiser(good, c, torch.tensor([0.0, 2.0, 0.0, 1.0]), model.cfg.null_label,
                      GuidanceOptions(method="autoguidance"), guide_model=counting(weak, "bad"))
    den(torch.randn(4, 1, 28, 28), 0.0)
    assert calls == {"good": [4], "bad": [2]}  # the guide runs on the two guided rows only

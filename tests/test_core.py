"""Analytic oracles for the diffusion maths, guidance, samplers, seeding and truncation (issue #2)."""
import math

import pytest
import torch

from core.diffusion import (LOGSNR_MAX, LOGSNR_MIN, alpha_sigma, diffuse, eps_from_x, logsnr_schedule_cosine,
                            posterior, u_from_logsnr, x_from_eps)
from core.guidance import (EpsOut, GuidanceOptions, cfg_combine, CFGDenoiser, classifier_grad,
                           classifier_guided_denoiser, dynamic_threshold_x, implicit_classifier_grad, rescale_x)
from core.noise import NoiseConfig, SeededNoise, truncated_normal
from core.sampling import (SamplerConfig, generate, run_sampler, sample_ancestral, sample_ddim,
                           sampling_logsnrs)
from core.train import diffusion_loss
from core.unet import FixedBatch


def test_alpha_sigma_sum_to_one():
    lam = torch.linspace(-20, 20, 101, dtype=torch.float64)
    a, s = alpha_sigma(lam)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(lam), rtol=0, atol=1e-12)
    # λ is the log-SNR: log(α²/σ²) = λ.
    torch.testing.assert_close(torch.log(a**2 / s**2), lam, rtol=1e-9, atol=1e-9)


def test_cosine_schedule_endpoints_and_inverse():
    u = torch.tensor([0.0, 1.0], dtype=torch.float64)
    lam = logsnr_schedule_cosine(u)
    assert lam[0].item() == pytest.approx(LOGSNR_MAX, abs=1e-9)
    assert lam[1].item() == pytest.approx(LOGSNR_MIN, abs=1e-9)
    uu = torch.linspace(0, 1, 257, dtype=torch.float64)
    lam = logsnr_schedule_cosine(uu)
    assert torch.all(lam[1:] < lam[:-1]), "λ(u) must decrease"
    torch.testing.assert_close(u_from_logsnr(lam), uu, rtol=0, atol=1e-10)
    # Midpoint of the symmetric [-20, 20] schedule is λ = 0.
    assert logsnr_schedule_cosine(torch.tensor([0.5], dtype=torch.float64)).item() == pytest.approx(0.0, abs=1e-9)


def test_x_from_eps_inverts_diffuse():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(6, 1, 8, 8, generator=g)
    lam = torch.tensor([-6.0, -2.0, 0.0, 1.0, 4.0, 8.0])
    z = diffuse(x, lam, eps)
    torch.testing.assert_close(x_from_eps(z, eps, lam), x, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(eps_from_x(z, x, lam), eps, rtol=1e-4, atol=1e-4)


def test_posterior_matches_gaussian_conditioning():
    # q(z_λ' | z_λ, x) by brute-force Gaussian conditioning of the joint (z_λ', z_λ) given x, in 1-D.
    lam, lam_n = torch.tensor(-1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    a, s = alpha_sigma(lam)
    an, sn = alpha_sigma(lam_n)
    a_ts = a / an  # z_λ = a_ts z_λ' + σ_{λ|λ'} ε'
    var_ts = s**2 - a_ts**2 * sn**2
    x, z = torch.tensor(0.3, dtype=torch.float64), torch.tensor(-0.7, dtype=torch.float64)
    cov_nz = a_ts * sn**2
    mean_ref = an * x + cov_nz / s**2 * (z - a * x)
    var_ref = sn**2 - cov_nz**2 / s**2
    mean, var_tilde, var_fwd = posterior(z.reshape(1, 1, 1, 1), x.reshape(1, 1, 1, 1), lam.reshape(1), lam_n.reshape(1))
    assert mean.item() == pytest.approx(mean_ref.item(), rel=1e-10)
    assert var_tilde.item() == pytest.approx(var_ref.item(), rel=1e-10)
    assert var_fwd.item() == pytest.approx(var_ts.item(), rel=1e-10)


def _gaussian_denoiser(s: float):
    """Exact ε*(z_λ) for x ~ N(0, s² I): E[ε | z] = σ z / (α² s² + σ²)."""

    def den(z, logsnr):
        a, sig = alpha_sigma(torch.tensor(logsnr, dtype=torch.float64))
        eps = (sig / (a**2 * s**2 + sig**2)).item() * z
        return EpsOut(eps, eps, None)

    return den


@pytest.mark.parametrize("s", [0.5, 1.5])
def test_ddim_with_exact_gaussian_denoiser_recovers_variance(s):
    noise = SeededNoise(list(range(64)), (1, 16, 16))
    x = sample_ddim(_gaussian_denoiser(s), noise.initial().double(), 200, clip_x=False)
    assert x.var().item() == pytest.approx(s**2, rel=0.06)


@pytest.mark.parametrize("s", [0.5, 1.5])
def test_ancestral_with_exact_gaussian_denoiser_recovers_variance(s):
    noise = SeededNoise(list(range(64)), (1, 16, 16))
    x = sample_ancestral(_gaussian_denoiser(s), noise.initial(), 200, noise, v=0.3, clip_x=False)
    # 16,384 draws: the sampling error of the variance is about 1 %.
    assert x.var().item() == pytest.approx(s**2, rel=0.06)


class CountingModel(torch.nn.Module):
    """A model that records the labels of every call."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.cfg, self.calls = inner, inner.cfg, []

    def forward(self, z, logsnr, c):
        self.calls.append(c.clone())
        return self.inner(z, logsnr, c)


def test_batched_cfg_equals_two_call_formula(tiny_unet):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 1, 28, 28, generator=g)
    c = torch.tensor([0, 3, 3, 9, 1])
    w = torch.tensor([0.0, 0.5, 1.0, 3.0, -1.0])
    out = CFGDenoiser(tiny_unet, c, w, tiny_unet.cfg.null_label)(z, 0.7)
    lam = torch.full((5,), 0.7)
    with torch.no_grad():
        m_c = tiny_unet(z, lam, c)
        m_u = tiny_unet(z, lam, torch.full_like(c, tiny_unet.cfg.null_label))
    ref = (1 + w.view(-1, 1, 1, 1)) * m_c - w.view(-1, 1, 1, 1) * m_u
    torch.testing.assert_close(out.eps, ref, rtol=0, atol=1e-6)
    # w = −1 is exactly the unconditional model.
    torch.testing.assert_close(out.eps[4], m_u[4], rtol=0, atol=1e-6)


def test_w_zero_makes_no_uncond_call(tiny_unet):
    m = CountingModel(tiny_unet)
    noise = SeededNoise([0, 1, 2], (1, 28, 28))
    den = CFGDenoiser(m, torch.tensor([1, 2, 3]), torch.zeros(3), m.cfg.null_label)
    run_sampler("ddim", den, noise, 4)
    assert len(m.calls) == 4
    assert all(c.shape == (3,) and (c != m.cfg.null_label).all() for c in m.calls)
    m.calls.clear()
    den = CFGDenoiser(m, torch.tensor([1, 2, 3]), torch.tensor([0.0, 1.0, 0.0]), m.cfg.null_label)
    run_sampler("ddim", den, noise, 4)
    # Only the guided row gets an uncond pass.
    assert len(m.calls) == 4 and all(c.shape == (4,) and c[3] == m.cfg.null_label for c in m.calls)


def test_guidance_interval_skips_uncond_outside(tiny_unet):
    m = CountingModel(tiny_unet)
    den = CFGDenoiser(m, torch.tensor([1]), torch.tensor([2.0]), m.cfg.null_label, GuidanceOptions(interval=(-2.0, 2.0)))
    run_sampler("ddim", den, SeededNoise([0], (1, 28, 28)), 16)
    lams = sampling_logsnrs(16)[:16]
    expect = [2 if -2 <= l <= 2 else 1 for l in lams]
    assert [c.shape[0] for c in m.calls] == expect and 2 in expect and 1 in expect


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_same_seed_alone_equals_inside_grid_bitwise(tiny_unet, sampler):
    model = FixedBatch(tiny_unet, 16)
    alone = generate(model, [7], [3], [1.0], SamplerConfig(sampler, 6))[0, 0]
    grid = generate(model, list(range(8)), [3] * 8, [0.0, 0.5, 1.0, 3.0], SamplerConfig(sampler, 6))
    assert torch.equal(alone, grid[2, 7])
    # A different class mix in the batch does not matter either.
    mixed = generate(model, [5, 7, 11], [1, 3, 8], [2.0, 1.0], SamplerConfig(sampler, 6))
    assert torch.equal(alone, mixed[1, 1])


def test_tiled_grid_runs_the_shared_first_step_once(tiny_unet):
    """A same-seed grid's first step sees one copy of the rows; every pixel equals the untiled denoiser's."""
    model = CountingModel(FixedBatch(tiny_unet, 16))
    ws, seeds, labels = [0.0, 1.0, 3.0], [4, 9], [2, 7]
    x = generate(model, seeds, labels, ws, SamplerConfig("ancestral", 5))
    # Step 0: 2 cond + 2 uncond rows instead of 6 + 4; later steps: 6 cond + 4 uncond (w = 0 has no uncond row).
    assert [c.shape[0] for c in model.calls] == [4] + [10] * 4
    noise = SeededNoise(seeds, (1, 28, 28)).repeat(3)
    c, w = torch.tensor(labels * 3), torch.tensor(ws).repeat_interleave(2)
    untiled = run_sampler("ancestral", CFGDenoiser(model, c, w, model.cfg.null_label), noise, 5)
    assert torch.equal(x.reshape(untiled.shape), untiled)
    # Labels that do not tile like the seeds are refused.
    with pytest.raises(AssertionError, match="tiled like the seeds"):
        CFGDenoiser(model, torch.tensor([1, 2, 3, 4]), torch.zeros(4), 10, first_step_tiles=2)


@pytest.mark.parametrize("cfg", [NoiseConfig(), NoiseConfig(truncation=0.5, temperature=0.8, step_temperature=0.7)])
def test_tiled_noise_equals_one_generator_per_row(cfg):
    tiled = SeededNoise([3, 8], (1, 4, 4), cfg).repeat(3)
    rows = SeededNoise([3, 8] * 3, (1, 4, 4), cfg)
    assert len(tiled) == len(rows) == 6 and tiled.seeds == rows.seeds
    for draw in ("initial", "step", "step"):
        assert torch.equal(getattr(tiled, draw)(), getattr(rows, draw)())


def test_seeded_noise_independent_of_batch():
    a = SeededNoise([7], (1, 4, 4))
    b = SeededNoise([1, 7, 9], (1, 4, 4))
    assert torch.equal(a.initial()[0], b.initial()[1])
    assert torch.equal(a.step()[0], b.step()[1])
    with pytest.raises(ValueError):
        SeededNoise([-1], (1, 4, 4))


@pytest.mark.parametrize("thr", [2.0, 1.0, 0.5, 0.04])
def test_truncation_bounds_and_same_seed(thr):
    noise = SeededNoise(list(range(32)), (1, 28, 28), NoiseConfig(truncation=thr))
    z = noise.initial()
    assert z.abs().max().item() <= thr
    # A truncated normal at 2 keeps most of the variance; at 0.04 it is nearly uniform on [-t, t].
    if thr == 0.04:
        assert z.var().item() == pytest.approx(thr**2 / 3, rel=0.05)
    again = SeededNoise([5], (1, 28, 28), NoiseConfig(truncation=thr)).initial()
    assert torch.equal(again[0], z[5])
    with pytest.raises(ValueError):
        NoiseConfig(truncation=0.0)


def test_truncated_normal_matches_moments():
    x = truncated_normal((200_000,), 1.0, torch.Generator().manual_seed(0)).double()
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    Z = math.erf(1 / math.sqrt(2))
    assert x.var().item() == pytest.approx(1 - 2 * phi / Z, rel=0.02)


def test_temperature_scales_noise():
    base = SeededNoise([3], (1, 8, 8)).initial()
    cold = SeededNoise([3], (1, 8, 8), NoiseConfig(temperature=0.5)).initial()
    torch.testing.assert_close(cold, 0.5 * base)


def test_classifier_guidance_quadratic_log_prob_gives_analytic_gradient():
    # log p(c | z) = −½ ‖z − m_c‖² ⇒ ∇_z = −(z − m_c); ε̃ = ε − w σ ∇.
    means = torch.randn(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))

    def log_prob(z, logsnr, c):
        return -0.5 * ((z - means[c]) ** 2).flatten(1).sum(1)

    z = torch.randn(3, 1, 4, 4)
    c = torch.tensor([0, 4, 9])
    with torch.inference_mode():
        g = classifier_grad(log_prob, z, torch.zeros(3), c)
    torch.testing.assert_close(g, -(z - means[c]))

    def model(z, logsnr, c):
        return torch.zeros_like(z)

    w = torch.tensor([0.0, 1.0, 2.5])
    with torch.inference_mode():
        out = classifier_guided_denoiser(model, log_prob, c, w, 10)(z, 1.5)
    sigma = alpha_sigma(torch.tensor(1.5, dtype=torch.float64))[1].item()
    torch.testing.assert_close(out.eps, -(w.view(-1, 1, 1, 1) * sigma) * (-(z - means[c])), rtol=1e-5, atol=1e-6)


def test_implicit_classifier_identity():
    # CFG is classifier guidance with the implicit classifier: ε_c − w σ ∇log p^i = (1+w) ε_c − w ε_u.
    e_c, e_u = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    lam, w = 0.8, torch.tensor([1.5, 1.5])
    sigma = alpha_sigma(torch.tensor(lam, dtype=torch.float64))[1].item()
    lhs = e_c - w.view(-1, 1, 1, 1) * sigma * implicit_classifier_grad(e_c, e_u, lam)
    torch.testing.assert_close(lhs, cfg_combine(e_c, e_u, w), rtol=1e-5, atol=1e-6)


def test_dynamic_threshold_matches_imagen_formula():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 1, 8, 8, generator=g) * torch.tensor([0.3, 1.0, 3.0, 6.0]).view(-1, 1, 1, 1)
    p = 0.9
    y = dynamic_threshold_x(x, p)
    # s = max(1, per-sample p-quantile of |x̂|); x̂ ← clip(x̂, −s, s) / s.
    for i in range(4):
        s = max(1.0, float(torch.quantile(x[i].abs().flatten(), p)))
        torch.testing.assert_close(y[i], x[i].clamp(-s, s) / s)
    assert y.abs().max().item() <= 1.0 + 1e-6
    assert not torch.allclose(y[3], x[3].clamp(-1, 1))  # rescaling, not a plain clamp
    small = torch.rand(2, 1, 8, 8, generator=g) * 0.5
    torch.testing.assert_close(dynamic_threshold_x(small, 0.99), small)  # s = 1: a no-op inside [−1, 1]


def test_rescale_matches_conditional_std():
    x_c = torch.randn(3, 1, 8, 8)
    x_g = 4 * x_c + 1
    r = rescale_x(x_g, x_c, 1.0)
    torch.testing.assert_close(r.flatten(1).std(1), x_c.flatten(1).std(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rescale_x(x_g, x_c, 0.0), x_g)
    torch.testing.assert_close(rescale_x(x_g, x_c, 0.5), 0.5 * r + 0.5 * x_g)


def test_stand_in_model_eps_depends_on_label_w_and_z(tiny_unet):
    """The fixture is not the zero-output fresh UNet: ε changes with the label, with w, with z and with λ."""
    z = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([3, 3])
    with torch.no_grad():
        e1 = tiny_unet(z, torch.full((2,), 0.5), c)
        assert e1.abs().mean() > 1e-3
        assert (e1 - tiny_unet(z, torch.full((2,), 0.5), torch.tensor([7, 7]))).abs().max() > 1e-4
        assert (e1 - tiny_unet(z, torch.full((2,), -3.0), c)).abs().max() > 1e-4
        assert (e1[0] - e1[1]).abs().max() > 1e-4  # different z, same label and λ
    den = [CFGDenoiser(tiny_unet, c, torch.full((2,), w), tiny_unet.cfg.null_label)(z, 0.5).eps for w in (0.0, 2.0)]
    assert (den[0] - den[1]).abs().max() > 1e-4


@pytest.mark.parametrize("opts", [GuidanceOptions(dynamic_threshold=0.99), GuidanceOptions(rescale_phi=0.7),
                                  GuidanceOptions(interval=(-5.0, 5.0)),
                                  GuidanceOptions(dynamic_threshold=0.99, rescale_phi=0.7, interval=(-5.0, 5.0))])
def test_variants_are_valid_denoisers_and_each_changes_the_samples(tiny_unet, opts):
    x = generate(tiny_unet, [0, 1], [2, 3], [4.0], SamplerConfig("ancestral", 5, opts=opts))
    assert x.shape == (1, 2, 1, 28, 28) and torch.isfinite(x).all()
    plain = generate(tiny_unet, [0, 1], [2, 3], [4.0], SamplerConfig("ancestral", 5))
    assert (x - plain).abs().max() > 1e-3


def test_tiny_unet_overfits_one_batch():
    from core.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, attention_at_bottom=False))
    x = (torch.rand(8, 1, 28, 28) > 0.7).float() * 2 - 1
    c = torch.arange(8) % 10
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def loss_fixed():
        g.manual_seed(0)
        return diffusion_loss(model, x, c, 0.0, g)

    first = loss_fixed().item()
    for _ in range(150):
        opt.zero_grad()
        loss_fixed().backward()
        opt.step()
    assert loss_fixed().item() < first / 5


def test_bad_inputs_raise_clear_errors(tiny_unet):
    with pytest.raises(ValueError, match="steps"):
        sampling_logsnrs(0)
    with pytest.raises(ValueError, match="unknown sampler"):
        run_sampler("euler", None, SeededNoise([0], (1, 28, 28)), 4)
    with pytest.raises(ValueError, match="finite"):
        CFGDenoiser(tiny_unet, torch.tensor([1]), torch.tensor([float("nan")]), 10)


@pytest.mark.parametrize("prediction", ["eps", "v", "edm"])
def test_prediction_targets_convert_back_to_eps(prediction):
    """The one conversion at the model boundary inverts the training target: eps_from_output(z, target) = ε."""
    from core.diffusion import PREDICTIONS, diffuse, eps_from_output, output_target

    assert prediction in PREDICTIONS
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(7, 3, 4, 4, generator=g), torch.randn(7, 3, 4, 4, generator=g)
    logsnr = torch.tensor([-15.0, -6.0, -1.0, 0.0, 1.5, 6.0, 12.0])
    z = diffuse(x, logsnr, eps)
    target = output_target(x, eps, logsnr, prediction)
    torch.testing.assert_close(eps_from_output(z, target, logsnr, prediction), eps, atol=2e-4, rtol=0)
    if prediction == "v":  # v = α ε − σ x (Salimans & Ho 2022)
        a, s = torch.sigmoid(logsnr).sqrt()[:, None, None, None], torch.sigmoid(-logsnr).sqrt()[:, None, None, None]
        torch.testing.assert_close(target, a * eps - s * x)


def test_edm_target_has_unit_variance_at_every_logsnr():
    """EDM's preconditioning: with data of std σ_data the network's target F has unit variance at every λ."""
    from core.diffusion import output_target

    g = torch.Generator().manual_seed(1)
    for lam in (-8.0, -2.0, 0.0, 2.4, 6.0):
        x = 0.5 * torch.randn(20000, 1, 1, 1, generator=g)
        eps = torch.randn(20000, 1, 1, 1, generator=g)
        f = output_target(x, eps, torch.full((20000,), lam), "edm", sigma_data=0.5)
        assert abs(float(f.std()) - 1.0) < 0.03, (lam, float(f.std()))


def test_a_v_prediction_unet_hands_the_samplers_eps(tiny_unet):
    """prediction "v": forward() returns σ z + α v_θ, i.e. ε; "eps" returns the raw output unchanged."""
    from dataclasses import replace

    from core.unet import UNet

    v_net = UNet(replace(tiny_unet.cfg, prediction="v")).eval()
    v_net.load_state_dict(tiny_unet.state_dict())
    z, lam, c = torch.randn(3, 1, 28, 28), torch.tensor([-3.0, 0.0, 4.0]), torch.tensor([1, 2, 10])
    with torch.no_grad():
        raw = v_net.raw(z, lam, c)
        a, s = torch.sigmoid(lam).sqrt()[:, None, None, None], torch.sigmoid(-lam).sqrt()[:, None, None, None]
        torch.testing.assert_close(v_net(z, lam, c), s * z + a * raw)
        assert torch.equal(tiny_unet(z, lam, c), tiny_unet.raw(z, lam, c))

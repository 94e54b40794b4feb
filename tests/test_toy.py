"""The exact 2-D lab (issue #23): closed-form scores against autograd, the implicit-classifier identity and
"classifier guidance with the exact noisy classifier is CFG", to machine precision."""
import pytest
import torch

from core.sampling import SamplerConfig, generate
from core.toy import PRESETS, ExactModel, log_classifier, log_density, score

MIX = PRESETS["overlap"]
LAMS = [-8.0, -2.0, 0.0, 3.0, 9.0]


def _points(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.7


@pytest.mark.parametrize("lam", LAMS)
def test_score_is_the_gradient_of_the_log_density(lam):
    z = _points().requires_grad_(True)
    logsnr = torch.full((z.shape[0],), lam, dtype=torch.float64)
    for c in (None, torch.zeros(z.shape[0], dtype=torch.long), torch.ones(z.shape[0], dtype=torch.long)):
        (grad,) = torch.autograd.grad(log_density(z, MIX, logsnr, c).sum(), z)
        torch.testing.assert_close(score(z.detach(), MIX, logsnr, c), grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("lam", LAMS)
def test_implicit_classifier_identity_holds_exactly(lam):
    """ε*(z, c) − ε*(z) = −σ_λ ∇_z log p_λ(c | z) (paper Sec. 3.2), with the exact noisy classifier."""
    z = _points(seed=1).requires_grad_(True)
    logsnr = torch.full((z.shape[0],), lam, dtype=torch.float64)
    sigma = torch.sigmoid(-logsnr).sqrt()[:, None]
    c = torch.arange(z.shape[0]) % 2
    (grad,) = torch.autograd.grad(log_classifier(z, MIX, logsnr).gather(1, c[:, None]).sum(), z)
    z = z.detach()
    diff = -sigma * score(z, MIX, logsnr, c) + sigma * score(z, MIX, logsnr)
    torch.testing.assert_close(diff, -sigma * grad, rtol=1e-10, atol=1e-12)


def test_classifier_probabilities_sum_to_one_and_match_the_data_at_high_snr():
    z = _points(seed=2)
    lc = log_classifier(z, MIX, torch.full((z.shape[0],), 20.0, dtype=torch.float64))
    torch.testing.assert_close(lc.exp().sum(1), torch.ones(z.shape[0], dtype=torch.float64))
    # At λ = 20 the noisy marginal is the data: p(c | x) from the mixture directly.
    p0 = log_density(z, MIX, torch.full((z.shape[0],), 20.0, dtype=torch.float64), torch.zeros(z.shape[0], dtype=torch.long))
    p1 = log_density(z, MIX, torch.full((z.shape[0],), 20.0, dtype=torch.float64), torch.ones(z.shape[0], dtype=torch.long))
    prior = torch.tensor([0.4, 0.6], dtype=torch.float64)
    post0 = (p0.exp() * prior[0]) / (p0.exp() * prior[0] + p1.exp() * prior[1])
    torch.testing.assert_close(lc[:, 0].exp(), post0, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lam", LAMS)
def test_classifier_guidance_with_the_exact_classifier_is_cfg(lam):
    """With exact scores, the app's classifier-guidance denoiser with the exact noisy classifier and its CFG denoiser
    give the same ε̃ at every z, λ and w (float32 model outputs: agreement to 1e-5 of ε's scale)."""
    from core.guidance import CFGDenoiser, classifier_guided_denoiser

    model = ExactModel(MIX).eval()

    def log_prob(z, logsnr, c):
        return log_classifier(z, MIX, logsnr).gather(1, c[:, None])[:, 0]

    z = _points(24, seed=3).float().reshape(24, 2, 1, 1)
    c = torch.arange(24) % 2
    w = torch.tensor([0.0, 1.0, 3.0, 8.0]).repeat(6)
    cfg = CFGDenoiser(model, c, w, model.cfg.null_label)(z, lam).eps
    cg = classifier_guided_denoiser(model, log_prob, c, w, model.cfg.null_label)(z, lam).eps
    torch.testing.assert_close(cg, cfg, rtol=1e-5, atol=1e-5)
    unguided = CFGDenoiser(model, c, torch.zeros(24), model.cfg.null_label)(z, lam).eps
    assert (cfg - unguided)[w == 8].abs().max() > 1e-3  # guidance does change ε̃


def test_unguided_exact_ddim_samples_the_class_conditional():
    """With the exact ε*, DDIM at w = 0 (the probability-flow ODE) draws from p(x | c): the class means agree."""
    model = ExactModel(MIX).eval()
    seeds = list(range(2000))
    x = generate(model, seeds, [1] * len(seeds), [0.0], SamplerConfig("ddim", 64, clip_x=False))[0].reshape(-1, 2)
    want = (0.4 * torch.tensor([0.3, 0.0]) + 0.2 * torch.tensor([0.0, 0.45])) / 0.6
    torch.testing.assert_close(x.mean(0).double(), want.double(), rtol=0, atol=0.02)


def test_tilted_draws_at_w0_are_the_class_conditional_and_differ_from_cfg_at_w3():
    """p_0(x | c) = p(x | c): exact draws and unguided exact DDIM agree to the two-draw noise floor; at w = 3 CFG's
    samples sit far from p_w (Bradley & Nakkiran 2024: CFG does not sample the tilted density)."""
    from core.toy import measure

    row0, _ = measure(MIX, 0, 0.0, SamplerConfig("ddim", 32, clip_x=False), n=600)
    row3, _ = measure(MIX, 0, 3.0, SamplerConfig("ddim", 32, clip_x=False), n=600)
    assert row0.to_data < 5 * row0.floor + 0.003 and row0.coverage == 1.0
    assert row3.to_tilted > 50 * row3.floor and row3.fidelity > row0.fidelity  # guidance: more fidelity, not p_w


def test_guidance_drops_the_rare_mode_and_autoguidance_stays_closer_to_the_data():
    from core.guidance import GuidanceOptions
    from core.toy import degraded, measure

    rare = PRESETS["rare-mode"]
    sc = SamplerConfig("ddim", 32, clip_x=False)
    assert measure(rare, 0, 0.0, sc, n=600)[0].coverage == 1.0 and measure(rare, 0, 3.0, sc, n=600)[0].coverage == 0.5
    cfg, _ = measure(MIX, 0, 3.0, sc, n=600)
    auto, _ = measure(MIX, 0, 3.0, SamplerConfig("ddim", 32, clip_x=False, opts=GuidanceOptions(method="autoguidance")),
                      n=600, guide=degraded(MIX))
    assert auto.to_data < 0.5 * cfg.to_data and auto.fidelity > measure(MIX, 0, 0.0, sc, n=600)[0].fidelity
    # CFG pushes samples out of the class's 95 % region (Chidambaram et al. 2024); autoguidance keeps them inside.
    assert cfg.outside > 0.08 and auto.outside < 0.02


def test_energy_distance_is_zero_for_equal_samples_and_grows_with_a_shift():
    from core.toy import energy_distance

    a = _points(300, seed=4)
    assert abs(energy_distance(a, a)) < 1e-12
    assert energy_distance(a, a + 0.5) > energy_distance(a, a + 0.1) > 0.005


def test_outside_share_of_exact_draws_is_the_region_s_complement():
    """Exact draws of p(x | c) fall outside its 95 % highest-density region 5 % of the time."""
    from core.toy import outside_share, sample_tilted

    x = sample_tilted(MIX, 0, 0.0, 4000, seed=5)
    assert abs(outside_share(x, MIX, 0) - 0.05) < 0.012


def test_the_class_density_integrates_to_one_on_the_grid():
    """p(x | c) (= p_0) and p(x) are normalised densities: their grid sums times the cell area are 1."""
    from core.toy import GRID_LIM, GRID_N, density_grid, tilted_log_density

    x = density_grid()
    cell = (2 * GRID_LIM / (GRID_N - 1)) ** 2
    for c in (0, 1):
        assert abs(float(tilted_log_density(x, MIX, c, 0.0).exp().sum()) * cell - 1.0) < 1e-3


def test_same_seed_same_point_alone_or_inside_a_grid():
    model = ExactModel(MIX).eval()
    sc = SamplerConfig("ancestral", 16, clip_x=False)
    grid = generate(model, [3, 4, 5], [0, 1, 0], [0.0, 2.0], sc)
    alone = generate(model, [4], [1], [2.0], sc)
    assert torch.equal(grid[1, 1], alone[0, 0])
    # also inside a batch as large as the curves' (14,000 points, split over threads), at any position
    ws, sc3 = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0], SamplerConfig("ddim", 3, clip_x=False)
    big = generate(model, list(range(2000)), [0] * 2000, ws, sc3)
    for j, s in ((3, 1999), (6, 1234), (0, 7)):
        assert torch.equal(big[j, s], generate(model, [s], [0], [ws[j]], sc3)[0, 0])


def test_apg_with_eta_1_no_bound_no_momentum_is_cfg_on_the_toy():
    from core.guidance import APGParams, GuidanceOptions

    model = ExactModel(MIX).eval()
    seeds, labels = list(range(8)), [s % 2 for s in range(8)]
    cfg = generate(model, seeds, labels, [1.0, 3.0], SamplerConfig("ddim", 16, clip_x=False))
    apg = generate(model, seeds, labels, [1.0, 3.0], SamplerConfig(
        "ddim", 16, clip_x=False, opts=GuidanceOptions(method="apg", apg=APGParams(1.0, None, 0.0))))
    torch.testing.assert_close(apg, cfg, rtol=1e-4, atol=1e-4)


def test_fidelity_rises_with_w_on_overlap():
    from core.toy import fidelity

    model = ExactModel(MIX).eval()
    x = generate(model, list(range(400)), [0] * 400, [0.0, 1.0, 3.0], SamplerConfig("ddim", 32, clip_x=False))
    f = [fidelity(x[j].reshape(-1, 2), MIX, 0) for j in range(3)]
    assert f[0] < f[1] < f[2]


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_exact_classifier_guidance_and_cfg_draw_the_same_samples(sampler):
    """End to end, on the same seeds, in the lab's float64: classifier guidance with the exact noisy classifier is CFG,
    to rounding (this is why CFG needs no classifier)."""
    from core.sampling import generate_classifier_guided

    model = ExactModel(MIX).eval()

    def log_prob(z, logsnr, c):
        return log_classifier(z, MIX, logsnr).gather(1, c[:, None])[:, 0]

    seeds, labels, ws = list(range(64)), [s % 2 for s in range(64)], [0.0, 1.0, 3.0]
    sc = SamplerConfig(sampler, 32, clip_x=False)
    cfg = generate(model, seeds, labels, ws, sc)
    cg = generate_classifier_guided(model, log_prob, seeds, labels, ws, sc)
    assert cfg.dtype == torch.float64 and float((cg - cfg).abs().max()) < 1e-9
    assert float((cfg[2] - cfg[0]).abs().max()) > 0.1  # and guidance does move the samples

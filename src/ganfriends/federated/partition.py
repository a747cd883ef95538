"""Which dataset images each federated device holds.

Devices are numbered 0..N. Device 0 is FeGAN's "server device" (the shard of rank 0); devices 1..N
are the clients (FeGAN's ranks 1..size-1, so N = size - 1). Every draw comes from a NumPy generator
seeded by a key tuple (``rng.derive_seed(seed, rng.PARTITION, ...)``), one stream per device, so a
device's shard never depends on how many other devices exist or in which order they are built.

References are to LPD-EPFL/FeGAN at e67382b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ganfriends import rng

# Third key element, so the two schemes never share a stream. Non-zero on purpose: derive_seed maps
# (seed, PARTITION) and (seed, PARTITION, 0) to the same seed (SeedSequence pads with zeros).
_IID_TAG = 1
_NON_IID_TAG = 2

# datasets.py:207 — the class-count slope is the literal 200.0, whatever the dataset.
_CLASS_SLOPE = 200
# datasets.py:225 — "A hack for fair comparison": rank 0 stops once it holds this many images.
SERVER_LIMIT = 7_500


@dataclass(frozen=True, eq=False)
class Partition:
    """The dataset indices held by each device, device 0 first (int64 copies, read-only).

    The partition functions below build every shard in ascending (dataset) order.

    ``eq=False``: the dataclass ``__eq__`` would compare NumPy arrays with ``==`` and fail; compare
    shards with ``np.array_equal`` instead.
    """

    shards: tuple[npt.NDArray[np.int64], ...]

    def __post_init__(self) -> None:
        if not self.shards:
            raise ValueError("a partition needs at least one device")
        frozen = []
        for device, shard in enumerate(self.shards):
            array = np.array(shard, dtype=np.int64)  # a private copy, so freezing it is safe
            if array.ndim != 1:
                raise ValueError(f"shard of device {device} is not one-dimensional")
            array.setflags(write=False)
            frozen.append(array)
        object.__setattr__(self, "shards", tuple(frozen))

    @property
    def num_devices(self) -> int:
        """N + 1: the server device and the N clients."""
        return len(self.shards)

    def sizes(self) -> npt.NDArray[np.int64]:
        """Number of images held by each device (int64, length ``num_devices``)."""
        return np.array([len(shard) for shard in self.shards], dtype=np.int64)

    def histograms(self, labels: npt.ArrayLike, num_classes: int) -> npt.NDArray[np.int64]:
        """Class counts per device: an int64 array of shape (num_devices, num_classes)."""
        label_array = _check_labels(labels, num_classes)
        counts = np.zeros((self.num_devices, num_classes), dtype=np.int64)
        for device, shard in enumerate(self.shards):
            if shard.size and (shard.min() < 0 or shard.max() >= label_array.size):
                raise ValueError(
                    f"shard of device {device} indexes past the {label_array.size} labels"
                )
            counts[device] = np.bincount(label_array[shard], minlength=num_classes)
        return counts


def iid_partition(size: int, clients: int, seed: int) -> Partition:
    """Split ``range(size)`` into N + 1 disjoint, covering shards of equal size (+-1).

    A permutation keyed (seed, PARTITION, 1) is cut into ``clients + 1`` consecutive pieces; the
    first ``size % (clients + 1)`` devices get one image more (``np.array_split``'s rule). Each
    shard is then sorted.

    Deliberate deviations from FeGAN (datasets.py:197-200, 75-93): FeGAN cuts N pieces and gives
    rank r piece r - 1, so rank 0 reads piece -1, the same shard as rank N; here every device gets
    its own shard. FeGAN drops the ``size % N`` remainder (``int(frac * len)``) and shuffles with
    the fixed seed 1234; here every image is used and the shuffle follows ``seed``.
    """
    _check_clients(clients)
    devices = clients + 1
    if size < devices:
        raise ValueError(f"cannot give {devices} devices a non-empty iid shard of {size} images")
    generator = _generator(seed, _IID_TAG)
    order = generator.permutation(size).astype(np.int64)
    return Partition(tuple(np.sort(piece) for piece in np.array_split(order, devices)))


def classes_for_device(device: int, clients: int, num_classes: int) -> int:
    """How many classes device ``device`` holds: all for device 0, else min(C, 200 r // N + 1).

    datasets.py:207-208 with W = num_workers = size - 1 = N (dist-lsgan.py:341). FeGAN computes
    ``int(r * 200.0 / N)``; the integer floor below is the same number (the quotient is never
    within a rounding error of an integer it does not equal, for any realistic r and N).
    """
    if device == 0:
        return num_classes
    return min(num_classes, device * _CLASS_SLOPE // clients + 1)


def non_iid_partition(
    labels: npt.ArrayLike,
    clients: int,
    *,
    magic_num: int,
    seed: int,
    num_classes: int,
    server_limit: int = SERVER_LIMIT,
) -> Partition:
    """FeGAN's skewed partition (datasets.py:202-226), seeded: shards OVERLAP.

    For device r (stream keyed (seed, PARTITION, 2, r); the draws in FeGAN's order):

    1. ``k = classes_for_device(r, N, num_classes)`` and a class set of k distinct classes drawn
       uniformly (FeGAN's unseeded ``random.sample``, datasets.py:210).
    2. One cap per class, all ``num_classes`` of them, chosen or not (datasets.py:215):
       U{1..magic_num} for device 0, U{1..r**2} for a client, both ends included (``randint``).
    3. A cap above ``magic_num`` becomes ``(r + 1) * magic_num / (N + 1)`` (datasets.py:217-218,
       where FeGAN's local ``size`` is num_workers = N). FeGAN keeps it a float and tests
       ``count < cap``, so the number of images taken is its ceiling. Device 0's caps never exceed
       magic_num, so this only touches clients with r**2 > magic_num.
    4. Data access (datasets.py:220-226): FeGAN walks the WHOLE training set from index 0 and
       takes an image when its class is chosen and that class's count is still under its cap, so
       a device holds the first ``min(cap, class size)`` images of each chosen class, in dataset
       order. There is no per-device offset: every device reads from the start, so shards overlap
       — for each class, the images of a smaller holding are a prefix of a larger one's, and the
       first image of a class is held by every device holding that class. Device 0 stops after
       its ``server_limit``-th image (7,500), i.e. it keeps the first 7,500 of those in dataset
       order.

    Every chosen class has cap >= 1, so a shard is empty only if none of its device's classes
    occurs in ``labels``; that raises ValueError. Deviation: the draws are seeded per device.
    """
    _check_clients(clients)
    if magic_num < 1:
        raise ValueError(
            f"magic_num must be >= 1 (caps are drawn from U[1, magic]), got {magic_num}"
        )
    if server_limit < 1:
        raise ValueError(f"server_limit must be >= 1, got {server_limit}")
    label_array = _check_labels(labels, num_classes)
    by_class = [np.flatnonzero(label_array == c).astype(np.int64) for c in range(num_classes)]
    shards = []
    for device in range(clients + 1):
        caps = _class_caps(device, clients, magic_num=magic_num, seed=seed, num_classes=num_classes)
        # Caps of unchosen classes are 0 here: FeGAN draws them but never uses them.
        assert all(cap >= 1 for cap in caps.values()), "FeGAN draws every cap from U[1, ...]"
        taken = [by_class[c][:cap] for c, cap in sorted(caps.items())]
        shard = np.sort(np.concatenate(taken)) if taken else np.zeros(0, dtype=np.int64)
        if device == 0:
            shard = shard[:server_limit]
        if shard.size == 0:
            raise ValueError(f"device {device} would hold no image: none of its classes occurs")
        shards.append(shard)
    return Partition(tuple(shards))


def _class_caps(
    device: int, clients: int, *, magic_num: int, seed: int, num_classes: int
) -> dict[int, int]:
    """Chosen class -> number of images device ``device`` may take of it (steps 1-3 above)."""
    generator = _generator(seed, _NON_IID_TAG, device)
    count = classes_for_device(device, clients, num_classes)
    chosen = generator.choice(num_classes, size=count, replace=False)
    high = magic_num if device == 0 else device**2
    drawn = generator.integers(1, high, size=num_classes, endpoint=True)
    # ceil((r + 1) * magic / (N + 1)) in integers: FeGAN's float cap, rounded up by `count < cap`.
    replacement = -(-(device + 1) * magic_num // (clients + 1))
    return {int(c): int(replacement if drawn[c] > magic_num else drawn[c]) for c in chosen}


def _generator(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(rng.derive_seed(key[0], rng.PARTITION, *key[1:])))


def _check_clients(clients: int) -> None:
    if clients < 1:
        raise ValueError(f"need at least one client, got {clients}")


def _check_labels(labels: npt.ArrayLike, num_classes: int) -> npt.NDArray[np.int64]:
    array = np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError("labels must be a one-dimensional integer array")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return array.astype(np.int64)

"""Fashion-MNIST: 28x28 grey clothes, padded to 32x32 and held in memory as one uint8 tensor.

Found on disk (Debian's ``dataset-fashion-mnist`` package, a data folder) or downloaded and
verified against the sha256 of the *decompressed* files, which are the same for every copy
(Debian recompresses the .gz files, so their own checksums differ).
"""

from __future__ import annotations

from pathlib import Path

from ganfriends.data.idx_dataset import IDX_SPLIT_FILES, IdxDataset, IdxSpec

FASHION_MNIST_URL = "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_URL_ENV = "GANFRIENDS_FASHION_MNIST_URL"
# split -> (images file, labels file), without the optional .gz
FASHION_MNIST_FILES = IDX_SPLIT_FILES
# sha256 of each file's decompressed bytes.
FASHION_MNIST_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}

# Looked for in <data dir>/fashion-mnist, ./data/fashion-mnist, ./data, then Debian's folder.
FASHION_MNIST_HOME = IdxSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    url=FASHION_MNIST_URL,
    url_env=FASHION_MNIST_URL_ENV,
    sha256=FASHION_MNIST_SHA256,
    hint="install Debian's dataset-fashion-mnist package (sudo apt-get install "
    "dataset-fashion-mnist) or put the four IDX .gz files in {target}",
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    bare_cwd_data=True,
    files=FASHION_MNIST_FILES,
)


class FashionMNIST(IdxDataset):
    """One split of Fashion-MNIST as ``(1, size, size)`` images, with class labels (0-9)."""

    home = FASHION_MNIST_HOME
    name = FASHION_MNIST_HOME.name


find_fashion_mnist = FASHION_MNIST_HOME.find
download_fashion_mnist = FASHION_MNIST_HOME.download
open_fashion_mnist = FashionMNIST.open

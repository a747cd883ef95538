"""MNIST: 28x28 grey handwritten digits, padded to 32x32 and held in memory as one uint8 tensor.

Found in a data folder or downloaded from a mirror (the original host often refuses scripts) and
verified against the sha256 of the *decompressed* files, which every faithful copy shares.
"""

from __future__ import annotations

from ganfriends.data.idx_dataset import IdxDataset, IdxSpec

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_URL_ENV = "GANFRIENDS_MNIST_URL"
# sha256 of each file's decompressed bytes. Not published by the dataset's authors (they give
# none); these are the values many independent projects pin for the LeCun files and their mirrors.
MNIST_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

# Looked for in <data dir>/mnist and ./data/mnist. Not ./data itself, unlike Fashion-MNIST: the
# two share file names, so a bare folder would be ambiguous. Debian packages no MNIST.
MNIST_HOME = IdxSpec(
    name="mnist",
    title="MNIST",
    url=MNIST_URL,
    url_env=MNIST_URL_ENV,
    sha256=MNIST_SHA256,
    hint="put the four IDX .gz files (train-images-idx3-ubyte.gz, ...) in {target}, "
    f"or set {MNIST_URL_ENV} to a mirror that serves them",
)


class MNIST(IdxDataset):
    """One split of MNIST as ``(1, size, size)`` images, with the digits (0-9) as labels."""

    home = MNIST_HOME
    name = MNIST_HOME.name


find_mnist = MNIST_HOME.find
download_mnist = MNIST_HOME.download
open_mnist = MNIST.open

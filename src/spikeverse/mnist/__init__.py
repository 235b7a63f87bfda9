"""Spiking digit classification (SPEC R-ANA-MNIST, seed 000 sec. 7.2): MNIST with Poisson rate
coding and spiking neurons, by two routes, in a run directory like every trainer's.

Modules, one concept each:
- ``data``: the IDX reader, a user's folder of the four MNIST files (plain or gzipped), and the
  offline default that ships inside an installed package (scikit-learn's 8 x 8 digits);
- ``readout``: the Poisson input both routes see, classification by output spike counts, the
  margin, and the evaluation over a test set;
- ``surrogate``: the LIF network trained by BPTT with a surrogate gradient;
- ``converted``: the ReLU network and its conversion by ``spikeverse.convert`` (tan, fast);
- ``train``: the options (``MNISTConfig``), the epoch loop of both routes, checkpoints, resume and
  the final evaluation that the figures (``analysis.mnist_plots``) are drawn from.
"""

from spikeverse.mnist.data import Dataset, load_dataset, load_digits, load_mnist, read_idx
from spikeverse.mnist.readout import Evaluation, evaluate, margins, predict
from spikeverse.mnist.train import METHODS, MNISTConfig, read_evaluation, train_mnist

__all__ = ["Dataset", "Evaluation", "METHODS", "MNISTConfig", "evaluate", "load_dataset", "load_digits",
           "load_mnist", "margins", "predict", "read_evaluation", "read_idx", "train_mnist"]

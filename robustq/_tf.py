"""Importing TensorFlow the one way robustq supports.

robustq builds, trains and quantization-aware fine-tunes models with tf_keras
(Keras 2), because tensorflow-model-optimization only supports Keras 2. That
requires ``TF_USE_LEGACY_KERAS=1`` to be set before TensorFlow is first
imported, so every module that needs TensorFlow gets it from here, lazily.
Keras 3 model files are still accepted (see :mod:`robustq.models`).
"""

from __future__ import annotations

import os
from types import ModuleType


def tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module, imported with the legacy-Keras switch set.

    Sets ``TF_USE_LEGACY_KERAS=1`` and quiets TensorFlow's C++ start-up logging
    unless the user chose a level; raises RuntimeError if TensorFlow was
    already imported with Keras 3 as ``tf.keras``.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def tf_keras() -> ModuleType:
    """Return the ``tf_keras`` (Keras 2) module robustq builds and trains models with."""
    tensorflow()
    import tf_keras

    return tf_keras

"""Test setup: TensorFlow backend, two logical CPU devices, quiet logs."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _split_cpu():
    # Two logical CPUs let MirroredStrategy run for real without a GPU. This
    # must happen before TensorFlow initializes its devices.
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:  # already initialized (e.g. by a plugin)
        pass


_split_cpu()

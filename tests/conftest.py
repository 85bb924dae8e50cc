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


# === Session fixtures: built once, shared by every test file ================

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pydoc_texts():
    """The first 400 documents of Python's own documentation."""
    from keras_llm.data import sources

    return sources.pydoc_documents()[:400]


@pytest.fixture(scope="session")
def sentencepiece_dir(tmp_path_factory, pydoc_texts):
    """A SentencePiece tokenizer of 256 ids (16 T5 sentinels) trained on
    the built-in text: fits every tiny zoo model."""
    from keras_llm.data import tokenizer as tokenizer_lib

    directory = str(tmp_path_factory.mktemp("sentencepiece"))
    tokenizer_lib.train_sentencepiece(
        pydoc_texts, 256, directory, num_sentinels=16, seed=0
    )
    return directory


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """`tiny_run_dir(zoo_name)`: a run dir of that tiny zoo model with
    random weights and a tokenizer trained here, made once per session."""
    from tests import helpers

    made = {}

    def make(zoo_name):
        if zoo_name not in made:
            path = str(tmp_path_factory.mktemp(zoo_name))
            made[zoo_name] = helpers.make_run_dir(path, zoo_name)
        return made[zoo_name]

    return make

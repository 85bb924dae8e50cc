"""`keras_llm.restore`: checkpoints of the older per-head shapes restore
into today's 2-D variables; any other mismatch is still refused."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_llm import restore


def test_merges_axes_is_two_neighbouring_axes_merged():
    assert restore.merges_axes((8, 2, 3), (8, 6))  # query/key/value
    assert restore.merges_axes((2, 3, 8), (6, 8))  # output
    assert restore.merges_axes((2, 3), (6,))  # bias
    assert not restore.merges_axes((8, 6), (8, 6))
    assert not restore.merges_axes((8, 2, 3), (6, 8))
    assert not restore.merges_axes((8, 2, 4), (8, 6))
    assert not restore.merges_axes((2, 3, 8), (48,))


def _save(tmp_path, **values):
    holder = tf.train.Checkpoint(
        **{name: tf.Variable(value) for name, value in values.items()}
    )
    return holder.save(str(tmp_path / "old" / "ckpt"))


def test_older_shapes_restore_reshaped_from_a_copy(tmp_path):
    kernel = np.arange(48, dtype="float32").reshape(8, 2, 3)
    bias = np.arange(6, dtype="float32").reshape(2, 3)
    same = np.ones((4, 5), "float32")
    prefix = _save(tmp_path, kernel=kernel, bias=bias, same=same)
    variables = {
        "kernel": tf.Variable(np.zeros((8, 6), "float32")),
        "bias": tf.Variable(np.zeros(6, "float32")),
        "same": tf.Variable(np.zeros((4, 5), "float32")),
    }
    holder = tf.train.Checkpoint(**variables)
    assert restore.legacy_reshapes(prefix, holder) == {
        "kernel/.ATTRIBUTES/VARIABLE_VALUE": (8, 6),
        "bias/.ATTRIBUTES/VARIABLE_VALUE": (6,),
    }
    with restore.restorable(prefix, holder) as path:
        assert path != prefix
        holder.restore(path).assert_consumed()
    assert not os.path.exists(os.path.dirname(path))  # the copy is gone
    np.testing.assert_array_equal(variables["kernel"], kernel.reshape(8, 6))
    np.testing.assert_array_equal(variables["bias"], bias.reshape(6))
    np.testing.assert_array_equal(variables["same"], same)


def test_todays_shapes_and_other_mismatches_use_the_checkpoint_itself(
    tmp_path,
):
    prefix = _save(tmp_path, kernel=np.ones((8, 2, 4), "float32"))
    today = tf.train.Checkpoint(kernel=tf.Variable(np.zeros((8, 8), "f")))
    wrong = tf.train.Checkpoint(kernel=tf.Variable(np.zeros((8, 6), "f")))
    with restore.restorable(prefix, today) as path:
        assert path != prefix  # (8, 2, 4) → (8, 8)
    with restore.restorable(prefix, wrong) as path:
        assert path == prefix  # not a merge: refused as before
        with pytest.raises((ValueError, tf.errors.OpError)):
            wrong.restore(path).assert_consumed()
    new = _save(tmp_path / "new", kernel=np.ones((8, 8), "float32"))
    with restore.restorable(new, today) as path:
        assert path == new


def test_an_unreadable_checkpoint_is_left_to_the_restore(tmp_path):
    holder = tf.train.Checkpoint(kernel=tf.Variable(np.zeros((8, 6), "f")))
    missing = str(tmp_path / "nothing" / "ckpt-1")
    assert restore.legacy_reshapes(missing, holder) == {}

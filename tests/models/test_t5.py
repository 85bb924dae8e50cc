"""T5: parity with Hugging Face transformers, cache, save/load."""

import keras  # noqa: E402
import numpy as np
import pytest
import torch
import transformers

from keras_llm.convert.t5 import load_t5_weights  # noqa: E402
from keras_llm.layers.position import relative_position_bucket  # noqa: E402
from keras_llm.models import T5Backbone  # noqa: E402
from keras_llm.models import T5Seq2SeqLM  # noqa: E402
from tests.helpers import check_backbone
from tests.helpers import check_task

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=48,
    key_value_dim=12,  # H * K != D on purpose, as in real T5s
    dropout=0.0,
    layer_norm_epsilon=1e-6,
    num_buckets=8,
    max_distance=20,
)
V1_0 = dict(
    activation="relu", use_gated_activation=False, tie_embedding_weights=True
)
V1_1 = dict(
    activation="gelu_tanh",
    use_gated_activation=True,
    tie_embedding_weights=False,
)


def hf_t5(version_kwargs, seed=0):
    """A random Hugging Face T5 with the TINY shape, built locally."""
    torch.manual_seed(seed)
    config = transformers.T5Config(
        vocab_size=TINY["vocabulary_size"],
        d_model=TINY["hidden_dim"],
        d_kv=TINY["key_value_dim"],
        d_ff=TINY["intermediate_dim"],
        num_layers=TINY["num_layers"],
        num_decoder_layers=TINY["num_layers"],
        num_heads=TINY["num_heads"],
        relative_attention_num_buckets=TINY["num_buckets"],
        relative_attention_max_distance=TINY["max_distance"],
        dropout_rate=0.0,
        layer_norm_epsilon=TINY["layer_norm_epsilon"],
        feed_forward_proj="gated-gelu"
        if version_kwargs["use_gated_activation"]
        else "relu",
        tie_word_embeddings=version_kwargs["tie_embedding_weights"],
        decoder_start_token_id=0,
    )
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Norm scales start at 1; randomize them so the test sees them.
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.add_(0.2 * torch.randn_like(param))
        if not version_kwargs["tie_embedding_weights"]:
            # transformers 5 ties lm_head regardless; untie as v1.1 is.
            model.lm_head.weight = torch.nn.Parameter(
                torch.randn_like(model.lm_head.weight)
            )
    return model


def state_dict_numpy(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def padded_batch(rng, lengths, total, vocab):
    ids = rng.integers(1, vocab, size=(len(lengths), total)).astype("int32")
    mask = (np.arange(total)[None] < np.array(lengths)[:, None]).astype("int32")
    return ids * mask, mask


@pytest.mark.parametrize("version", ["v1_0", "v1_1"])
def test_logits_match_hugging_face(version):
    version_kwargs = V1_0 if version == "v1_0" else V1_1
    reference = hf_t5(version_kwargs)
    backbone = T5Backbone(**TINY, **version_kwargs)
    load_t5_weights(backbone, state_dict_numpy(reference))
    model = T5Seq2SeqLM(backbone)

    rng = np.random.default_rng(0)
    enc_ids, enc_mask = padded_batch(rng, [9, 5, 1], 9, TINY["vocabulary_size"])
    dec_ids, dec_mask = padded_batch(rng, [6, 3, 6], 6, TINY["vocabulary_size"])
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(enc_ids, dtype=torch.long),
            attention_mask=torch.tensor(enc_mask),
            decoder_input_ids=torch.tensor(dec_ids, dtype=torch.long),
            decoder_attention_mask=torch.tensor(dec_mask),
        ).logits.numpy()
    logits = model(
        {
            "encoder_token_ids": enc_ids,
            "encoder_padding_mask": enc_mask,
            "decoder_token_ids": dec_ids,
            "decoder_padding_mask": dec_mask,
        }
    )
    logits = keras.ops.convert_to_numpy(logits)
    real = dec_mask.astype(bool)
    np.testing.assert_allclose(logits[real], expected[real], atol=1e-4, rtol=0)
    # The reference must not be trivially flat: logits span a real range.
    assert np.ptp(expected[real]) > 1.0


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 16)])
def test_relative_position_buckets_match_hugging_face(
    bidirectional, num_buckets, max_distance
):
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = np.arange(-300, 301)[None, :] - np.arange(0, 40)[:, None]
    expected = T5Attention._relative_position_bucket(
        torch.tensor(relative),
        bidirectional=bidirectional,
        num_buckets=num_buckets,
        max_distance=max_distance,
    ).numpy()
    buckets = relative_position_bucket(
        relative, bidirectional, num_buckets, max_distance
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(buckets), expected)
    assert len(np.unique(expected)) > num_buckets // 2  # many buckets in use


def test_converter_lists_every_mismatched_weight():
    reference = hf_t5(V1_0)
    weights = state_dict_numpy(reference)
    weights["shared.weight"] = weights["shared.weight"][:, :16]
    del weights["encoder.final_layer_norm.weight"]
    backbone = T5Backbone(**TINY, **V1_0)
    before = keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)
    with pytest.raises(ValueError) as info:
        load_t5_weights(backbone, weights)
    message = str(info.value)
    assert "encoder.final_layer_norm.weight" in message
    assert "shared.weight: checkpoint (97, 16)" in message
    # Nothing was assigned on failure.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(backbone.token_embedding.embeddings), before
    )


def tiny_inputs(seed=0):
    rng = np.random.default_rng(seed)
    enc_ids, enc_mask = padded_batch(rng, [7, 4], 7, TINY["vocabulary_size"])
    dec_ids = rng.integers(1, TINY["vocabulary_size"], (2, 5)).astype("int32")
    return {
        "encoder_token_ids": enc_ids,
        "encoder_padding_mask": enc_mask,
        "decoder_token_ids": dec_ids,
        "decoder_padding_mask": np.ones_like(dec_ids),
    }


@pytest.mark.large
@pytest.mark.parametrize("version", ["v1_0", "v1_1"])
def test_backbone_and_task_contracts(version, tmp_path):
    kwargs = {**TINY, **(V1_0 if version == "v1_0" else V1_1)}
    inputs = tiny_inputs()
    inputs["decoder_padding_mask"][1, 3:] = 0  # a padded target
    check_backbone(T5Backbone, kwargs, inputs, tmp_path)
    check_task(T5Seq2SeqLM, T5Backbone, kwargs, inputs, tmp_path)

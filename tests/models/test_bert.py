"""BERT: parity with Hugging Face transformers, weight import, save/load."""

import keras  # noqa: E402
import numpy as np
import pytest
import torch
import transformers

from keras_llm.convert.bert import load_bert_weights  # noqa: E402
from keras_llm.models import BertBackbone  # noqa: E402
from keras_llm.models import BertMaskedLM  # noqa: E402
from tests.helpers import check_backbone
from tests.helpers import check_task

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=48,
    dropout=0.0,
    max_sequence_length=16,
    num_segments=3,  # not 2, so the converter cannot assume it
    layer_norm_epsilon=1e-12,
)


def hf_bert(cls, seed=0):
    """A random Hugging Face BERT (`BertModel` or `BertForMaskedLM`)."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=TINY["vocabulary_size"],
        hidden_size=TINY["hidden_dim"],
        num_hidden_layers=TINY["num_layers"],
        num_attention_heads=TINY["num_heads"],
        intermediate_size=TINY["intermediate_dim"],
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=TINY["max_sequence_length"],
        type_vocab_size=TINY["num_segments"],
        layer_norm_eps=TINY["layer_norm_epsilon"],
    )
    model = cls(config).eval()
    with torch.no_grad():
        # BERT starts with norms at (1, 0), zero biases and 0.02-scale
        # weights: randomize everything at a larger scale.
        for name, param in model.named_parameters():
            if "LayerNorm.weight" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(0.15 * torch.randn_like(param))
    return model


def state_dict_numpy(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def padded_inputs(seed=0, lengths=(9, 5, 1), total=9):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, TINY["vocabulary_size"], (len(lengths), total))
    mask = (np.arange(total)[None] < np.array(lengths)[:, None]).astype("int32")
    segments = rng.integers(0, TINY["num_segments"], (len(lengths), total))
    return {
        "token_ids": (ids * mask).astype("int32"),
        "padding_mask": mask,
        "segment_ids": (segments * mask).astype("int32"),
    }


def torch_inputs(inputs):
    return dict(
        input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
        attention_mask=torch.tensor(inputs["padding_mask"]),
        token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
    )


def test_backbone_matches_hugging_face_bert_model():
    reference = hf_bert(transformers.BertModel)
    backbone = BertBackbone(**TINY)
    load_bert_weights(backbone, state_dict_numpy(reference))
    inputs = padded_inputs()
    with torch.no_grad():
        expected = reference(**torch_inputs(inputs))
    outputs = backbone(inputs)
    real = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs["sequence_output"])[real],
        expected.last_hidden_state.numpy()[real],
        atol=1e-4,
        rtol=0,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs["pooled_output"]),
        expected.pooler_output.numpy(),
        atol=1e-4,
        rtol=0,
    )


def test_masked_lm_logits_match_hugging_face():
    reference = hf_bert(transformers.BertForMaskedLM)
    model = BertMaskedLM(BertBackbone(**TINY))
    weights = state_dict_numpy(reference)
    assert "bert.pooler.dense.weight" not in weights  # HF drops it here
    load_bert_weights(model, weights)
    inputs = padded_inputs(seed=1)
    with torch.no_grad():
        expected = reference(**torch_inputs(inputs)).logits.numpy()
    logits = model(inputs)
    # Original TF names (bert-base-uncased's files) load the same.
    renamed = BertMaskedLM(BertBackbone(**TINY))
    load_bert_weights(renamed, {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in weights.items()
    })  # fmt: skip
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(renamed(inputs)),
        keras.ops.convert_to_numpy(logits),
    )
    assert logits.dtype == "float32"
    real = inputs["padding_mask"].astype(bool)
    logits = keras.ops.convert_to_numpy(logits)
    np.testing.assert_allclose(logits[real], expected[real], atol=1e-4, rtol=0)
    assert np.ptp(expected[real]) > 1.0  # not trivially flat


def test_converter_reports_every_mismatch_and_assigns_nothing():
    weights = state_dict_numpy(hf_bert(transformers.BertForMaskedLM))
    weights["bert.encoder.layer.1.output.dense.weight"] = np.zeros((32, 40))
    del weights["cls.predictions.bias"]
    model = BertMaskedLM(BertBackbone(**TINY))
    table = model.backbone.token_embedding.embeddings
    before = keras.ops.convert_to_numpy(table)
    with pytest.raises(ValueError) as info:
        load_bert_weights(model, weights)
    message = str(info.value)
    assert "cls.predictions.bias" in message
    assert "bert.encoder.layer.1.output.dense.weight: checkpoint (32, 40)" in (
        message
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(table), before)
    with pytest.raises(ValueError, match="needs a `BertMaskedLM`"):
        load_bert_weights(model.backbone, weights, with_mlm_head=True)


def test_padding_does_not_leak_into_real_positions():
    model = BertMaskedLM(BertBackbone(**TINY))
    inputs = padded_inputs(lengths=(5, 5), total=8)
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["token_ids"][:, 5:] = 7
    a = keras.ops.convert_to_numpy(model(inputs))
    b = keras.ops.convert_to_numpy(model(changed))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-5)


@pytest.mark.large
def test_backbone_and_task_contracts(tmp_path):
    inputs = padded_inputs()
    check_backbone(BertBackbone, TINY, inputs, tmp_path)
    check_task(BertMaskedLM, BertBackbone, TINY, inputs, tmp_path)


@pytest.mark.large
def test_head_settings_thread_through_and_serialize(tmp_path):
    """`activation` reaches the encoder and (unless `head_activation` is
    set) the head; `head_layer_norm_epsilon` the head's norm only; both
    survive a `.keras` save (the contract checks, with keras-hub's)."""
    hub_like = dict(
        TINY, activation="gelu_tanh", head_activation="gelu",
        head_layer_norm_epsilon=1e-5,
    )  # fmt: skip
    inputs = padded_inputs()
    check_backbone(BertBackbone, hub_like, inputs, tmp_path)
    check_task(BertMaskedLM, BertBackbone, hub_like, inputs, tmp_path)
    model = BertMaskedLM(BertBackbone(**hub_like))
    assert model.transform_layer_norm.epsilon == 1e-5
    assert model.backbone.embeddings_layer_norm.epsilon == 1e-12
    # Exact and tanh GELU apart: the same weights, other logits.
    plain = BertMaskedLM(BertBackbone(**TINY))
    plain.set_weights(model.get_weights())
    assert plain.transform_layer_norm.epsilon == 1e-12
    a, b = (keras.ops.convert_to_numpy(m(inputs)) for m in (model, plain))
    assert np.abs(a - b).max() > 1e-5

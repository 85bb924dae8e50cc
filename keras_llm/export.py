"""SavedModel export for TF Serving: strings in, strings out.

`export(run_dir, out_dir)` writes `OUT/NAME/VERSION/` (VERSION an integer,
as TF Serving expects) atomically: everything goes into a hidden temporary
folder beside it, renamed into place at the end, so a crash leaves nothing
that TF Serving would pick up. Beside the versions, `OUT/models.config`
lists every model under OUT for `--model_config_file`.

Signatures (`saved_model_cli show --dir OUT/NAME/VERSION --all`):
- `serving_default`: `inputs` string `(B,)` → `outputs` string `(B,)`;
  tokenizer, truncation, decoding and detokenization all in the graph
  (BERT: the text with each `[MASK]` filled by its most likely token);
- `generate_ids`: `token_ids`, `padding_mask` int32 `(B, S)` → `token_ids`
  int32 `(B, max_new_tokens)`, for clients that tokenize themselves
  (seq2seq: right-padded encoder input; GPT-2: left-padded prompt);
- `score`: `inputs`, `targets` string `(B,)` → `log_likelihood` float32
  `(B,)` and `num_tokens` int32 `(B,)`: log p(target | input), summed over
  the target's tokens (BERT: `encode`, hidden states).
Decoding parameters are fixed at export and recorded in
`assets.extra/keras_llm_export.json`. The graph holds core TensorFlow and
TensorFlow Text ops only and no XLA cluster (TF Serving runs XLA only
behind an experimental flag, DESIGN.md trap 3).
"""

import dataclasses
import json
import logging
import os
import shutil

import keras
import tensorflow as tf

from keras_llm import rundir
from keras_llm._callable import make_callable
from keras_llm.generation import decoders
from keras_llm.generation.config import GenerationConfig
from keras_llm.generation.search import decode

logger = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = "keras_llm_export.json"
WARMUP_TEXTS = ("translate English to Spanish: Hello.", "", "The for loop")


def _versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit())


def _check_target(out_dir, name, version, overwrite):
    """The target folder; errors before any work if it cannot be written."""
    rundir.check_writable(out_dir, "the export to")
    if version is None:
        version = (_versions(os.path.join(out_dir, name)) or [0])[-1] + 1
    if not isinstance(version, int) or version < 0:
        raise ValueError(
            f"--version must be a non-negative integer (TF Serving reads "
            f"numeric folders only). Received: {version!r}"
        )
    target = os.path.join(out_dir, name, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"{target} already exists: pass --overwrite to replace it, or a "
            "new --version."
        )
    return target, version


class _Servable:
    """The traced functions of one export (model + tokenizer + settings)."""

    def __init__(
        self,
        model,
        tokenizer,
        config,
        max_input_length,
        max_target_length,
        task_prefix="",
    ):
        self.model = model
        self.task_prefix = task_prefix
        self.tokenizer = tokenizer
        self.config = config
        self.kind = decoders.model_kind(model)
        self.max_input_length = max_input_length
        self.max_target_length = max_target_length

    def _clean(self, texts):
        # Bytes that are not UTF-8 would fail the tokenizer: replace them.
        return tf.strings.unicode_transcode(
            texts,
            "UTF-8",
            "UTF-8",
            errors="replace",
            replacement_char=0xFFFD,
        )

    def _with_eos(self, ids, length):
        """Ragged ids cut to `length - 1`, then EOS (as in training)."""
        ids = ids[:, : length - 1]
        eos = tf.fill([ids.nrows(), 1], self.tokenizer.eos_id)
        return tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1)

    def _prompt(self, texts):
        """Strings → padded prompt `(token_ids, padding_mask)`."""
        tok = self.tokenizer
        if self.kind == decoders.SEQ2SEQ:
            # As in training: the run's task prefix, the text, then EOS.
            texts = tf.strings.join([self.task_prefix, self._clean(texts)])
            ids = self._with_eos(tok.tokenize(texts), self.max_input_length)
            return decoders.pad_prompts(ids, tok.pad_id)
        # Decoder-only: keep the end of long prompts; an empty prompt starts
        # from EOS (GPT-2's document separator).
        ids = tok.tokenize(self._clean(texts))[
            :, -(self.max_input_length - 1) :
        ]
        empty = tf.equal(ids.row_lengths(), 0)
        fill = tf.ragged.boolean_mask(
            tf.fill([ids.nrows(), 1], tok.eos_id), empty[:, None]
        )
        ids = tf.concat([fill, ids], axis=1)
        return decoders.pad_prompts(ids, tok.pad_id, left=True)

    def generate_ids(self, token_ids, padding_mask):
        return decode(
            self.model,
            token_ids,
            padding_mask,
            self.config,
            eos_id=self.tokenizer.eos_id,
            pad_id=self.tokenizer.pad_id,
        )

    def generate_ids_signature(self, token_ids, padding_mask):
        return {"token_ids": self.generate_ids(token_ids, padding_mask)}

    def serve(self, inputs):
        if self.kind == decoders.MASKED:
            return {"outputs": self._fill_masks(inputs)}
        token_ids, padding_mask = self._prompt(inputs)
        new = self.generate_ids(token_ids, padding_mask)
        return {"outputs": self.tokenizer.detokenize(new)}

    def _bert_inputs(self, texts):
        """Strings → BERT inputs: `[CLS] text [SEP]`, padded, one segment."""
        tok = self.tokenizer
        ids = tok.tokenize(self._clean(texts))[:, : self.max_input_length - 2]
        ones = tf.ones([ids.nrows(), 1], tf.int32)
        ids = tf.concat(
            [
                tf.RaggedTensor.from_tensor(ones * tok.cls_id),
                tf.cast(ids, tf.int32),
                tf.RaggedTensor.from_tensor(ones * tok.sep_id),
            ],
            1,
        )
        token_ids, padding_mask = decoders.pad_prompts(ids, tok.pad_id)
        return {
            "token_ids": token_ids,
            "padding_mask": padding_mask,
            "segment_ids": tf.zeros_like(token_ids),
        }

    def _fill_masks(self, inputs):
        tok = self.tokenizer
        features = self._bert_inputs(inputs)
        token_ids, padding_mask = (
            features["token_ids"],
            features["padding_mask"],
        )
        logits = self.model(features)
        best = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        filled = tf.where(tf.equal(token_ids, tok.mask_id), best, token_ids)
        keep = tf.logical_and(
            tf.cast(padding_mask, tf.bool), tf.not_equal(filled, tok.cls_id)
        )
        keep = tf.logical_and(keep, tf.not_equal(filled, tok.sep_id))
        return tok.detokenize(tf.ragged.boolean_mask(filled, keep))

    def score(self, inputs, targets):
        tok = self.tokenizer
        target_ids = tok.tokenize(self._clean(targets))
        if self.kind == decoders.SEQ2SEQ:
            token_ids, padding_mask = self._prompt(inputs)
            target_ids = self._with_eos(target_ids, self.max_target_length)
            labels, weights = decoders.pad_prompts(target_ids, tok.pad_id)
            decoder_ids = tf.concat(
                [tf.fill([tf.shape(labels)[0], 1], tok.pad_id), labels[:, :-1]],
                1,
            )
            logits = self.model(
                {
                    "encoder_token_ids": token_ids,
                    "encoder_padding_mask": padding_mask,
                    "decoder_token_ids": decoder_ids,
                    "decoder_padding_mask": tf.ones_like(decoder_ids),
                }
            )
        else:
            prompt = tok.tokenize(self._clean(inputs))
            joined = tf.concat([prompt, target_ids], axis=1)
            joined = joined[:, -self.max_input_length :]
            # Labels: the joined sequence shifted by one; weights on the
            # target's positions only.
            is_target = tf.concat(
                [
                    tf.zeros_like(prompt, tf.int32),
                    tf.ones_like(target_ids, tf.int32),
                ],
                1,
            )
            is_target = is_target[:, -self.max_input_length :]
            token_ids, padding_mask = decoders.pad_prompts(joined, tok.pad_id)
            target_mask, _ = decoders.pad_prompts(is_target, 0)
            logits = self.model(
                {"token_ids": token_ids, "padding_mask": padding_mask}
            )[:, :-1]
            labels = token_ids[:, 1:]
            weights = target_mask[:, 1:]
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        picked = tf.gather(log_probs, labels, batch_dims=2)
        weights = tf.cast(weights, tf.float32)
        return {
            "log_likelihood": tf.reduce_sum(picked * weights, axis=1),
            "num_tokens": tf.cast(tf.reduce_sum(weights, axis=1), tf.int32),
        }

    def encode(self, inputs):
        """BERT's hidden states (the `encode` signature)."""
        features = self._bert_inputs(inputs)
        outputs = self.model.backbone(features)
        return {
            "sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
            "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
            "padding_mask": features["padding_mask"],
        }


def _limits(cfg, model, config, kind):
    """Longest input and target the export feeds the model."""
    max_input = cfg.data.sequence_length
    max_target = max(cfg.data.target_sequence_length, config.max_new_tokens)
    if kind == decoders.CAUSAL:
        max_input = min(
            max_input,
            model.backbone.max_sequence_length - config.max_new_tokens,
        )
    if kind == decoders.MASKED:
        max_input = min(max_input, model.backbone.max_sequence_length)
    return max(max_input, 2), max_target


def _write_warmup(directory, name, texts):
    from tensorflow_serving.apis import model_pb2
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(os.path.join(directory, "assets.extra"), exist_ok=True)
    path = os.path.join(directory, "assets.extra", WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for batch in ([texts[0]], list(texts)):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(
                    name=name, signature_name="serving_default"
                ),
                inputs={"inputs": tf.make_tensor_proto(batch, tf.string)},
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def write_models_config(out_dir):
    """`OUT/models.config`: every model folder under OUT, for TF Serving's
    `--model_config_file` (text-format `ModelServerConfig`)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(os.listdir(out_dir)):
        if _versions(os.path.join(out_dir, name)):
            entry = config.model_config_list.config.add()
            entry.name = name
            entry.base_path = os.path.abspath(os.path.join(out_dir, name))
            entry.model_platform = "tensorflow"
    path = os.path.join(out_dir, "models.config")
    with open(path + ".tmp", "w") as f:
        f.write(text_format.MessageToString(config))
    os.replace(path + ".tmp", path)
    return path


def export(
    run_dir, out_dir, *, name=None, version=None, overwrite=False, config=None
):
    """Exports a run dir as a TF Serving SavedModel.

    Args:
        run_dir: a run directory (trained or converted).
        out_dir: the model base folder; the export goes to
            `out_dir/name/version`.
        name: model name. Defaults to the run dir's folder name.
        version: integer version. Defaults to the highest existing + 1.
        overwrite: replace an existing version.
        config: `GenerationConfig` fixed into the graph (greedy, 32 new
            tokens by default).

    Returns:
        The path of the written version folder.

    Raises:
        FileNotFoundError: no run dir / config / checkpoint / tokenizer.
        FileExistsError: the version exists and `overwrite` is False.
        PermissionError: `out_dir` cannot be written.
    """
    from keras_llm.data.tokenizer import load_tokenizer

    config = config or GenerationConfig()
    cfg = rundir.read_config(run_dir)
    name = name or os.path.basename(os.path.normpath(run_dir))
    target, version = _check_target(out_dir, name, version, overwrite)
    tokenizer_dir = os.path.join(run_dir, rundir.TOKENIZER_DIR)
    if not os.path.isdir(tokenizer_dir):
        raise FileNotFoundError(
            f"{tokenizer_dir} is missing: the export needs the run's tokenizer."
        )
    tokenizer = load_tokenizer(tokenizer_dir)
    model = rundir.load(run_dir)
    kind = decoders.model_kind(model)
    max_input, max_target = _limits(cfg, model, config, kind)
    servable = _Servable(
        model, tokenizer, config, max_input, max_target, cfg.data.task_prefix
    )

    strings = tf.TensorSpec([None], tf.string)
    ids = tf.TensorSpec([None, None], tf.int32)
    # name → (function, input specs); argument names become input keys.
    endpoints = {"serving_default": (servable.serve, [strings])}
    if kind == decoders.MASKED:
        endpoints["encode"] = (servable.encode, [strings])
    else:
        endpoints["generate_ids"] = (
            servable.generate_ids_signature,
            [ids, ids],
        )
        endpoints["score"] = (servable.score, [strings, strings])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    for endpoint, (function, specs) in endpoints.items():
        archive.add_endpoint(endpoint, function, specs)

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    scratch = os.path.join(parent, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        archive.write_out(scratch, verbose=False)
        _write_warmup(scratch, name, WARMUP_TEXTS)
        metadata = {
            "run_dir": os.path.abspath(run_dir),
            "model": name,
            "version": version,
            "kind": kind,
            "generation": dataclasses.asdict(config),
            "max_input_length": max_input,
            "max_target_length": max_target,
            "task_prefix": cfg.data.task_prefix,
            "signatures": sorted(endpoints),
            "xla": False,
        }
        with open(
            os.path.join(scratch, "assets.extra", METADATA_FILE), "w"
        ) as f:
            json.dump(metadata, f, indent=2)
        old = None
        if os.path.exists(target):
            old = os.path.join(parent, f".old-{version}-{os.getpid()}")
            os.replace(target, old)
        os.replace(scratch, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    write_models_config(out_dir)
    return target


make_callable(__name__, export)

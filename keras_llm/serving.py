"""SavedModel export for TF Serving: strings in, strings out.

`export(run_dir, out_dir)` writes `OUT/NAME/VERSION/` (VERSION an integer,
as TF Serving expects) atomically: everything goes into a hidden temporary
folder beside it, renamed into place at the end, so a crash leaves nothing
that TF Serving would pick up. Beside the versions, `OUT/models.config`
lists every model under OUT for `--model_config_file`.

Signatures (`saved_model_cli show --dir OUT/NAME/VERSION --all`):
- `serving_default`: `inputs` string `(B,)` → `outputs` string `(B,)`;
  tokenizer, truncation, decoding and detokenization all in the graph
  (BERT: the text with each `[MASK]` filled by its most likely token); a
  classifier serves `label` string `(B,)` and `scores` float32
  `(B, num_labels)` (probabilities, in the order of `labels.json`, which
  the metadata lists);
- `generate_ids`: `token_ids`, `padding_mask` int32 `(B, S)` → `token_ids`
  int32 `(B, max_new_tokens)`, for clients that tokenize themselves
  (seq2seq: right-padded encoder input; GPT-2: left-padded prompt);
- `score`: `inputs`, `targets` string `(B,)` → `log_likelihood` float32
  `(B,)` and `num_tokens` int32 `(B,)`: log p(target | input), summed over
  the target's tokens (BERT: `encode`, hidden states).
Decoding parameters are fixed at export and recorded in
`assets.extra/keras_llm_export.json`. The graph holds core TensorFlow and
TensorFlow Text ops only and no XLA cluster (TF Serving runs XLA only
behind an experimental flag; see docs/architecture.md, "Known traps").
With `xla=True` the id-to-id decode loop is one XLA-compiled function
inside that graph (`generation.compiled`), for a server started with
`XLA_SERVER_FLAG`.
"""

import dataclasses
import json
import logging
import os
import re
import shlex
import shutil

import keras
import tensorflow as tf

from keras_llm import kinds
from keras_llm import loading
from keras_llm import rundir
from keras_llm.generation.compiled import xla_decoding
from keras_llm.generation.config import GenerationConfig
from keras_llm.generation.config import max_new_tokens_problem
from keras_llm.generation.search import decode
from keras_llm.names import check_folder_name

logger = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = "keras_llm_export.json"
WARMUP_TEXTS = ("translate English to Spanish: Hello.", "", "The for loop")
# An XLA export warms up these batch sizes (each compiles the loop once).
XLA_WARMUP_BATCH_SIZES = (1, 2, 4, 8)
# What TF Serving needs to run an XLA export (tensorflow/serving's
# model_servers/main.cc; on a GPU, --xla_gpu_compilation_enabled=true
# enables XLA for the CPU and the GPU).
XLA_SERVER_FLAG = "--xla_cpu_compilation_enabled=true"
# Beside the versions while an export runs: `.tmp-VERSION-PID` (being
# written) and, during --overwrite, `.old-VERSION-PID` (the version replaced).
_SCRATCH = re.compile(r"\.(tmp|old)-(\d+)-(\d+)")
# Where `serve_command` mounts OUT inside the TF Serving container; the
# base paths of `OUT/models.config` start with it.
CONTAINER_MODELS = "/models"
# A relative OUT made of these characters is shown as "$PWD/OUT".
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./-]+")


def _versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit())


def _alive(pid):
    """Whether process `pid` may still be running (then its folders stay)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OverflowError, ValueError):  # not a pid
        return False
    return True


def clean_leftovers(model_dir):
    """Tidies what killed exports left in `model_dir` (`OUT/NAME`).

    A `.tmp-V-PID` or `.old-V-PID` folder whose process is gone is removed,
    except an `.old-V-PID` while `V` is missing: that export was killed
    between its two renames (`V` → `.old`, `.tmp` → `V`), so the old `V`
    is renamed back. Folders of running exports are left alone.

    Returns:
        The paths removed or restored.
    """
    if not os.path.isdir(model_dir):
        return []
    leftovers = []
    for entry in os.listdir(model_dir):
        match = _SCRATCH.fullmatch(entry)
        if match and not _alive(int(match[3])):
            leftovers.append((match[1] != "old", entry, match[2]))
    done = []
    for _, entry, version in sorted(leftovers):  # .old first: restore
        path = os.path.join(model_dir, entry)
        target = os.path.join(model_dir, version)
        if entry.startswith(".old-") and not os.path.exists(target):
            os.replace(path, target)
            logger.warning(
                "Restored %s: an export with --overwrite was interrupted "
                "after moving it aside to %s.",
                target,
                entry,
            )
        else:
            shutil.rmtree(path, ignore_errors=True)
            logger.warning("Removed %s, left by an interrupted export.", path)
        done.append(path)
    return done


def _check_target(out_dir, name, version, overwrite):
    """The target folder; errors before any work if it cannot be written.
    Leftovers of killed exports to OUT/NAME are tidied first."""
    rundir.check_writable(out_dir, "the export to")
    clean_leftovers(os.path.join(out_dir, name))
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
    """The traced functions of one export: the model, its input format (the
    tokenizer inside) and the decoding settings."""

    def __init__(self, model, input_format, config, keep_special_tokens, xla):
        self.model = model
        self.format = input_format
        self.tokenizer = input_format.tokenizer
        self.config = config
        # Outputs as Hugging Face's batch_decode(skip_special_tokens=True)
        # unless asked to keep them (sentinels, [UNK], ...).
        self.skip_special_tokens = not keep_special_tokens
        self.xla_decode = None
        if xla:
            self.xla_decode = xla_decoding(
                model,
                config,
                eos_id=self.tokenizer.eos_id,
                pad_id=self.tokenizer.pad_id,
            )

    def generate_ids(self, token_ids, padding_mask):
        if self.xla_decode is not None:
            return self.xla_decode(token_ids, padding_mask)
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
        if self.model.kind == kinds.CLASSIFIER:
            return self._classify(inputs)
        if self.model.kind == kinds.MASKED:
            return {"outputs": self._fill_masks(inputs)}
        ids = self.format.prompt_ids(inputs, self.config.max_new_tokens)
        new = self.generate_ids(*self.format.pad_prompts(ids))
        return {
            "outputs": self.tokenizer.detokenize(
                new, skip_special_tokens=self.skip_special_tokens
            )
        }

    def _classify(self, inputs):
        """Texts → the most likely label and every label's probability."""
        features = self.format.features(self.format.prompt_ids(inputs))
        scores = tf.nn.softmax(tf.cast(self.model(features), tf.float32))
        names = tf.constant(self.model.label_names(), tf.string)
        best = tf.argmax(scores, axis=-1, output_type=tf.int32)
        return {"label": tf.gather(names, best), "scores": scores}

    def _fill_masks(self, inputs):
        tok = self.tokenizer
        features = self.format.features(self.format.prompt_ids(inputs))
        token_ids = features["token_ids"]
        best = tf.argmax(self.model(features), axis=-1, output_type=tf.int32)
        filled = tf.where(tf.equal(token_ids, tok.mask_id), best, token_ids)
        keep = tf.cast(features["padding_mask"], tf.bool)
        keep &= tf.not_equal(filled, tok.cls_id)
        keep &= tf.not_equal(filled, tok.sep_id)
        return tok.detokenize(
            tf.ragged.boolean_mask(filled, keep),
            skip_special_tokens=self.skip_special_tokens,
        )

    def score(self, inputs, targets):
        features, labels, weights = self.format.pair_examples(inputs, targets)
        nll, count = self.model.loss_terms(features, labels, weights)
        return {
            "log_likelihood": -nll,
            "num_tokens": tf.cast(count, tf.int32),
        }

    def encode(self, inputs):
        """The backbone's hidden states (the `encode` signature)."""
        features = self.format.features(self.format.prompt_ids(inputs))
        outputs = self.model.backbone(features)
        return {
            "sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
            "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
            "padding_mask": features["padding_mask"],
        }


def _write_warmup(directory, name, texts, batch_sizes=()):
    """The warmup records: `texts[0]` alone, `texts`, then a batch of each
    of `batch_sizes` (cycling through `texts`)."""
    from tensorflow_serving.apis import model_pb2
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(os.path.join(directory, "assets.extra"), exist_ok=True)
    path = os.path.join(directory, "assets.extra", WARMUP_FILE)
    batches = [[texts[0]], list(texts)]
    for size in batch_sizes:
        batch = [texts[i % len(texts)] for i in range(size)]
        if batch not in batches:
            batches.append(batch)
    with tf.io.TFRecordWriter(path) as writer:
        for batch in batches:
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


def serving_image(tf_version=None):
    """The TF Serving Docker image of the TensorFlow release that exports
    (`tensorflow/serving:2.21.0` for TensorFlow 2.21.0): TF Serving
    builds its own TensorFlow and TensorFlow Text ops, so the graph's ops
    match those of the same release."""
    return f"tensorflow/serving:{tf_version or tf.__version__}"


def serve_command(out_dir, image=None, xla=False):
    """The `docker run` command that serves every model under `out_dir`.

    OUT is mounted at `/models` (the paths of `OUT/models.config`); REST on
    port 8501, gRPC on 8500. A relative OUT is written `"$PWD/OUT"` (Docker
    needs an absolute host path), so the command runs from the folder the
    export ran in; any other OUT as its absolute path, shell-quoted.

    Args:
        out_dir: the export's `--out`.
        image: the Docker image. Defaults to `serving_image()`.
        xla: bool. Start TF Serving with `XLA_SERVER_FLAG` (an export made
            with `xla=True` fails its first request without it).

    Returns:
        The command, one line.
    """
    mount = f":{CONTAINER_MODELS}"
    if os.path.isabs(out_dir) or not _PLAIN_PATH.fullmatch(out_dir):
        volume = shlex.quote(os.path.abspath(out_dir) + mount)
    else:
        relative = os.path.normpath(out_dir)
        host = "$PWD" if relative == "." else f"$PWD/{relative}"
        volume = f'"{host}{mount}"'
    return (
        f"docker run --rm -p 8500:8500 -p 8501:8501 -v {volume} "
        f"{image or serving_image()} "
        f"--model_config_file={CONTAINER_MODELS}/models.config"
        + (f" {XLA_SERVER_FLAG}" if xla else "")
    )


def write_models_config(out_dir):
    """`OUT/models.config`: every model folder under OUT, for TF Serving's
    `--model_config_file` (text-format `ModelServerConfig`). Base paths are
    the container's (`/models/NAME`), where `serve_command` mounts OUT."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(os.listdir(out_dir)):
        if _versions(os.path.join(out_dir, name)):
            entry = config.model_config_list.config.add()
            entry.name = name
            entry.base_path = f"{CONTAINER_MODELS}/{name}"
            entry.model_platform = "tensorflow"
    path = os.path.join(out_dir, "models.config")
    with open(path + ".tmp", "w") as f:
        f.write(text_format.MessageToString(config))
    os.replace(path + ".tmp", path)
    return path


def export(
    run_dir,
    out_dir,
    *,
    name=None,
    version=None,
    overwrite=False,
    config=None,
    keep_special_tokens=False,
    checkpoint=None,
    xla=False,
    quantize=None,
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
        keep_special_tokens: bool. `serving_default` keeps the special
            tokens the tokenizer renders (T5's `<extra_id_N>`); by default
            its outputs are Hugging Face's `batch_decode(ids,
            skip_special_tokens=True)`, as `kllm generate` prints.
        checkpoint: `"best"`, `"latest"`, a kept step, or `None`: best if
            the run kept one, else latest (`rundir.select_checkpoint`).
        xla: bool. Compile the decode loop with XLA inside the served graph
            (tokenization stays outside). TF Serving must then run with
            `XLA_SERVER_FLAG`; the batch and the prompt length are padded
            to powers of two, and each new pair compiles on its first
            request (the warmup covers batches of 1, 2, 4 and 8 short
            prompts). Seq2seq and decoder-only models only.
        quantize: `"int8"`: export weight-only int8 weights
            (`keras_llm.quantization`), about a quarter of the float32
            size; `None`: the weights as trained.

    Returns:
        The path of the written version folder.

    Raises:
        FileNotFoundError: no run dir / config / checkpoint / tokenizer.
        FileExistsError: the version exists and `overwrite` is False.
        PermissionError: `out_dir` cannot be written.
        ValueError: `name` is not one plain folder name, `config` asks
            for more new tokens than the model holds, the checkpoint is
            damaged, or `xla` for a model that does not generate.
    """
    config = config or GenerationConfig()
    cfg = rundir.read_config(run_dir)  # a clear error before any work
    if name is None:
        name = check_folder_name(
            os.path.basename(os.path.abspath(run_dir)),
            "With no --name, the model name is the run dir's folder name; it",
        )
    else:
        check_folder_name(name, "--name")
    problem = max_new_tokens_problem(
        config.max_new_tokens,
        cfg.model.kind,
        getattr(cfg.model, "max_sequence_length", None),
    )
    if problem:
        raise ValueError(f"Invalid --max-new-tokens: {problem}.")
    if xla and cfg.model.kind not in (kinds.SEQ2SEQ, kinds.CAUSAL):
        raise ValueError(
            "--xla compiles the decode loop, and a "
            f"{cfg.model.kind} model has none: export it without --xla."
        )
    target, version = _check_target(out_dir, name, version, overwrite)
    model = loading.load(run_dir, checkpoint=checkpoint, quantize=quantize)
    tokenizer, kind = model.tokenizer, model.kind
    if tokenizer is None:
        raise FileNotFoundError(
            f"{os.path.join(run_dir, rundir.TOKENIZER_DIR)} is missing: the "
            "export needs the run's tokenizer."
        )
    if kind in (kinds.SEQ2SEQ, kinds.CAUSAL) and not xla:
        # The decode loop's output layer, run without XLA: a (D, V) copy of
        # a tied table (see TokenEmbedding.untie_weights).
        model.backbone.token_embedding.untie_weights()
    input_format = model.make_format()
    servable = _Servable(model, input_format, config, keep_special_tokens, xla)

    strings = tf.TensorSpec([None], tf.string)
    ids = tf.TensorSpec([None, None], tf.int32)
    # name → (function, input specs); argument names become input keys.
    endpoints = {"serving_default": (servable.serve, [strings])}
    if kind in (kinds.MASKED, kinds.CLASSIFIER):
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
        _write_warmup(
            scratch,
            name,
            WARMUP_TEXTS,
            XLA_WARMUP_BATCH_SIZES if xla else (),
        )
        metadata = {
            "run_dir": os.path.abspath(run_dir),
            "model": name,
            "version": version,
            "kind": kind,
            "labels": model.label_names() if kind == kinds.CLASSIFIER else None,
            "generation": dataclasses.asdict(config),
            "keep_special_tokens": bool(keep_special_tokens),
            "max_input_length": input_format.sequence_length,
            "max_target_length": input_format.target_sequence_length,
            "task_prefix": input_format.task_prefix,
            "signatures": sorted(endpoints),
            "xla": bool(xla),
            "quantize": quantize,
            "server_flags": [XLA_SERVER_FLAG] if xla else [],
            "tensorflow_version": tf.__version__,
            "serving_image": serving_image(),
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

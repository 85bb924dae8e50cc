"""`kllm convert`: checkpoints from other libraries → run directories."""

import click

from keras_llm.cli import examples
from keras_llm.cli import options


def _out(help_text):
    """The required `--out` folder of a conversion."""
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False),
        required=True,
        help=help_text,
    )


_OVERWRITE = click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it exists (only once the new one is complete).",
)


@click.group()
def convert() -> None:
    """Convert checkpoints into keras_llm run directories, and back."""


@convert.command(
    "keras-hub",
    epilog=examples.examples(
        "kllm convert keras-hub path/to/gpt2_preset --out runs/gpt2",
        "kllm convert keras-hub path/to/bert --out runs/bert --overwrite",
        "kllm train runs/gpt2/config.yaml   # then fine-tune it",
    ),
)
@click.argument(
    "preset_dir", metavar="PRESET_DIR", type=click.Path(file_okay=False)
)
@_out("The run directory to create.")
@_OVERWRITE
@options.DEBUG
def keras_hub_preset(
    preset_dir: str, out_dir: str, overwrite: bool, debug: bool
) -> None:
    """Convert a local keras-hub preset PRESET_DIR (T5, GPT-2, BERT, as
    `save_to_preset` writes it) into a run directory. Needs
    keras_llm[keras-hub]."""
    from keras_llm.convert import keras_hub as keras_hub_lib  # TensorFlow

    options.show_library_logs()  # notes and warnings on stderr
    with options.library_errors(debug):
        run_dir = keras_hub_lib.convert_keras_hub(
            preset_dir, out_dir, overwrite=overwrite
        )
    click.echo(
        f"Wrote run directory {run_dir}; fine-tune it with "
        f"`kllm train {run_dir}/config.yaml`."
    )


@convert.command(
    "to-keras-hub",
    epilog=examples.examples(
        "kllm convert to-keras-hub runs/gpt2 --out presets/gpt2",
        "kllm convert to-keras-hub runs/t5_small --out presets/t5 --overwrite",
    ),
)
@click.argument("run_dir", type=click.Path(file_okay=False))
@_out("The keras-hub preset folder to create.")
@_OVERWRITE
@options.DEBUG
def to_keras_hub(
    run_dir: str, out_dir: str, overwrite: bool, debug: bool
) -> None:
    """Write the model and tokenizer of RUN_DIR (T5, GPT-2, BERT) as a
    keras-hub preset that `keras_hub.models.<Task>.from_preset` loads. Needs
    keras_llm[keras-hub]."""
    from keras_llm.convert import keras_hub as keras_hub_lib  # TensorFlow

    options.show_library_logs()  # notes and warnings on stderr
    with options.library_errors(debug):
        out = keras_hub_lib.convert_to_keras_hub(
            run_dir, out_dir, overwrite=overwrite
        )
        task = keras_hub_lib.task_class(run_dir)
    click.echo(
        f"Wrote keras-hub preset {out}; load it with "
        f"`keras_hub.models.{task}.from_preset({out!r})`."
    )


@convert.command(
    "hf",
    epilog=examples.examples(
        "kllm convert hf path/to/t5-small --out runs/t5_small",
        "kllm convert hf path/to/gpt2 --out runs/gpt2 --overwrite",
        "kllm train runs/t5_small/config.yaml   # then fine-tune it",
    ),
)
@click.argument("src_dir", metavar="SRC", type=click.Path(file_okay=False))
@_out("The run directory to create.")
@_OVERWRITE
@options.DEBUG
def hf(src_dir: str, out_dir: str, overwrite: bool, debug: bool) -> None:
    """Convert a Hugging Face checkpoint folder SRC (T5 v1.0/v1.1, GPT-2,
    BERT, Llama, Marian: config.json, weights, tokenizer files) into a run
    directory."""
    from keras_llm.convert import hf as hf_lib  # TensorFlow

    options.show_library_logs()  # notes and warnings on stderr
    with options.library_errors(debug):
        run_dir = hf_lib.convert_hf(src_dir, out_dir, overwrite=overwrite)
    click.echo(
        f"Wrote run directory {run_dir}; fine-tune it with "
        f"`kllm train {run_dir}/config.yaml`."
    )


@convert.command(
    "to-hf",
    epilog=examples.examples(
        "kllm convert to-hf runs/t5_small --out hf/t5_small",
        "kllm convert to-hf runs/gpt2 --out hf/gpt2 --overwrite",
        'python -c "import transformers; '
        "transformers.AutoModelForSeq2SeqLM.from_pretrained('hf/t5_small')\"",
    ),
)
@click.argument("run_dir", type=click.Path(file_okay=False))
@_out("The Hugging Face checkpoint folder to create.")
@_OVERWRITE
@options.DEBUG
def to_hf(run_dir: str, out_dir: str, overwrite: bool, debug: bool) -> None:
    """Write the model of RUN_DIR as a Hugging Face checkpoint folder
    (config.json, model.safetensors, tokenizer.json and the legacy
    tokenizer files) that `from_pretrained` opens."""
    from keras_llm.convert import to_hf as to_hf_lib  # TensorFlow

    options.show_library_logs()  # notes and warnings on stderr
    with options.library_errors(debug):
        out = to_hf_lib.export_hf(run_dir, out_dir, overwrite=overwrite)
    click.echo(
        f"Wrote Hugging Face checkpoint {out}; open it with `from_pretrained`."
    )

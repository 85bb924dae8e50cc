"""`python -m keras_llm.cli` == `kllm`."""

from keras_llm.cli.main import cli

cli(prog_name="kllm")

"""The `kllm` command line: Click wiring over `keras_llm` library calls."""

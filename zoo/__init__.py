"""Model zoo: one YAML experiment config per model size (`kllm zoo list`)."""

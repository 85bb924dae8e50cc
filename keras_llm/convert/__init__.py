"""Weight import from reference implementations (Hugging Face checkpoints)."""

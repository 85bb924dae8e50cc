"""Data: sources → tokenizers → objectives → pipeline (tf.data, static
shapes)."""

"""Model kinds: what data, generation and export need to know of a model.

A task model declares its kind once, through its base class
(`keras_llm.models.Seq2SeqLM`, `CausalLM`, `MaskedLM`); the config schema
states it for each `arch` so that a config is validated without building the
model (no TensorFlow here).
"""

SEQ2SEQ = "seq2seq"  # encoder-decoder: T5, the Transformer
CAUSAL = "causal"  # decoder-only: GPT-2
MASKED = "masked"  # bidirectional encoder with an MLM head: BERT
KINDS = (SEQ2SEQ, CAUSAL, MASKED)

# The training objectives of each kind (`data.objective`).
OBJECTIVES = {
    SEQ2SEQ: ("span_corruption", "seq2seq"),
    CAUSAL: ("causal_lm",),
    MASKED: ("masked_lm",),
}
# Objectives that train on input/target pairs rather than single texts.
PAIR_OBJECTIVES = ("seq2seq",)

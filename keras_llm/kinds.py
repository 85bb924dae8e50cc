"""Model kinds: what data, generation and export need to know of a model.

A task model declares its kind once, through its base class
(`keras_llm.models.Seq2SeqLM`, `CausalLM`, `MaskedLM`, `Classifier`); the
config schema states each `arch`'s kinds so that a config is validated
without building the model (no TensorFlow here).

An arch has one default kind (its config's `kind`) and may train as others:
BERT is a masked LM, or a classifier with `data.objective: classification`.
The objective picks the kind, so a run's kind is `kind_of(objective)`.
"""

SEQ2SEQ = "seq2seq"  # encoder-decoder: T5, the Transformer
CAUSAL = "causal"  # decoder-only: GPT-2
MASKED = "masked"  # bidirectional encoder with an MLM head: BERT
CLASSIFIER = "classifier"  # an encoder with a head over labels: BERT
KINDS = (SEQ2SEQ, CAUSAL, MASKED, CLASSIFIER)

# The training objectives of each kind (`data.objective`).
OBJECTIVES = {
    SEQ2SEQ: ("span_corruption", "seq2seq"),
    CAUSAL: ("causal_lm",),
    MASKED: ("masked_lm",),
    CLASSIFIER: ("classification",),
}
# Objectives that train on input/target pairs only (the first is what
# `objective: auto` picks for pairs); classification's target is a label.
PAIR_OBJECTIVES = ("seq2seq", "classification")
# Objectives that train on single texts or on pairs: causal_lm trains on
# prompt + completion with the loss on the completion (data.loss_on_prompt).
EITHER_OBJECTIVES = ("causal_lm",)


def kind_of(objective):
    """The kind of model an objective trains (`"classification"` →
    `CLASSIFIER`).

    Raises:
        ValueError: an unknown objective.
    """
    for kind, objectives in OBJECTIVES.items():
        if objective in objectives:
            return kind
    raise ValueError(f"Unknown objective {objective!r}.")

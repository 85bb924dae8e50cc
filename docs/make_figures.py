"""Draws the figures of docs/transformer.md into docs/figures/.

    pip install -e ".[docs]"
    python docs/make_figures.py --out docs/figures          # ~3 min, 2 CPUs
    python docs/make_figures.py --out /tmp/figures --toy    # ~1 min

- `sinusoidal_encoding.png`: `SinusoidalPositionEncoding`, positions by
  dimensions.
- `attention_encoder.png`, `attention_cross.png`: the attention weights of
  a tiny T5 trained here (zoo `t5_tiny`, its built-in data) on one held-out
  sentence, per head: the self-attention of one encoder layer and the
  cross-attention of one decoder layer. The layers do not return their
  weights, so they are recomputed from the layers' own query and key
  projections and the relative position bias, and checked against the
  layers' outputs.
- `training_curves.png`: loss and validation loss of that run, from its
  `metrics.jsonl`.

`--toy` trains 20 steps and draws smaller pictures (the test's setting);
`--run-dir` keeps the run (an existing finished run is reused as it is).
"""

import argparse
import json
import os
import tempfile

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# One held-out sentence of the pydoc validation split (zoo t5_tiny), with a
# span replaced by a sentinel, and the target that span corruption makes.
INPUT = "Class creation can be <extra_id_0> using metaclasses."
TARGET = "<extra_id_0> customized heavily"
DPI = 120


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/figures", help="folder")
    parser.add_argument(
        "--toy", action="store_true", help="tiny sizes, a few steps"
    )
    parser.add_argument(
        "--run-dir", help="train the tiny T5 here (default: a temp folder)"
    )
    return parser.parse_args(argv)


def sinusoidal_figure(path, positions, dims):
    """The encoding of positions x dimensions: the sines (even dimensions)
    and the cosines (odd ones) side by side, frequency falling to the
    right."""
    import keras_llm

    layer = keras_llm.layers.SinusoidalPositionEncoding()
    encoding = np.asarray(layer(np.zeros((1, positions, dims)))[0])
    fig, axes = plt.subplots(
        1, 2, figsize=(9, 4.5), sharey=True, layout="constrained"
    )
    for ax, start, name in ((axes[0], 0, r"\sin"), (axes[1], 1, r"\cos")):
        image = ax.imshow(
            encoding[:, start::2],
            aspect="auto",
            cmap="RdBu_r",
            vmin=-1,
            vmax=1,
            interpolation="nearest",
        )
        dim = "2i" if start == 0 else "2i+1"
        ax.set_title(f"dimension ${dim}$: ${name}(p / 10000^{{2i/D}})$")
        ax.set_xlabel("i")
    axes[0].set_ylabel("position p")
    fig.suptitle(f"Sinusoidal position encoding, D = {dims}")
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def train_tiny_t5(run_dir, toy):
    import keras_llm

    overrides = ["train.eval_interval_steps=50", "train.log_interval_steps=10"]
    if toy:
        overrides = [
            "train.train_steps=20",
            "train.eval_interval_steps=10",
            "train.log_interval_steps=5",
            "train.eval_steps=2",
        ]
    cfg = keras_llm.config.load_config("t5_tiny", overrides)
    keras_llm.train(cfg, run_dir)  # seeds itself; resumes a run it finds
    return cfg


def _softmax(scores):
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def _attention_weights(attention, query_input, key_input, bias, mask):
    """Softmax weights `(H, T, S)` of one `MultiHeadAttention` call on
    one example, recomputed from its projections; checked against the
    layer's output."""
    h, k_dim = attention.num_heads, attention.head_dim

    def heads(dense, x):  # (1, T, H*K) -> (1, T, H, K)
        return np.asarray(dense(x)).reshape(1, -1, h, k_dim)

    q = heads(attention.query_dense, query_input)  # (1, T, H, K)
    k = heads(attention.key_dense, key_input)  # (1, S, H, K)
    v = heads(attention.value_dense, key_input)
    scores = np.einsum("bthk,bshk->bhts", q, k)
    if attention.use_attention_scale:
        scores = scores / np.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + np.asarray(bias)
    scores = np.where(mask[:, None], scores, -1e9)  # mask (1, T, S)
    weights = _softmax(scores)
    mixed = np.einsum("bhts,bshk->bthk", weights, v)
    expected = attention(
        query_input,
        None if key_input is query_input else key_input,
        attention_mask=mask,
        position_bias=bias,
    )
    np.testing.assert_allclose(
        np.asarray(attention.output_dense(mixed.reshape(1, -1, h * k_dim))),
        np.asarray(expected),
        rtol=1e-4,
        atol=1e-4,
    )
    return weights[0]


def attention_maps(lm, encoder_layer, decoder_layer):
    """`(input_tokens, target_tokens, encoder (H, S, S), cross (H, T, S))`
    for INPUT and TARGET (teacher-forced)."""
    import tensorflow as tf

    from keras_llm.layers import causal_mask

    backbone = lm.backbone
    fmt = lm.make_format()
    features, labels, _ = fmt.pair_examples(
        tf.constant([INPUT]), tf.constant([TARGET])
    )
    enc_ids = features["encoder_token_ids"]
    enc_mask = np.asarray(features["encoder_padding_mask"]).astype(bool)
    dec_ids = features["decoder_token_ids"]
    key_mask = enc_mask[:, None, :]  # (1, 1, S)

    # Encoder: run the blocks below `encoder_layer`, then recompute its
    # self-attention (pre-norm: it reads the normalized input).
    x = backbone.token_embedding(enc_ids)
    bias = backbone.encoder_relative_bias(x)
    for block in backbone.encoder_blocks[:encoder_layer]:
        x = block(x, padding_mask=enc_mask, position_bias=bias)
    block = backbone.encoder_blocks[encoder_layer]
    assert block.normalize_first, "drawn for pre-norm blocks (T5)"
    h = block.self_attention_norm(x)
    encoder = _attention_weights(block.self_attention, h, h, bias, key_mask)

    # Decoder: the blocks below `decoder_layer`, then the self-attention
    # residual of that block, then its cross-attention.
    memory = lm.encode(enc_ids, features["encoder_padding_mask"])
    y = backbone.token_embedding(dec_ids)
    length = y.shape[1]
    bias = backbone.decoder_relative_bias(y)
    for block in backbone.decoder_blocks[:decoder_layer]:
        y = block(
            y,
            encoder_outputs=memory,
            encoder_padding_mask=enc_mask,
            position_bias=bias,
        )
    block = backbone.decoder_blocks[decoder_layer]
    full = block(
        y,
        encoder_outputs=memory,
        encoder_padding_mask=enc_mask,
        position_bias=bias,
    )
    y = y + block.self_attention(
        block.self_attention_norm(y),
        attention_mask=causal_mask(length, length)[None],
        position_bias=bias,
    )
    h = block.cross_attention_norm(y)
    cross = _attention_weights(block.cross_attention, h, memory, None, key_mask)
    # The reconstruction is the block: finish it and compare.
    y = y + block.cross_attention(h, memory, attention_mask=key_mask)
    y = y + block.feedforward(block.feedforward_norm(y))
    np.testing.assert_allclose(np.asarray(y), np.asarray(full), atol=1e-4)

    names = _piece_names(lm.tokenizer)
    sources = [names(i) for i in np.asarray(enc_ids)[0]]
    targets = [names(i) for i in np.asarray(labels)[0]]
    return sources, targets, encoder, cross


def _piece_names(tokenizer):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(
        model_proto=tokenizer.model
    )
    pieces = processor.get_piece_size()

    def name(i):
        i = int(i)
        if i >= pieces:  # sentinels count down from the top
            return f"<extra_id_{pieces + tokenizer.num_sentinels - 1 - i}>"
        return processor.id_to_piece(i)

    return name


def heads_figure(path, weights, rows, columns, title, row_label, col_label):
    """One heatmap per head, two per row, token labels on the axes."""
    heads = weights.shape[0]
    ncols = min(2, heads)
    nrows = -(-heads // ncols)
    width = 0.2 * len(columns) + 1.6
    height = 0.2 * len(rows) + 1.6
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols + 1.0, height * nrows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for head, ax in enumerate(axes.flat):
        if head >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(weights[head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {head}", fontsize=10)
        ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        if head // ncols == nrows - 1:
            ax.set_xlabel(col_label)
        if head % ncols == 0:
            ax.set_ylabel(row_label)
    fig.suptitle(title)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def curves_figure(path, run_dir, title):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, style in (("loss", "-"), ("val_loss", "o-")):
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, style, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per target token (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    import keras

    import keras_llm

    # Seed before any tokenizer exists (seeding deletes SentencePiece
    # resources made before it).
    keras.utils.set_random_seed(0)
    positions, dims = (32, 32) if args.toy else (128, 128)
    sinusoidal_figure(
        os.path.join(args.out, "sinusoidal_encoding.png"), positions, dims
    )

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run_dir or os.path.join(scratch, "t5_tiny")
        cfg = train_tiny_t5(run_dir, args.toy)
        steps = cfg.train.train_steps
        lm = keras_llm.load(run_dir)
        last = lm.backbone.num_layers - 1
        sources, targets, encoder, cross = attention_maps(lm, 0, last)
        heads_figure(
            os.path.join(args.out, "attention_encoder.png"),
            encoder,
            sources,
            sources,
            f"Encoder self-attention, layer 0 (t5_tiny, {steps} steps)",
            "query",
            "key",
        )
        heads_figure(
            os.path.join(args.out, "attention_cross.png"),
            cross,
            targets,
            sources,
            f"Decoder cross-attention, layer {last} (t5_tiny, {steps} steps)",
            "target token (predicted)",
            "input token",
        )
        curves_figure(
            os.path.join(args.out, "training_curves.png"),
            run_dir,
            f"t5_tiny on pydoc (span corruption), {steps} steps",
        )
    print(f"Wrote 4 figures to {args.out}")


if __name__ == "__main__":
    main()

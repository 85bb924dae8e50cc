"""The compiled steps: one optimizer step over a global batch, and the
validation loss.

Why a custom step (docs/architecture.md, "Known traps"):
`compile(jit_compile=True)` fails under MirroredStrategy and `fit` fails
under MultiWorkerMirroredStrategy. The per-replica forward+backward pass is
XLA-compiled inside `strategy.run`; the all-reduce, the global-norm clipping
and the optimizer update stay outside XLA. Each replica's loss is divided by
the *global* count of target tokens, so 1 and N replicas take the same step.
"""

import keras
import tensorflow as tf


def _loss_sum(model, features, labels, weights, training):
    nll, count = model.loss_terms(features, labels, weights, training)
    return tf.reduce_sum(nll), tf.reduce_sum(count)


def make_step_fn(cfg, strategy, model, optimizer, num_workers, accumulation):
    """`step_fn(iterator) -> (loss, tokens)`: one optimizer step over the
    next batch of this worker, split across its replicas, each replica's
    share in `accumulation` micro-batches."""
    variables = model.trainable_variables
    num_local = strategy.num_replicas_in_sync // num_workers
    clip = cfg.train.gradient_clip_norm
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    pin_devices = isinstance(strategy, tf.distribute.MirroredStrategy)

    @tf.function(jit_compile=cfg.runtime.jit_compile)
    def micro_gradients(features, labels, weights, count):
        """Forward+backward of one micro-batch; the loss normalized by the
        global token count."""
        with tf.GradientTape() as tape:
            loss_sum, _ = _loss_sum(
                model, features, labels, weights, training=True
            )
            loss = loss_sum / count
            objective = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(objective, variables)
        # Weights the loss does not reach (BERT's pooler under masked LM)
        # get no gradient: they stay put. Dense, embeddings included (their
        # gradient is IndexedSlices): one all-reduce and update path.
        grads = [
            tf.zeros_like(v)
            if g is None
            else tf.cast(tf.convert_to_tensor(g), v.dtype)
            for g, v in zip(grads, variables)
        ]
        return grads, loss

    def replica_gradients(features, labels, weights, count):
        """One replica's share, micro-batch after micro-batch: a
        sequential loop around the compiled micro-batch (unrolled inside
        one XLA program, the micro-batches' temporaries add up)."""
        if accumulation == 1:
            return micro_gradients(features, labels, weights, count)
        size = tf.shape(labels)[0] // accumulation

        def body(i, grads, total):
            part = slice(i * size, (i + 1) * size)
            step_grads, loss = micro_gradients(
                {k: v[part] for k, v in features.items()},
                labels[part],
                weights[part],
                count,
            )
            grads = [g + s for g, s in zip(grads, step_grads)]
            return i + 1, grads, total + loss

        _, grads, total = tf.while_loop(
            lambda i, *_: i < accumulation,
            body,
            (0, [tf.zeros_like(v) for v in variables], tf.constant(0.0)),
            parallel_iterations=1,
        )
        return grads, total

    @tf.function
    def step_fn(iterator):
        features, labels, weights = next(iterator)

        def share(ctx):
            index = ctx.replica_id_in_sync_group % num_local
            size = tf.shape(labels)[0] // num_local
            part = slice(index * size, (index + 1) * size)
            return (
                {k: v[part] for k, v in features.items()},
                labels[part],
                weights[part],
            )

        per_replica = strategy.experimental_distribute_values_from_function(
            share
        )
        local_count = strategy.run(
            lambda features, labels, weights: tf.reduce_sum(weights),
            args=per_replica,
        )
        count = tf.maximum(strategy.reduce("SUM", local_count, axis=None), 1.0)

        def on_replica_device(*args):
            # Pin the XLA call to the replica's device: left to the placer,
            # replica 1's cluster can land on device 0 ("Trying to access
            # resource ... located in device CPU:1 from device CPU:0").
            if not pin_devices:  # multi-worker: placed by the strategy
                return replica_gradients(*args)
            devices = tf.distribute.get_replica_context().devices
            with tf.device(tf.nest.flatten(devices)[0]):
                return replica_gradients(*args)

        grads, loss = strategy.run(
            on_replica_device, args=(*per_replica, count)
        )
        grads = [strategy.reduce("SUM", g, axis=None) for g in grads]
        loss = strategy.reduce("SUM", loss, axis=None)
        if clip is not None:
            if scaled:
                grads = [g / optimizer.dynamic_scale for g in grads]
                grads, _ = tf.clip_by_global_norm(grads, clip)
                grads = [g * optimizer.dynamic_scale for g in grads]
            else:
                grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply(grads, variables)
        tokens = tf.add_n(
            [
                tf.reduce_sum(tf.cast(v, tf.float32))
                for k, v in features.items()
                if "padding" in k
            ]
        )
        return loss, tokens

    return step_fn


def make_evaluate(cfg, model):
    """`evaluate(dataset) -> mean validation loss per target token` (or
    `None` for an empty split), over at most `train.eval_steps` batches."""

    @tf.function(jit_compile=cfg.runtime.jit_compile)
    def eval_step(features, labels, weights):
        return _loss_sum(model, features, labels, weights, training=False)

    def evaluate(dataset):
        total = count = 0.0
        for features, labels, weights in dataset.take(cfg.train.eval_steps):
            loss_sum, weight_sum = eval_step(features, labels, weights)
            total += float(loss_sum)
            count += float(weight_sum)
        return total / count if count else None

    return evaluate

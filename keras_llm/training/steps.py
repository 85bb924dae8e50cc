"""The compiled steps: one optimizer step over a global batch, and the
validation loss.

Why a custom step (docs/architecture.md, "Known traps"):
`compile(jit_compile=True)` fails under MirroredStrategy and `fit` fails
under MultiWorkerMirroredStrategy. The per-replica forward+backward pass is
XLA-compiled inside `strategy.run`; the all-reduce, the global-norm clipping
and the optimizer update stay outside XLA. Each replica's loss is divided by
the *global* count of target tokens, so 1 and N replicas take the same step.

Nothing in the step makes the host wait for the devices: the gradients and
the loss go through one packed all-reduce whose results stay on the
replicas' devices, and the loss comes back as a device tensor that the loop
reads only at log, validation and checkpoint steps. On devices that run
asynchronously (GPUs), the host can then take the next batch from the
checkpointed iterator and dispatch each replica's share while the devices
still compute (docs/architecture.md, "Exact resume").
"""

import keras
import tensorflow as tf

# The all-reduce concatenates the gradients into packs of about this size:
# one collective per pack instead of one per tensor, and no second copy of
# a whole large model's gradients.
_BYTES_PER_PACK = 32 * 2**20


def _loss_sum(model, features, labels, weights, training):
    nll, count = model.loss_terms(features, labels, weights, training)
    return tf.reduce_sum(nll), tf.reduce_sum(count)


def make_step_fn(cfg, strategy, model, optimizer, num_workers, accumulation):
    """`step_fn(iterator) -> (loss, tokens)`: one optimizer step over the
    next batch of this worker, split across its replicas, each replica's
    share in `accumulation` micro-batches. `loss` is a device tensor (read
    it back only when needed: reading waits for the step); `tokens`, the
    input tokens of the worker's batch, is on the host."""
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

    options = tf.distribute.experimental.CommunicationOptions(
        bytes_per_pack=_BYTES_PER_PACK
    )
    # Where the iterator's batches are: split there, so that each replica
    # receives its own share only.
    host = tf.DeviceSpec.from_string(
        tf.nest.flatten(strategy.extended.worker_devices)[0]
    ).replace(device_type="CPU", device_index=0)

    def on_replica_device(fn):
        def pinned(*args):
            # Pin the call to the replica's device: left to the placer,
            # replica 1's XLA cluster can land on device 0 ("Trying to
            # access resource ... located in device CPU:1 from device
            # CPU:0").
            if not pin_devices:  # multi-worker: placed by the strategy
                return fn(*args)
            devices = tf.distribute.get_replica_context().devices
            with tf.device(tf.nest.flatten(devices)[0]):
                return fn(*args)

        return pinned

    def receive(features, labels, weights):
        """The replica's share, copied from the host once, and its count
        of target tokens."""
        share = tf.nest.map_structure(tf.identity, (features, labels, weights))
        return share, tf.reduce_sum(share[2])

    def replica_step(features, labels, weights, count):
        count = tf.maximum(count, 1.0)  # a batch of padding only
        return replica_gradients(features, labels, weights, count)

    def reduce_sum(values):
        """The SUM over replicas of each value, left on the replicas'
        devices: one batched all-reduce (values and destinations on the
        same devices), not one per value through the host."""
        return strategy.extended.batch_reduce_to(
            tf.distribute.ReduceOp.SUM,
            [(value, value) for value in values],
            options=options,
        )

    @tf.function
    def step_fn(iterator):
        with tf.device(host):
            features, labels, weights = next(iterator)

        def split(ctx):
            index = ctx.replica_id_in_sync_group % num_local
            size = tf.shape(labels)[0] // num_local
            part = slice(index * size, (index + 1) * size)
            with tf.device(host):
                return (
                    {k: v[part] for k, v in features.items()},
                    labels[part],
                    weights[part],
                )

        share, local_count = strategy.run(
            on_replica_device(receive),
            args=strategy.experimental_distribute_values_from_function(split),
        )
        (count,) = reduce_sum([local_count])
        grads, loss = strategy.run(
            on_replica_device(replica_step), args=(*share, count)
        )
        *grads, loss = reduce_sum([*grads, loss])
        if clip is not None:
            if scaled:
                grads = [g / optimizer.dynamic_scale for g in grads]
                grads, _ = tf.clip_by_global_norm(grads, clip)
                grads = [g * optimizer.dynamic_scale for g in grads]
            else:
                grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply(grads, variables)
        with tf.device(host):
            tokens = tf.add_n(
                [
                    tf.reduce_sum(tf.cast(v, tf.float32))
                    for k, v in features.items()
                    if "padding" in k
                ]
            )
        # The first replica's copy: reading it back waits for this step,
        # so the loop reads only at log, validation and checkpoint steps.
        return strategy.experimental_local_results(loss)[0], tokens

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

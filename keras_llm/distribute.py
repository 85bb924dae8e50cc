"""Distribution strategies from `runtime.strategy`, with a CPU fallback."""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)


def split_cpu(num_devices):
    """Splits the host CPU into `num_devices` logical devices.

    Must run before TensorFlow initializes its devices; afterwards it checks
    that the split already in place matches.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing < num_devices:
            raise ValueError(
                f"runtime.num_cpu_devices: TensorFlow already started with "
                f"{existing} CPU device(s); {num_devices} must be set before "
                "any TensorFlow op runs (start a fresh process)."
            ) from None


def worker_info():
    """`(num_workers, worker_index, is_chief)` from TF_CONFIG."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {})
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in cluster:
        global_index = 0 if kind == "chief" else index + 1
    else:
        global_index = index
    return max(workers, 1), global_index, global_index == 0


def make_strategy(runtime):
    """A `tf.distribute.Strategy` for a `RuntimeConfig`.

    `auto`: mirrored over the local GPUs if there are several, one device
    otherwise (or mirrored over `num_cpu_devices` logical CPUs). Without
    GPUs, `mirrored` falls back to the CPU devices with a warning.
    """
    if runtime.num_cpu_devices:
        split_cpu(runtime.num_cpu_devices)
    kind = runtime.strategy
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "runtime.strategy: 'multi_worker' needs the TF_CONFIG "
                "environment variable (cluster and task) on every worker."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as error:
            raise ValueError(
                f"runtime.strategy: 'tpu' found no TPU ({error})."
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if runtime.num_cpu_devices:
        cpus = cpus[: runtime.num_cpu_devices]
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy((gpus or cpus)[0])
    if kind == "mirrored":
        if not gpus and len(cpus) == 1:
            logger.warning(
                "runtime.strategy 'mirrored': no GPU found; training on the "
                "CPU (set runtime.num_cpu_devices to mirror over logical "
                "CPU devices)."
            )
        return tf.distribute.MirroredStrategy(gpus or cpus)
    # auto
    if len(gpus) > 1 or (
        not gpus and len(cpus) > 1 and runtime.num_cpu_devices
    ):
        return tf.distribute.MirroredStrategy(gpus or cpus)
    return tf.distribute.OneDeviceStrategy((gpus or cpus)[0])


# Of the memory the host reports available, what training may plan to use.
# Not more: TensorFlow's CPU allocator (BFC over oneDNN) refuses one block
# above about half the RAM (12 GB of 23.5 failed, 8 GB passed), and XLA
# takes a step's temporaries as one block.
_HOST_FRACTION = 0.4


def device_budget(strategy, num_workers=1):
    """`(bytes, words)`: memory one replica may use: the GPU's memory, or
    the host's available memory shared by its CPU replicas. `None` bytes
    when unknown."""
    device = tf.nest.flatten(strategy.extended.worker_devices)[0]
    if "GPU" in device.upper():
        from tensorflow.python.client import device_lib

        for details in device_lib.list_local_devices():
            if details.device_type == "GPU":
                return int(details.memory_limit * 0.9), "GPU memory"
        return None, "a GPU of unknown memory"
    available = _host_available_bytes()
    if available is None:
        return None, "the host"
    local_replicas = max(strategy.num_replicas_in_sync // num_workers, 1)
    words = "host memory available"
    if local_replicas > 1:
        words += f", shared by {local_replicas} CPU replicas"
    return int(available * _HOST_FRACTION / local_replicas), words


def _host_available_bytes():
    override = os.environ.get("KERAS_LLM_HOST_MEMORY_BYTES")
    if override:  # tests and containers whose /proc lies
        return int(override)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None

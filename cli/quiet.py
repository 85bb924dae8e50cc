"""TensorFlow's start-up chatter kept off stderr (`kllm --verbose` shows it).

TensorFlow's C++ side logs through absl, and a plain `import tensorflow`
prints 6 to 8 lines before any output of ours: "All log messages before
absl::InitializeLog() is called are written to STDERR", the oneDNN notice,
"Could not find cuda drivers" (or cuDNN/cuBLAS factory registrations on
GPU machines), then "failed call to cuInit" and similar at the first device
use. `TF_CPP_MIN_LOG_LEVEL=3` hides the later ones but not those written
while the shared libraries load, before absl reads any setting. So, unless
the user set `TF_CPP_MIN_LOG_LEVEL` (then nothing here changes):

- `TF_CPP_MIN_LOG_LEVEL=3` for the log lines after start-up;
- the import of `tensorflow` runs with file descriptor 2 sent to a
  temporary file, and every line of it that is not an absl log line
  (`I0000 ...`, `W0000 ...`, `E0000 ...`) is written back to stderr (Python
  warnings, anything else).

Nothing else changes: `TF_ENABLE_ONEDNN_OPTS` (numerics) and
`CUDA_VISIBLE_DEVICES` (devices) are left alone.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# absl's line prefix: severity, MMDD, time, thread id, file:line].
NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is "
    rb"called are written to STDERR"
    rb"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] .*)\r?$"
)


def quiet_tensorflow() -> bool:
    """Hides TensorFlow's log lines in this process, unless the user set
    `TF_CPP_MIN_LOG_LEVEL` or TensorFlow is imported already.

    Returns:
        Whether anything was changed.
    """
    if LEVEL_VARIABLE in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ[LEVEL_VARIABLE] = "3"
    if not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
    return True


def filter_noise(data: bytes) -> bytes:
    """`data` less its absl log lines."""
    lines = data.splitlines(keepends=True)
    return b"".join(line for line in lines if not NOISE.match(line))


@contextlib.contextmanager
def _filtered_stderr():
    """File descriptor 2 goes to a temporary file; what is not noise is
    written back when the block ends."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = filter_noise(capture.read())
            if kept:
                os.write(2, kept)


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's `exec_module` with stderr filtered."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # anything else: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            with _filtered_stderr():
                self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual, once, with a `_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec

"""Lets a job module be called as its main function.

`keras_llm.train(cfg, run_dir)` and `keras_llm.export(run_dir, out_dir)`
are the library's one-call entry points, while `from keras_llm import
train` still imports the module (as the CLI and tests do).
"""

import sys
import types


def make_callable(module_name, function):
    """Makes `sys.modules[module_name](...)` call `function(...)`."""

    class _CallableModule(types.ModuleType):
        __doc__ = sys.modules[module_name].__doc__

        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule

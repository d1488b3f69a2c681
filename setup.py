"""Packaging for lpm-npc: one package, the `lpm-npc` console script, and the Triton kernels
installed as the subpackage `lpm_npc.kernels` (never as a top-level `kernels`)."""

from setuptools import find_packages, setup

packages = find_packages(include=["lpm_npc", "lpm_npc.*"])
packages.append("lpm_npc.kernels")

setup(
    name="lpm-npc",
    version="0.1.0",
    description="Online LPM: real-time speaking and listening game characters over gRPC",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"lpm_npc.kernels": "kernels"},
    include_package_data=True,
    package_data={"lpm_npc": ["_proto/*.py", "py.typed"]},
    install_requires=[
        "torch>=2.4,<3",
        "numpy>=1.24",
        "scipy>=1.10",
        "av>=12",
        "soundfile>=0.12",
        "msgpack>=1.0",  # trace files (lpm_npc/trace)
        "safetensors>=0.4",
        "grpcio>=1.85.1",  # the committed stubs (lpm_npc/_proto) need at least their generator version
        "grpcio-health-checking>=1.60",
        "grpcio-reflection>=1.60",
        "protobuf>=7.35.1",  # likewise: the gencode checks the runtime version
        "pillow>=10",
        "tqdm>=4.60",
        "prometheus_client>=0.17",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "ruff>=0.5",
            "grpcio-tools>=1.85.1",
            "hypothesis>=6",
            "triton>=3.0",
            "cryptography>=41",
        ],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.5"],
        "gpu": ["triton>=3.0", "onnxruntime-gpu>=1.17"],
    },
    entry_points={"console_scripts": ["lpm-npc=lpm_npc.cli:main"]},
)

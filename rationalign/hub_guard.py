"""No hub lookup on model load: bitsandbytes' CPU backend must not fetch a kernel from the HF hub.

On a CPU with AVX512-BF16, importing `bitsandbytes.backends.cpu.ops` calls
`kernels.get_kernel("kernels-community/quantization-bitsandbytes")`: a request to huggingface.co, and a
"Failed to load CPU gemm_4bit_forward" warning offline, on every run that imports peft (every LoRA
load). The `kernels` package cannot be kept out of the install: transformers 5.25 requires it
(transformers <= 5.24 had it as an extra), and neither it nor bitsandbytes has a switch for this.
So while that one module executes, `kernels` is hidden: the import fails, and bitsandbytes uses its
own CPU code, exactly as it does where `kernels` is not installed. Nothing else is affected (the hub
kernels transformers can use stay opt-in through `use_kernels=True`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys

BNB_CPU_OPS = "bitsandbytes.backends.cpu.ops"


class _HideKernelsFromBitsandbytes(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != BNB_CPU_OPS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            absent = object()
            saved = sys.modules.get("kernels", absent)
            sys.modules["kernels"] = None  # `from kernels import get_kernel` raises ImportError
            quiet = logging.getLogger(name)
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # its warning about the missing hub kernel
            try:
                run(module)
            finally:
                quiet.setLevel(level)
                if saved is absent:
                    sys.modules.pop("kernels", None)
                else:
                    sys.modules["kernels"] = saved

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Put the guard first on sys.meta_path (idempotent); effective for a later bitsandbytes import."""
    if not any(isinstance(f, _HideKernelsFromBitsandbytes) for f in sys.meta_path):
        sys.meta_path.insert(0, _HideKernelsFromBitsandbytes())

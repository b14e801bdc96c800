"""Issue 27, item 6: loading a LoRA contacts no host. Every socket is blocked in a fresh interpreter,
which also claims AVX512-BF16 for bitsandbytes (the CPU feature under which its backend fetched a
kernel from the HF hub at import: `kernels.get_kernel`), then a LoRA adapter is saved and loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO

SCRIPT = r'''
import importlib.abc, importlib.machinery, json, socket, sys

class ClaimAVX512BF16(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "bitsandbytes.functional":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            module.has_avx512bf16 = lambda: True
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, ClaimAVX512BF16())
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2])[:120])
    raise OSError("network blocked by the test")
socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = refuse
socket.socket.connect_ex = refuse

from rationalign.models import add_lora, load_base_model, load_trained, save_model
out = sys.argv[1]
model, tok = load_base_model({"source": "tiny"})
save_model(add_lora(model, {"lora": {"r": 4, "alpha": 8}}), tok, out)
load_trained({"source": "tiny"}, out)
print(json.dumps({"attempts": attempts, "bnb_cpu_ops": "bitsandbytes.backends.cpu.ops" in sys.modules}))
'''


def test_lora_load_opens_no_socket(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "adapter")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["bnb_cpu_ops"]  # bitsandbytes' CPU backend really was imported, on the AVX512-BF16 path
    assert got["attempts"] == []
    assert "Failed to load CPU gemm_4bit_forward" not in r.stderr

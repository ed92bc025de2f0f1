"""The malloc settings of training processes (blockident.heap), each in a fresh interpreter:
they hold for the whole process."""

import json
import platform
import subprocess
import sys

import pytest

PROGRAM = """
import json, resource, sys
import torch
from blockident.heap import retain_freed_memory
took = retain_freed_memory() if sys.argv[1] == "retain" else None
faults = []
for _ in range(24):  # a 48 MiB activation made, used and freed, as in every training step
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(12288, 1024).fill_(1.0)
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"took": took, "faults": faults}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")
def test_retained_memory_is_not_faulted_in_again():
    pages = 12288 * 1024 * 4 // 4096
    default, retained = _faults("default"), _faults("retain")
    assert retained["took"] is True
    # with malloc's defaults every allocation maps fresh pages; retained, the heap grows for the
    # first few (a freed block is slightly smaller than an aligned request), then is reused
    assert min(default["faults"][-8:]) > pages // 2
    assert max(retained["faults"][-8:]) < pages // 20

"""Every module of the package imports first, in a fresh interpreter: no import cycles.

A cycle only shows when its module is the first of the package to be imported (the
notebook and CLI once hid ``jaxmlp.evaluate``'s because they imported ``jaxmlp.train``
first). One child process per module, forked from a parent that has loaded the
third-party libraries but nothing of jaxmlp, so each module really is imported first.
"""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]

SCRIPT = r"""
import os, pathlib, sys, traceback, warnings
warnings.simplefilter("ignore")
import ase, ase.io, e3nn_jax, flax.linen, jax, jax_md, matplotlib, numpy, optax, scipy  # noqa
assert not any(m == "jaxmlp" or m.startswith("jaxmlp.") for m in sys.modules)
root = pathlib.Path(sys.argv[1])
modules = sys.argv[2:] or sorted(
    ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    for p in (root / "jaxmlp").rglob("*.py")
)
failed = []
for name in modules:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print(len(modules), "modules;", "failed:", failed)
sys.exit(1 if failed else 0)
"""


def import_each_first(*modules: str) -> int:
    """Import each module first in a fresh child; the number of modules tried."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT), *modules],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-4000:]
    return int(out.stdout.split()[0])


def test_layer_boundaries_import_first():
    """The fast subset's share: the modules where a cycle once hid (evaluate <->
    training) and the layers above them (workflows, CLI)."""
    modules = (
        "jaxmlp.evaluate",
        "jaxmlp.metrics",
        "jaxmlp.train.loss",
        "jaxmlp.train.loop",
        "jaxmlp.workflows",
        "jaxmlp.cli.demo",
    )
    assert import_each_first(*modules) == len(modules)


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter():
    assert import_each_first() > 40  # the walk found the package

"""Workflows: end-to-end applications built from the library (data -> training ->
evaluation -> MD -> report). They sit above every other module and below only the
command line (:mod:`jaxmlp.cli`), whose sub-commands are thin shims over them;
benchmarks and notebooks import workflows from here, never from the CLI."""

from jaxmlp.workflows.demo import DEMO_MODEL, DEMO_TRAIN, DemoResult, run_demo

__all__ = ["DEMO_MODEL", "DEMO_TRAIN", "DemoResult", "run_demo"]

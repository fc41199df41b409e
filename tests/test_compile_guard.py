"""The warning before XLA's CPU compiler exhausts the process's memory mappings."""

import sys
import warnings

import jax
import jax.numpy as jnp
import pytest

from jaxmlp import compile_guard


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_each_compiled_program_holds_mappings_and_the_guard_warns_once(monkeypatch):
    used, limit = compile_guard.mapping_usage()
    assert 0 < used < limit

    def fresh_program(x):  # a new function: a new compilation
        return jnp.sin(x) * jnp.cos(x) + jnp.tanh(x)

    jax.block_until_ready(jax.jit(fresh_program)(jnp.ones(7)))
    assert compile_guard.mapping_usage()[0] > used

    monkeypatch.setattr(compile_guard, "_warned", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile_guard.check_mapping_headroom("roomy", fraction=1.0)  # silent
    with pytest.warns(
        ResourceWarning, match=r"tight: this process holds \d+ of its \d+"
    ):
        compile_guard.check_mapping_headroom("tight", fraction=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile_guard.check_mapping_headroom("tight again", fraction=0.0)  # only once

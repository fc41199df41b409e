"""Molecular dynamics on jax-md: energy functions, neighbor lists, integrators, runner."""

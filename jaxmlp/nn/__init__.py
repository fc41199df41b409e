"""Neural-network building blocks and architectures (flax linen + e3nn-jax)."""

"""Training: losses, datasets, the pure optax step, the loop with checkpoints, and
data parallelism over a device mesh."""

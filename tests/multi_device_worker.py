"""Run in a subprocess by test_multi_device.py with 4 fake CPU devices (XLA_FLAGS set
before jax is imported): trains the same config on 1, 2 and 4 devices and resumes a
4-device checkpoint on 1 device (and a 1-device one on 4); prints JSON."""

import dataclasses
import json
import sys

import jax
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_train import tiny_config, write_dataset  # noqa: E402

from jaxmlp.train import fit  # noqa: E402


def leaves(model):
    return [np.asarray(p, np.float64) for p in jax.tree.leaves(model.params)]


def main(directory: str, dtype: str) -> None:
    assert jax.device_count() == 4, jax.devices()
    data = write_dataset(directory, n=14)

    def config(name, devices, epochs=3):
        c = tiny_config(
            data,
            f"{directory}/{dtype}-{name}",
            dtype=dtype,
            epochs=epochs,
            batch_size=4,
            devices=devices,
            ema_decay=0.0,
        )
        return c

    runs = {n: fit(config(f"d{n}", n)) for n in (1, 2, 4)}
    out = {"devices": jax.device_count(), "buckets": {}}
    base = runs[1]
    for n, r in runs.items():
        out["buckets"][n] = r.metrics["buckets"]
        rel = [
            float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
            for a, b in zip(leaves(r.model), leaves(base.model))
        ]
        loss = [h["train_loss"] for h in r.history]
        out[f"params_rel_{n}"] = max(rel)
        out[f"loss_rel_{n}"] = max(
            abs(a - b) / abs(b)
            for a, b in zip(loss, [h["train_loss"] for h in base.history])
        )
        out[f"compiles_{n}"] = r.metrics["compiles_train"]
    # checkpoint written on 4 devices, resumed on 1 (and the reverse) vs straight runs
    for first, second in ((4, 1), (1, 4)):

        def interrupt(epoch, record):
            if epoch == 2:
                raise KeyboardInterrupt  # the checkpoint of epoch 2 is on disk

        c = config(f"resume{first}{second}", first)
        try:
            fit(c, callback=interrupt)
        except KeyboardInterrupt:
            pass
        c = dataclasses.replace(c, train=dataclasses.replace(c.train, devices=second))
        resumed = fit(c, resume=True)
        out[f"resume_{first}_to_{second}_rel"] = max(
            float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
            for a, b in zip(leaves(resumed.model), leaves(base.model))
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

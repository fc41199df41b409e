"""Run in a subprocess by test_multi_device.py with 4 fake CPU devices (XLA_FLAGS set
before jax is imported): trains the same config on 1, 2 and 4 devices and resumes a
4-device checkpoint on 1 device (and a 1-device one on 4); prints JSON."""

import dataclasses
import json
import sys

import jax
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from ase.build import bulk  # noqa: E402
from test_train import tiny_config, write_dataset  # noqa: E402

import jaxmlp  # noqa: E402
from jaxmlp.evaluate import evaluate  # noqa: E402
from jaxmlp.md import Ensemble, MDOptions  # noqa: E402
from jaxmlp.md.replicas import run_replicas  # noqa: E402
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

    from jaxmlp.sharding import data_mesh, shard_leading

    laid = shard_leading(np.zeros((8, 3)), data_mesh(4))  # the layout training uses
    assert {s.data.shape for s in laid.addressable_shards} == {(2, 3)}
    assert len({s.device for s in laid.addressable_shards}) == 4
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
    # batched inference: evaluate() split over 4 devices vs 1
    import ase.io

    from jaxmlp.data.dataset import read_structures

    structures = read_structures(data)
    one = evaluate(
        base.model,
        structures,
        batch_size=3,
        dtype=dtype,
        devices=1,
        return_predictions=True,
    )
    four = evaluate(
        base.model,
        structures,
        batch_size=3,
        dtype=dtype,
        devices=4,
        return_predictions=True,
    )
    out["evaluate_forces_max_abs"] = float(
        np.max(np.abs(one[1]["forces_pred"] - four[1]["forces_pred"]))
    )
    out["evaluate_mae_rel"] = abs(
        one[0]["forces_mae_meV_per_A"] / four[0]["forces_mae_meV_per_A"] - 1
    )
    # replicas at four temperatures on 4 devices vs 1 (a committee: spreads too)
    model = jaxmlp.build_model(
        "schnet",
        ("Cu",),
        3.6,
        seed=2,
        members=2,
        features=8,
        num_interactions=2,
        num_rbf=8,
    )
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=0)
    trajectories = {}
    for n in (1, 4):
        result = run_replicas(
            model,
            atoms,
            Ensemble("nvt-langevin", timestep=2.0, temperature=300.0),
            n_replicas=4,
            temperatures=[300.0, 500.0, 700.0, 900.0],
            steps=20,
            out_dir=f"{directory}/{dtype}-replicas{n}",
            options=MDOptions(
                dtype=dtype, stride=10, frames_per_chunk=2, plots=False, devices=n
            ),
        )
        assert result.message == "completed", result.message
        trajectories[n] = [ase.io.read(t, ":") for t in result.trajectories]
    out["replica_positions_max_abs"] = max(
        float(np.max(np.abs(a.positions - b.positions)))
        for ra, rb in zip(trajectories[1], trajectories[4])
        for a, b in zip(ra, rb)
    )
    out["replica_spread_max_abs"] = max(
        float(np.max(np.abs(a.arrays["forces_std"] - b.arrays["forces_std"])))
        for ra, rb in zip(trajectories[1], trajectories[4])
        for a, b in zip(ra, rb)
    )
    out["replica_moved"] = float(
        np.max(
            np.abs(trajectories[1][3][-1].positions - trajectories[1][3][0].positions)
        )
    )
    out["replica_frames"] = [len(r) for r in trajectories[4]]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Both ways of mapping a committee's members in MD (``member_map``: ``"vmap"``, one
batched program; ``"sequential"``, one member at a time) and the frame's energy, stress
and spread from one gradient per member.

Judge: fresh float64 :class:`JaxMLPCalculator` evaluations of every recorded frame,
never the MD code: the committee's calculator at the frame's positions and cell (MD
frame) for energy, mean forces and stress; every member taken out as a single model
with its own calculator, whose forces must average to the recorded force; and the
committee's calculator in the input frame (the frame rotated back) for the recorded
per-component spread. Cells are rotated and triclinic, so the two frames differ.
"""

import ase
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from test_md_committee import cu_cluster, rotated_cu

import jaxmlp
from jaxmlp.calculator import full_3x3_to_voigt
from jaxmlp.md import Ensemble, Programs, advance, guards_for, make_simulation, start
from jaxmlp.model import default_member_map, make_apply_fn, map_members, member_axes
from jaxmlp.precision import scope

SCHNET = dict(features=8, num_interactions=2, num_rbf=8)
R_MAX = 3.6


def committee(members=3, seed=0, shallow=False):
    return jaxmlp.build_model(
        "schnet",
        ("Cu",),
        R_MAX,
        seed=seed,
        members=members,
        shallow=shallow,
        **SCHNET,
    )


def run_frames(model, atoms, dynamics, member_map, n_frames=4, stride=5):
    """Every frame of a float64 run (host numpy) and its simulation."""
    sim = make_simulation(
        model, atoms, dynamics, dtype="float64", member_map=member_map
    )
    assert member_map is None or sim.member_map == member_map
    programs = Programs()
    progress = start(sim, programs, model.params, seed=1)
    got = []
    advance(
        sim,
        programs,
        model.params,
        progress,
        n_frames,
        stride=stride,
        frames_per_chunk=2,
        kT=sim.kT,
        guards=guards_for(sim),
        on_frames=lambda frames, first: got.append(frames),
    )
    frames = jax.tree.map(lambda *x: np.concatenate(x), *got)
    assert frames.energy.shape == (n_frames,)
    return sim, frames


def check_frames(model, sim, frames):
    """Recorded energy, forces, stress and spread against fresh calculators."""
    periodic = sim.system.periodic
    calc = jaxmlp.JaxMLPCalculator(model, dtype="float64")
    members = [
        jaxmlp.JaxMLPCalculator(model.member(k), dtype="float64")
        for k in range(model.members)
    ]
    to_input = np.asarray(sim.system.rotation).T  # md_frame = input_frame @ rotation
    largest = 0.0
    for i in range(frames.energy.shape[0]):
        positions = np.asarray(frames.positions[i], np.float64)  # MD frame, Å
        cell = np.asarray(frames.cell[i], np.float64) if periodic else None
        md = ase.Atoms(
            numbers=sim.system.numbers,
            positions=positions,
            cell=cell,
            pbc=periodic,
        )
        md.calc = calc
        np.testing.assert_allclose(
            frames.energy[i], md.get_potential_energy(), rtol=1e-10, err_msg=i
        )
        np.testing.assert_allclose(
            frames.forces[i], md.get_forces(), rtol=1e-7, atol=1e-9, err_msg=i
        )
        member_forces = []
        for member in members:
            one = md.copy()
            one.calc = member
            member_forces.append(one.get_forces())
        np.testing.assert_allclose(
            frames.forces[i], np.mean(member_forces, axis=0), rtol=1e-7, atol=1e-9
        )
        if periodic:
            np.testing.assert_allclose(
                full_3x3_to_voigt(np.asarray(frames.stress[i])),
                md.get_stress(),
                rtol=1e-7,
                atol=1e-10,
                err_msg=i,
            )
        else:
            np.testing.assert_array_equal(frames.stress[i], 0.0)
        # the spread is recorded in the input frame: rotate the frame back
        inp = md.copy()
        inp.positions = positions @ to_input
        if periodic:
            inp.set_cell(cell @ to_input)
        inp.calc = calc
        inp.get_potential_energy()
        np.testing.assert_allclose(
            frames.forces_std[i],
            calc.results["forces_std"],
            rtol=1e-6,
            atol=1e-9,
            err_msg=i,
        )
        np.testing.assert_allclose(  # and it is the members' spread, rotated
            frames.forces_std[i],
            np.std(np.asarray(member_forces) @ to_input, axis=0),
            rtol=1e-6,
            atol=1e-9,
        )
        largest = max(largest, calc.results["forces_std_max"])
    assert largest > 1e-3  # non-vacuous: the members really differ


@pytest.mark.parametrize("member_map", ["vmap", "sequential"])
def test_committee_md_frames_equal_the_calculators(member_map):
    model = committee()
    atoms = rotated_cu()
    sim, frames = run_frames(
        model,
        atoms,
        Ensemble("nvt-langevin", timestep=2.0, temperature=600.0),
        member_map,
    )
    assert not np.allclose(np.asarray(sim.system.rotation), np.eye(3))
    check_frames(model, sim, frames)


def test_sequential_free_molecule_and_npt_frames_equal_the_calculators():
    model = committee(seed=4)
    sim, frames = run_frames(
        model, cu_cluster(), Ensemble("nve", timestep=1.0, temperature=300.0), None
    )
    assert sim.member_map == "sequential"  # the CPU default for a full committee
    check_frames(model, sim, frames)
    npt = Ensemble("npt", timestep=2.0, temperature=600.0, pressure=1.0, tau_p=50.0)
    sim, frames = run_frames(model, rotated_cu(seed=2), npt, "sequential")
    assert not np.allclose(frames.cell[0], frames.cell[-1])  # the box moves
    check_frames(model, sim, frames)


def test_shallow_committee_both_maps_equal_the_calculators():
    model = committee(shallow=True, seed=3)
    ens = Ensemble("nvt-langevin", timestep=2.0, temperature=600.0)
    sim, frames = run_frames(model, rotated_cu(seed=3), ens, None)
    assert sim.member_map == "vmap"  # the shared trunk computed once
    check_frames(model, sim, frames)
    sim, frames = run_frames(model, rotated_cu(seed=3), ens, "sequential")
    check_frames(model, sim, frames)


@pytest.mark.parametrize("shallow", [False, True])
def test_sequential_apply_fn_and_its_gradients_equal_vmap(shallow):
    """Energies, forces and parameter gradients (differentiable MD) of the two maps."""
    model = committee(shallow=shallow, seed=5)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.1, seed=5)
    sim = {
        m: make_simulation(
            model,
            atoms,
            Ensemble("nve", timestep=1.0, temperature=300.0),
            dtype="float64",
            member_map=m,
        )
        for m in ("vmap", "sequential")
    }
    with scope("float64"):
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.params)
        positions = sim["vmap"].system.initial_positions(np.float64, True)
        nbrs = sim["vmap"].allocate(positions)

        def value_and_grads(s):
            def energy(p, x):
                return s.energy_fn(p, x, nbrs, box=s.box)

            return jax.jit(jax.value_and_grad(energy, argnums=(0, 1)))(
                params, positions
            )

        (ev, (gpv, gxv)), (es, (gps, gxs)) = map(value_and_grads, sim.values())
    np.testing.assert_allclose(es, ev, rtol=1e-12)
    np.testing.assert_allclose(gxs, gxv, rtol=1e-10, atol=1e-12)
    for a, b in zip(jax.tree.leaves(gps), jax.tree.leaves(gpv)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_member_map_choices_and_errors():
    full, shallow = committee().config, committee(shallow=True).config
    single = full.replace(members=None)
    assert default_member_map(full, "cpu") == "sequential"
    assert default_member_map(full, "gpu") == "vmap"
    assert default_member_map(full, "tpu") == "vmap"
    assert default_member_map(shallow, "cpu") == "vmap"
    assert default_member_map(single, "cpu") == "vmap"
    with pytest.raises(ValueError, match="member_map"):
        make_apply_fn(full, "scan")
    with pytest.raises(ValueError, match="member_map"):
        map_members(lambda p: p, jnp.zeros(3), 0, "loop")
    with pytest.raises(ValueError, match="member_map"):
        make_simulation(committee(), rotated_cu(), Ensemble(), member_map="pmap")
    assert make_apply_fn(full) is make_apply_fn(full, "vmap")  # one cached function
    # shallow, sequential: shared leaves are passed whole, heads one at a time
    axes = member_axes(shallow)
    params = committee(shallow=True).params
    sizes = map_members(
        lambda p: jnp.asarray([x.size for x in jax.tree.leaves(p)]),
        params,
        axes,
        "sequential",
    )
    expected = map_members(
        lambda p: jnp.asarray([x.size for x in jax.tree.leaves(p)]), params, axes
    )
    np.testing.assert_array_equal(sizes, expected)

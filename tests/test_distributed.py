"""Sweeps in chunks (modelc/runtime/distributed): in this process, on a 2-worker LocalCluster,
streamed into a Zarr store, resumed, reduced, and with a worker killed mid-sweep.

References are independent of the generated code: a hand-written Euler loop of the QIF mean
field, and the Stuart-Landau oscillator's known frequency omega / 2 pi."""
from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
pytest.importorskip("xarray")
pytest.importorskip("zarr")

from modelc import Network  # noqa: E402
from modelc.errors import (ExtraUnavailableError, InvalidValueError, NonFiniteError,  # noqa: E402
                           ShapeError, SweepStoreError)

QIF = "model_templates.neural_mass_models.qif.qif"
DT, STEPS, EVERY = 1e-3, 400, 20


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """Two worker processes with their own, empty module cache."""
    from dask.distributed import Client, LocalCluster
    cache = tmp_path_factory.mktemp("worker-cache")
    cache.chmod(0o700)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"MODELC_CACHE_DIR": str(cache)}) as cluster, Client(cluster) as c:
        c.worker_cache = cache
        yield c


def qif_network() -> Network:
    net = Network(dt=DT)
    net.add_diffeq_node("qif", QIF, N=1, input_var="qif_op/I_ext", output_var="qif_op/r")
    return net


def qif_euler(eta: float, J: float, I_ext: np.ndarray, steps: int = STEPS, every: int = EVERY) -> np.ndarray:
    """Records of r, a hand-written Euler loop of the QIF mean field (tau = Delta = 1)."""
    r, v, rows = 0.0, -2.0, []
    for k in range(steps):
        r, v = r + DT * (1 / np.pi + 2 * r * v), v + DT * (v * v + eta + I_ext[k] + J * r - (np.pi * r) ** 2)
        if (k + 1) % every == 0:
            rows.append(r)
    return np.array(rows)


ETAS, JS = [-6.0, -5.0, -4.0, -3.0, -2.0], [10.0, 15.0, 20.0]


def grid_reference(I_ext: np.ndarray) -> np.ndarray:
    return np.array([[qif_euler(eta, J, I_ext) for J in JS] for eta in ETAS])


def test_cluster_equals_in_process_and_single_runs(client):
    net, u = qif_network(), np.linspace(0.0, 2.0, STEPS)
    ds = net.sweep({"eta": ETAS, "J": JS}, inputs=u, sampling_steps=EVERY, scheduler=client, chunk_size=4)
    assert ds["out"].dims == ("eta", "J", "time", "unit") and ds["out"].shape == (5, 3, STEPS // EVERY, 1)
    assert list(ds["eta"].values) == ETAS and list(ds["J"].values) == JS
    np.testing.assert_allclose(ds["time"].values, np.arange(1, STEPS // EVERY + 1) * EVERY * DT)
    np.testing.assert_allclose(ds["out"].values[..., 0], grid_reference(u), rtol=1e-12, atol=1e-14)
    in_process = net.sweep({"eta": ETAS, "J": JS}, inputs=u, sampling_steps=EVERY)
    np.testing.assert_array_equal(ds["out"].values.reshape(15, -1, 1).transpose(1, 0, 2), in_process["out"])
    assert ds.attrs["swept"] == {"eta": "qif/qif_op/eta", "J": "qif/qif_op/J"}


def test_workers_load_the_module_from_its_text_without_the_compiler(client):
    net = qif_network()
    ds = net.sweep({"J": [5.0, 6.0]}, steps=10, scheduler=client.cluster)  # a cluster object: a client of its own
    loaded = client.run(lambda: sorted(name for name in sys.modules
                                       if name.split(".")[0] in ("sympy", "lark") or
                                       name in ("modelc.ir", "modelc.equations", "modelc.codegen.generate",
                                                "modelc.runtime.distributed.chunks")))
    assert all(names == ["modelc.runtime.distributed.chunks"] for names in loaded.values()), loaded
    assert (client.worker_cache / f"{ds.attrs['module_key']}.py").is_file()  # stored into the worker's cache


def test_zipped_sets_with_one_input_per_set_and_the_set_dimension():
    net, B = qif_network(), 4
    u = np.stack([np.full(STEPS, 0.5 * b) for b in range(B)], axis=1)[:, :, None]  # (T, B, 1)
    etas, Js = [-5.0, -4.0, -3.0, -2.0], [15.0, 10.0, 12.0, 8.0]
    ds = net.sweep({"eta": etas, ("qif", "J"): Js}, inputs=u, grid=False, sampling_steps=EVERY,
                   record_vars=[("qif", "v", True)], chunk_size=3)
    assert ds["out"].dims == ("set", "time", "unit") and ds["qif.qif_op.v_mean"].dims == ("set", "time")
    assert list(ds["qif.J"].values) == Js and ds["eta"].dims == ("set",)
    for b in range(B):
        np.testing.assert_allclose(ds["out"].values[b, :, 0], qif_euler(etas[b], Js[b], u[:, b, 0]), rtol=1e-12,
                                   atol=1e-14)


def test_store_streams_chunks_and_resumes_an_interrupted_sweep(tmp_path, monkeypatch):
    from modelc.runtime.distributed.runner import run_sweep
    net, u, store = qif_network(), np.zeros(STEPS), tmp_path / "sweep.zarr"
    job = _job(monkeypatch, net, {"eta": ETAS, "J": JS}, u)
    calls = []

    def interrupt(done, total):
        calls.append(done)
        if len(calls) == 3:  # the start and two chunks written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(job, store=store, chunk_size=3, progress=interrupt)  # 5 chunks: one value of eta each
    written = calls[-1]
    resumed = []
    ds = run_sweep(job, store=store, chunk_size=5, progress=lambda done, total: resumed.append(done))
    assert resumed[0] == written == 6 and resumed[-1] == 15  # the 2 written chunks are not run again
    assert len(resumed) == 1 + 3  # chunk_size is the store's: the 3 chunks left run now
    np.testing.assert_allclose(ds["out"].values[..., 0], grid_reference(u), rtol=1e-12, atol=1e-14)
    import xarray
    assert xarray.open_zarr(store, consolidated=False)["chunk_done"].values.tolist() == [1] * 5
    with pytest.raises(SweepStoreError) as info:  # another sweep never resumes this store
        run_sweep(_job(monkeypatch, net, {"eta": ETAS, "J": [1.0, 2.0, 3.0]}, u), store=store)
    assert info.value.code == "MC210" and "holds another sweep" in info.value.message


def _job(monkeypatch, net: Network, params: dict, u: np.ndarray, sampling_steps: int = EVERY):
    """The SweepJob that Network.sweep makes for its chunked path."""
    from modelc.runtime.network import sweep
    captured = {}
    with monkeypatch.context() as patch:
        patch.setattr(sweep, "run_sweep", lambda job, **options: captured.setdefault("job", job))
        net.sweep(params, inputs=u, sampling_steps=sampling_steps, reduce="mean")
    return captured["job"]


def test_a_worker_killed_mid_sweep_loses_no_chunk_and_doubles_none(client, tmp_path, monkeypatch):
    from modelc.runtime.distributed.runner import run_sweep
    net, u = qif_network(), np.zeros(STEPS * 20)
    job = _job(monkeypatch, net, {"eta": list(np.linspace(-6.0, -2.0, 16))}, u, sampling_steps=400)
    pids, written, killed = client.run(os.getpid), [], []

    def kill_one(done, total):
        written.append(done)
        if len(written) == 2:  # one chunk back: kill a worker while it runs a chunk
            busy = []
            while not busy:
                busy = [address for address, keys in client.processing().items() if keys]
            killed.append(pids[busy[0]])
            os.kill(killed[0], signal.SIGKILL)

    ds = run_sweep(job, scheduler=client, store=tmp_path / "s.zarr", chunk_size=2, progress=kill_one)
    assert len(written) == 1 + 8 and written[-1] == 16  # every chunk written once
    expected = [qif_euler(eta, 15.0, u, STEPS * 20, 400) for eta in np.linspace(-6.0, -2.0, 16)]
    np.testing.assert_allclose(ds["out"].values[..., 0], expected, rtol=1e-9)  # rounding over 8000 steps
    assert killed[0] not in client.run(os.getpid).values()  # the worker was killed (its nanny starts another)


def test_named_reductions_against_the_records_and_a_known_frequency():
    net, u = qif_network(), np.linspace(0.0, 1.0, STEPS)
    full = net.sweep({"eta": ETAS}, inputs=u, sampling_steps=EVERY, chunk_size=2)["out"].values
    for name, expected in (("mean", full.mean(axis=1)), ("max", full.max(axis=1)), ("final", full[:, -1])):
        ds = net.sweep({"eta": ETAS}, inputs=u, sampling_steps=EVERY, reduce=name, chunk_size=2)
        assert ds["out"].dims == ("eta", "unit") and "time" not in ds.coords
        np.testing.assert_allclose(ds["out"].values, expected, rtol=1e-14)
    sl = Network(dt=0.01)
    sl.add_diffeq_node("sl", "model_templates.oscillators.stuartlandau.sl", N=1, output_var="sl_op/x")
    omegas = 2 * np.pi * np.array([0.5, 1.0, 2.0])
    ds = sl.sweep({"omega": omegas}, steps=10000, sampling_steps=10, reduce="peak_frequency")
    np.testing.assert_allclose(ds["out"].values[:, 0], omegas / (2 * np.pi), atol=0.011)  # resolution 1/T = 0.01


def test_reduce_by_a_function_and_its_errors():
    net = qif_network()
    ds = net.sweep({"eta": ETAS, "J": JS}, steps=STEPS, sampling_steps=EVERY,
                   reduce=lambda records: {"r_last": records["out"][:, -1, 0],
                                           "r_max": records["out"].max(axis=(1, 2))})
    assert ds["r_last"].dims == ("eta", "J") and ds["r_max"].shape == (5, 3)
    np.testing.assert_allclose(ds["r_last"].values, grid_reference(np.zeros(STEPS))[..., -1], rtol=1e-12)
    with pytest.raises(ShapeError, match="one row per set"):
        net.sweep({"eta": ETAS}, steps=10, reduce=lambda records: 1.0)
    with pytest.raises(InvalidValueError) as info:
        net.sweep({"eta": ETAS}, steps=10, reduce="maen")
    assert "unknown reduction 'maen'" in info.value.message and "did you mean 'mean'" in info.value.hint
    with pytest.raises(NonFiniteError, match=r"index \(1,\).* in the chunk of sets 2\.\.3 \(batch index 0 is set 2\)"):
        with np.errstate(over="ignore", invalid="ignore"):
            net.sweep({"eta": [-5.0, -5.0, -5.0, 1e6]}, steps=2000, chunk_size=2)
    with pytest.raises(InvalidValueError, match="chunk_size must be a whole number"):
        net.sweep({"eta": ETAS}, steps=10, chunk_size=0)
    with pytest.raises(InvalidValueError, match="scheduler must be"):
        net.sweep({"eta": ETAS}, steps=10, scheduler="threads")


def test_without_the_extra_a_clear_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray now fails
    with pytest.raises(ExtraUnavailableError) as info:
        qif_network().sweep({"eta": ETAS}, steps=10, reduce="mean")
    assert info.value.code == "MC211" and "pip install modelc[distributed]" in info.value.hint
    obs = qif_network().sweep({"eta": ETAS}, steps=10)  # the in-process sweep needs none of it
    assert obs["out"].shape == (10, 5, 1)


def test_cli_runs_a_sweep_file_into_its_store_through_a_scheduler_address(client, tmp_path, capsys):
    import xarray
    from modelc.cli import main
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(f"""
model: {QIF}
grid:
  qif_op/eta: {{start: -6, stop: -4, num: 3}}
  qif_op/J: [10, 15]
inputs: {{qif_op/I_ext: 0.5}}
outputs: [qif_op/r]
T: {STEPS * DT}
dt: 1e-3
sampling_step_size: {EVERY * DT}
store: out/sweep.zarr
chunk_size: 2
""")
    assert main(["sweep", str(sweep_file), "--scheduler", client.scheduler.address]) == 0
    captured = capsys.readouterr()
    assert f"wrote {tmp_path / 'out' / 'sweep.zarr'} (qif_op.eta: 3, qif_op.J: 2, time: 20, unit: 1)" in captured.out
    assert "6/6" in captured.err  # the progress bar
    ds = xarray.open_zarr(tmp_path / "out" / "sweep.zarr", consolidated=False)
    expected = [[qif_euler(eta, J, np.full(STEPS, 0.5)) for J in (10.0, 15.0)] for eta in (-6.0, -5.0, -4.0)]
    np.testing.assert_allclose(ds["qif_op.r"].values[..., 0], expected, rtol=1e-12, atol=1e-14)
    assert main(["sweep", str(sweep_file), "--quiet"]) == 0  # done already: resumed, nothing to run
    sweep_file.write_text(sweep_file.read_text().replace("num: 3", "num: 4"))
    assert main(["sweep", str(sweep_file), "--quiet"]) == 2  # another grid never resumes that store
    assert "[MC210]" in capsys.readouterr().err


def test_values_given_per_unit_are_indexed_and_kept_as_a_coordinate(tmp_path):
    net = Network(dt=DT)
    net.add_diffeq_node("qif", QIF, N=3, output_var="qif_op/r")
    etas = [np.array([-5.0, -4.0, -3.0]), np.array([-6.0, -5.0, -4.0])]
    ds = net.sweep({"eta": etas, "J": [10.0, 15.0]}, steps=STEPS, sampling_steps=EVERY, store=tmp_path / "s.zarr",
                   chunk_size=1)
    assert list(ds["eta"].values) == [0, 1] and ds["eta_values"].dims == ("eta", "eta_unit")
    np.testing.assert_array_equal(ds["eta_values"].values, etas)
    for i, eta in enumerate(etas):
        for j, J in enumerate((10.0, 15.0)):
            for unit in range(3):
                np.testing.assert_allclose(ds["out"].values[i, j, :, unit], qif_euler(eta[unit], J, np.zeros(STEPS)),
                                           rtol=1e-12, atol=1e-14)


def test_simulate_over_a_grid_names_its_records_as_outputs_says(client):
    import modelc
    ds = modelc.simulate(QIF, T=STEPS * DT, dt=DT, inputs={"qif_op/I_ext": 0.5}, outputs={"rate": "qif_op/r"},
                         sampling_step_size=EVERY * DT, grid={"qif_op/eta": ETAS[:3], "qif_op/J": JS[:2]},
                         scheduler=client)
    assert list(ds.data_vars) == ["rate"] and ds["rate"].dims == ("qif_op.eta", "qif_op.J", "time", "unit")
    expected = [[qif_euler(eta, J, np.full(STEPS, 0.5)) for J in JS[:2]] for eta in ETAS[:3]]
    np.testing.assert_allclose(ds["rate"].values[..., 0], expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(InvalidValueError, match="which is not recorded"):
        qif_network().sweep({"eta": ETAS}, steps=10, names={("qif", "v"): "v"})

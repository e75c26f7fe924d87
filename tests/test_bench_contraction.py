"""The contraction benchmark runs (``--quick``) and writes the JSON and plot it promises.
No timing assertions: only structure, and that every peer computes tnjax's numbers."""

import platform

from tests._run import run_quick_benchmark

PEERS = {
    "tnjax",
    "quimb+cotengra (numpy)",
    "quimb+cotengra (jax)",
    "jnp.einsum (greedy)",
    "tensornetwork (numpy)",
    "jnp per-node loop",
    "jnp per-level einsum",
}
WITH_BACKWARD = {
    "tnjax",
    "quimb+cotengra (jax)",
    "jnp.einsum (greedy)",
    "jnp per-node loop",
    "jnp per-level einsum",
}


def test_quick_benchmark_writes_results(tmp_path):
    payload = run_quick_benchmark("contraction", tmp_path, timeout=600)
    assert payload["quick"] is True
    assert payload["peak_gflops"] > 0
    assert {"platform", "cpu_count", "jax"} <= set(payload["machine"])
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert payload["allocator"].startswith("glibc: mmap off"), payload["allocator"]
    assert payload["sizes"]
    for entry in payload["sizes"]:
        assert {"n_inputs", "m", "channels", "batch", "flops", "tnjax_vs_float64_rel_err"} <= set(
            entry
        )
        assert entry["tnjax_vs_float64_rel_err"] < 1e-4
        assert set(entry["peers"]) == PEERS
        for name, res in entry["peers"].items():
            fwd = res["forward"]
            assert {"median_s", "compile_s", "gflops", "peak_fraction"} <= set(fwd), name
            assert fwd["median_s"] > 0
            assert res["rel_err_vs_tnjax"] < 1e-4, name  # every peer computes the same scores
            assert "setup_s" in res
            if name in WITH_BACKWARD:
                assert res["forward_backward"]["median_s"] > 0, name
                # XLA's scratch memory of both compiled programs (CPU reports it)
                assert fwd["temp_mib"] >= 0 and res["forward_backward"]["temp_mib"] > 0, name
                assert res["bwd_over_fwd"] > 0
                if name != "tnjax":
                    assert res["grad_rel_err_vs_tnjax"] < 1e-3, name
            else:
                assert res["forward_backward"] is None
        assert set(entry["speedup_forward"]) == PEERS - {"tnjax"}
        assert set(entry["speedup_forward_backward"]) == WITH_BACKWARD - {"tnjax"}
        targets = entry["targets"]
        assert targets["fastest_peer"] in PEERS
        assert {"speedup_vs_fastest_peer", "compile_s", "bwd_over_fwd"} <= set(targets)

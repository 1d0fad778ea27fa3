"""Merging the workers' robomimic files: every demo once, renumbered by episode id, masks rebuilt."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from test_robomimic_hdf5 import synthetic_episode

from llm_trainer.datasets import DatasetError, RobomimicWriter
from llm_trainer.datasets.merge import merge_datasets


def test_merge_orders_by_episode_and_rebuilds_masks(tmp_path):
    a, b = tmp_path / "w0.hdf5", tmp_path / "w1.hdf5"
    # Worker 0 did episodes 0 and 2 (2 failed), worker 1 did 1 and 3.
    RobomimicWriter(a).append(synthetic_episode(5, True, seed=0))
    RobomimicWriter(a).append(synthetic_episode(6, False, seed=2))
    RobomimicWriter(b).append(synthetic_episode(7, True, seed=1))
    RobomimicWriter(b).append(synthetic_episode(3, True, seed=3))
    out = tmp_path / "dataset.hdf5"
    assert merge_datasets([a, b], out) == 4
    with h5py.File(out, "r") as f:
        demos = [f"demo_{i}" for i in range(4)]
        assert sorted(f["data"].keys()) == demos
        assert [f[f"data/{d}"].attrs["episode_id"] for d in demos] == [f"episode_{i:06d}" for i in range(4)]
        assert [int(f[f"data/{d}"].attrs["num_samples"]) for d in demos] == [5, 7, 6, 3]
        assert f["data"].attrs["total"] == 21
        assert list(f["mask/failed"][()]) == [b"demo_2"]
        assert list(f["mask/successful"][()]) == [b"demo_0", b"demo_1", b"demo_3"]
        with h5py.File(b, "r") as src:
            np.testing.assert_array_equal(f["data/demo_1/actions"][()], src["data/demo_0/actions"][()])


def test_merge_rejects_a_file_without_data(tmp_path):
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_group("other")
    with pytest.raises(DatasetError, match="no 'data' group"):
        merge_datasets([bad], tmp_path / "out.hdf5")
    assert not (tmp_path / "out.hdf5").exists()
